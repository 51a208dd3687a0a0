"""Indexing: files on disk into the encrypted index, once or continuously.

- :mod:`.chunking`: text elements into chunks sized in the embedding model's tokens;
- :mod:`.ingest`: an incremental index run (convert, chunk, embed, encrypt, write);
- :mod:`.watcher`: the long-lived loop that keeps watched roots indexed.

Imports :mod:`huisclos.pipeline.models` only, within the pipeline.
"""
