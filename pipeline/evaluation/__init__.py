"""Quality measured through the real code path, in a throw-away vault.

- :mod:`.retrieval`: retrieval quality on a BEIR-layout benchmark (nDCG@10, recall);
- :mod:`.answers`: answer quality on labelled questions.

An entry point: imports the facade (:mod:`huisclos.pipeline.api`).
"""
