"""Answering: hybrid search over the encrypted index, then a cited answer from the local model.

- :mod:`.search`: keyword and embedding retrieval, fused, then decrypted;
- :mod:`.prompts`: what the model is told (numbered passages, the rules);
- :mod:`.answer`: the query pipeline, streaming, and citations mapped back to passages.

Imports :mod:`huisclos.pipeline.models` only, within the pipeline.
"""
