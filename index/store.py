"""The encrypted chunk store: a thin, batched wrapper over Chroma.

Chroma holds, per chunk, its embedding (clear: the index must search it),
and flat metadata: ``client`` and ``file`` (opaque ids), ``page`` and ``n``
(integers), and ``ct``, the AES-GCM ciphertext of the chunk's text and
descriptive fields. No document text is given to Chroma, so its full-text
table stays empty, and Chroma never embeds anything itself.

With ``Settings.embedding_model_en``, a second collection (the ``ENGLISH``
space, ``<collection>-en``) holds a second embedding of the English chunks,
by a model specialised in English, under the same ids and without payload.

Several vaults on one Chroma server (one watcher per file server): each
collection is stamped with its vault's ``owner`` id (a keyed hash, stable
across master-key rotations) and a store refuses a collection stamped by
another vault. On a server, the default collection name is derived from that
id, so vaults never meet unless told to use the same name.

Each collection is also stamped with the embedding model (its spec, e.g.
``"minilm"``, ``"minilm-int8"``) whose vectors it holds, so that vectors of two
models are never mixed in one space. A vault whose main vectors were made by
another model is refused. An English space made by another English model is
*stale*: it reads as empty (no count, no ids, no hits) until the next index run
re-embeds every English chunk, and its first write drops the old vectors.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from huisclos.config import Settings, StoreError
from huisclos.index.disk import disk_failure
from huisclos.index.faults import write_step

__all__ = ["ENGLISH", "MAIN", "ChunkMeta", "ChunkRecord", "EncryptedStore", "StoredHit"]

log = logging.getLogger(__name__)

MAIN = ""
"""The space of every chunk: the main embedding model's vectors, with the encrypted payload."""
ENGLISH = "en"
"""The space of English chunks' second embedding (``Settings.embedding_model_en``)."""
_MARKER = "changed"
_OWNER = "huisclos:vault"
"""Collection metadata key: the id of the vault that owns the collection."""
_MODEL = "huisclos:model"
"""Collection metadata key: the embedding model whose vectors the collection holds."""
_NEWER_THAN_STAMPS = frozenset({"minilm-onnx", "minilm-int8"})
"""Model specs added after model stamps: a collection without a stamp was not made by them."""
_REPAIR = (
    "; if its files are damaged, `huisclos repair` rebuilds it from the indexed folders "
    "(keys and audit trail kept)"
)
_WRITTEN_HERE: set[str] = set()
"""Generations written by this process (its own in-memory index is up to date)."""
_SEEN_HERE: dict[Path, str] = {}
"""The generation of each embedded store that this process's (cached) Chroma client last saw."""


class ChunkMeta(TypedDict):
    """Metadata of a chunk as stored in Chroma: flat values only."""

    client: str
    file: str
    page: int
    n: int
    ct: str


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A chunk ready to be written: id, embedding, encrypted metadata."""

    id: str
    embedding: Sequence[float]
    meta: ChunkMeta


@dataclass(frozen=True, slots=True)
class StoredHit:
    """A chunk returned by a query, still encrypted."""

    id: str
    distance: float
    meta: ChunkMeta


def _is_uuid(name: str) -> bool:
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True


def _validate(meta: ChunkMeta, *, payload: bool = True) -> None:
    for key in ("client", "file", "ct") if payload else ("client", "file"):
        if not isinstance(meta[key], str) or not meta[key]:
            raise StoreError(f"chunk metadata field {key!r} must be a non-empty string")
    for key in ("page", "n"):
        if type(meta[key]) is not int:  # type: ignore[literal-required]
            raise StoreError(f"chunk metadata field {key!r} must be an int")


class EncryptedStore:
    """Chroma, embedded (``PersistentClient``) or a server (``HttpClient``)."""

    def __init__(self, settings: Settings, owner: str = "") -> None:
        self._settings = settings
        self._owner = owner
        self.collection = settings.collection or (
            f"huisclos-{owner[:16]}" if settings.chroma_host and owner else "huisclos"
        )
        self.spaces: tuple[str, ...] = (MAIN, ENGLISH) if settings.embedding_model_en else (MAIN,)
        self._batch = settings.write_batch_size
        self._marker = None if settings.chroma_host else settings.home / "chroma" / _MARKER
        self._stale: set[str] = set()
        """Spaces holding another model's vectors (English only: read as empty)."""
        self._warned: set[str] = set()
        generation = self._generation()
        last = _SEEN_HERE.get(self._marker) if self._marker is not None else None
        if last is not None and last != generation and generation not in _WRITTEN_HERE:
            # Chroma's client, cached by this process, predates another process's writes
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient.clear_system_cache()
        self._open()
        self._seen = generation
        if self._marker is not None:
            _SEEN_HERE[self._marker] = generation

    def _open(self) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        settings = self._settings
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        try:
            if settings.chroma_host:
                self._client: Any = chromadb.HttpClient(
                    host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                )
            else:
                path = settings.home / "chroma"
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            names = self._names()
            self._collections: dict[str, Any] = {}
            self._stale = set()
            for space in self.spaces:
                name = self._name(space)
                if name not in names and self._compact_name(space) in names:
                    # a compaction by the writer is renaming its copy: read from the copy
                    self._collections[space] = self._client.get_collection(
                        self._compact_name(space)
                    )
                else:
                    self._collections[space] = self._create(name, space)
                self._claim(self._collections[space])
                self._check_model(space)
        except StoreError:
            raise
        except Exception as exc:
            where = (
                f"the Chroma server {settings.chroma_host}:{settings.chroma_port}"
                if settings.chroma_host
                else f"the embedded store in {settings.home / 'chroma'}"
            )
            if settings.chroma_host:
                raise StoreError(f"cannot open {where}: {exc}") from exc
            clearer = disk_failure(settings.home, exc)
            raise clearer or StoreError(f"cannot open {where}: {exc}{_REPAIR}") from exc

    def _name(self, space: str) -> str:
        return self.collection + (f"-{space}" if space else "")

    def _create(self, name: str, space: str) -> Any:
        metadata = {"hnsw:space": "cosine"}
        if self._owner:
            metadata[_OWNER] = self._owner
        if self._model(space):
            metadata[_MODEL] = self._model(space)
        return self._client.get_or_create_collection(
            name, embedding_function=None, metadata=metadata
        )

    def _claim(self, collection: Any) -> None:
        """Refuse another vault's collection; stamp one made before stamps existed."""
        if not self._owner:
            return
        stamp = (collection.metadata or {}).get(_OWNER)
        if stamp == self._owner:
            return
        if stamp:
            raise StoreError(
                f"the collection {collection.name!r} belongs to another vault; give this vault "
                "a collection of its own (setting `collection`, e.g. the file server's name), "
                "or leave it unset"
            )
        # Without the hnsw keys: Chroma refuses a metadata change naming the distance,
        # and keeps the distance (in the collection's configuration) without it.
        user = {k: v for k, v in (collection.metadata or {}).items() if not k.startswith("hnsw:")}
        collection.modify(metadata={**user, _OWNER: self._owner})

    def _model(self, space: str) -> str:
        settings = self._settings
        return (settings.embedding_model if space == MAIN else settings.embedding_model_en) or ""

    def _check_model(self, space: str) -> None:
        """Stamp a collection made before model stamps; refuse or set aside another model's."""
        collection = self._collections[space]
        metadata = dict(collection.metadata or {})
        wanted, stamp = self._model(space), metadata.get(_MODEL)
        if stamp == wanted:
            return
        if stamp is None and not (wanted in _NEWER_THAN_STAMPS and collection.count()):
            # made before stamps, by the model configured then: taken to be this one
            user = {k: v for k, v in metadata.items() if not k.startswith("hnsw:")}
            collection.modify(metadata={**user, _MODEL: wanted})
            return
        made_by = stamp or "an earlier model"
        if space == MAIN:
            raise StoreError(
                f"this vault's vectors were made by the embedding model {made_by!r}, not "
                f"{wanted!r}: set embedding_model back to it, or index into a new vault "
                "(HUISCLOS_HOME)"
            )
        self._stale.add(space)
        if made_by not in self._warned:  # once, not at each reopen
            self._warned.add(made_by)
            log.warning(
                "the English vectors were made by %s, not %s: English passages are found by "
                "keywords only until the next index run re-embeds them",
                made_by,
                wanted,
            )

    def _reset(self, space: str) -> None:
        """Drop a stale space (another model's vectors) and start it anew for this model."""
        self._call(
            "drop another model's vectors",
            self._client.delete_collection,
            name=self._collections[space].name,
        )
        self._collections[space] = self._call(
            "create a collection", self._create, name=self._name(space), space=space
        )
        self._stale.discard(space)
        self._wrote()
        log.info("the vectors of the previous %r model were dropped", space or "main")

    def _names(self) -> set[str]:
        return {getattr(c, "name", c) for c in self._client.list_collections()}

    # --- several processes on one embedded store ---------------------------------
    # Embedded Chroma keeps its index in memory per process: a process that
    # opened the store before another one (the watcher) wrote to it does not see
    # those chunks, and can even fail on them. Writers therefore bump a marker
    # file; a reader that sees a marker it did not write reopens the store.

    def _generation(self) -> str:
        if self._marker is None:
            return ""
        try:
            return self._marker.read_text(encoding="ascii")
        except OSError:
            return ""

    def _wrote(self) -> None:
        if self._marker is None:
            return
        generation = f"{os.getpid()}-{time.time_ns()}"
        temporary = self._marker.with_suffix(".tmp")
        try:
            temporary.write_text(generation, encoding="ascii")
            temporary.replace(self._marker)
        except OSError as exc:
            log.warning("cannot mark the store as changed (%s)", type(exc).__name__)
            return
        _WRITTEN_HERE.add(generation)
        self._seen = _SEEN_HERE[self._marker] = generation

    def refresh(self) -> None:
        """Reopen the store now: another process may have written to it and died before
        saying so (its interrupted writes are then seen, and can be cleaned up)."""
        self._fresh(force=True)

    def _fresh(self, force: bool = False) -> None:
        """Reopen the store if another process wrote to it since this one last looked."""
        generation = self._generation()
        if self._marker is not None:
            _SEEN_HERE[self._marker] = generation
        if not force and (generation == self._seen or generation in _WRITTEN_HERE):
            self._seen = generation
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        log.info("the store was changed by another process: reopening it")
        SharedSystemClient.clear_system_cache()
        self._open()
        self._seen = generation

    def _call(self, action: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            if self._marker is None:
                raise StoreError(f"the vector store failed to {action}: {exc}") from exc
            clearer = disk_failure(self._settings.home, exc)
            message = f"the vector store failed to {action}: {exc}{_REPAIR}"
            raise clearer or StoreError(message) from exc

    def count(self, space: str = MAIN) -> int:
        """Chunks in a space (``MAIN``: every chunk; ``ENGLISH``: English chunks)."""
        self._fresh()
        if space in self._stale:
            return 0
        return int(self._call("count", self._collections[space].count))

    def upsert(self, records: Iterable[ChunkRecord], space: str = MAIN) -> int:
        """Write chunks in batches; returns how many were written.

        The main space holds every chunk with its encrypted payload; the
        English space only the second embedding of English chunks, under the
        same ids, with ids and page only (``ct`` empty).
        """
        self._fresh()  # the collection may have been rebuilt by another process
        if space in self._stale:
            self._reset(space)
        batch: list[ChunkRecord] = []
        written = 0
        for record in records:
            _validate(record.meta, payload=space == MAIN)
            batch.append(record)
            if len(batch) >= self._batch:
                written += self._flush(batch, space)
                batch = []
        if batch:
            written += self._flush(batch, space)
        return written

    def _flush(self, batch: list[ChunkRecord], space: str) -> int:
        write_step("before a vector store write")
        self._wrote()  # before too: a writer killed inside the write still tells the others
        self._call(
            "write chunks",
            self._collections[space].upsert,
            ids=[r.id for r in batch],
            embeddings=[list(map(float, r.embedding)) for r in batch],
            metadatas=[dict(r.meta) for r in batch],
        )
        self._wrote()
        write_step("after a vector store write")
        return len(batch)

    def delete_files(self, file_ids: Sequence[str]) -> None:
        """Delete every chunk of these files, in every space (idempotent)."""
        self._fresh()
        self._wrote()
        for start in range(0, len(file_ids), 100):
            part = list(file_ids[start : start + 100])
            where: dict[str, Any] = {"file": part[0]} if len(part) == 1 else {"file": {"$in": part}}
            for collection in self._collections.values():
                write_step("before a vector store deletion")
                self._call("delete chunks", collection.delete, where=where)
                write_step("after a vector store deletion")
        self._wrote()

    def delete_client(self, client_id: str) -> None:
        """Delete every chunk of one client, in every space (idempotent)."""
        self._fresh()
        for collection in self._collections.values():
            self._call("delete chunks", collection.delete, where={"client": client_id})
        self._wrote()

    # --- compaction: erased records leave no trace on disk ----------------------
    # Chroma marks deleted vectors and keeps them (its HNSW files, its
    # write-ahead log in chroma.sqlite3) until they are overwritten. After an
    # erasure the live records are copied into a new collection, the old one is
    # dropped with its files, and the database is vacuumed.

    def _compact_name(self, space: str) -> str:
        return self._name(space) + "-compacting"

    def finish_compaction(self) -> None:
        """Complete or undo a compaction a crash interrupted (the writer lock is held)."""
        names = self._call("list collections", self._names)
        finished = False
        for space in (ENGLISH,):
            if space not in self.spaces and self._name(space) in names:
                # no longer configured: its vectors must not outlive an erasure
                self._call("drop a space", self._client.delete_collection, name=self._name(space))
                self._wrote()
                log.info("the vectors of a model no longer configured were deleted")
        for space in self.spaces:
            name, copy_name = self._name(space), self._compact_name(space)
            if copy_name not in names:
                continue
            if name in names:  # the copy may be incomplete: drop it
                self._call(
                    "drop an interrupted copy", self._client.delete_collection, name=copy_name
                )
            else:  # the copy was complete and the old collection already dropped
                copy = self._client.get_collection(copy_name)
                self._call("finish a compaction", copy.modify, name=name)
                self._collections[space] = copy
            finished = True
        if finished:
            self._wrote()
            log.info("an interrupted compaction was finished")

    def compact(self) -> int:
        """Rebuild each collection from its live records; returns how many main chunks were kept.

        The caller holds the vault's writer lock. Readers in other processes
        may see one failed search meanwhile; they reopen the store after it.
        """
        self._fresh()
        kept = {space: self._compact_space(space) for space in self.spaces}[MAIN]
        self._wrote()
        if self._marker is not None:
            self._vacuum(self._marker.parent)
        log.info("store compacted: %d chunks kept", kept)
        return kept

    def _compact_space(self, space: str) -> int:
        name, copy_name = self._name(space), self._compact_name(space)
        if copy_name in self._names():
            self._client.delete_collection(copy_name)
        if space in self._stale:
            self._reset(space)  # nothing of it is kept
            return 0
        target = self._call("compact the store", self._create, name=copy_name, space=space)
        kept, offset = 0, 0
        while True:
            got = self._call(
                "read chunks",
                self._collections[space].get,
                include=["embeddings", "metadatas"],
                limit=self._batch,
                offset=offset,
            )
            if not got["ids"]:
                break
            self._call(
                "write chunks",
                target.upsert,
                ids=got["ids"],
                embeddings=[list(map(float, e)) for e in got["embeddings"]],
                metadatas=got["metadatas"],
            )
            offset += len(got["ids"])
            kept += len(got["ids"])
        self._call("compact the store", self._client.delete_collection, name=name)
        for attempt in range(3):
            try:
                target.modify(name=name)
                break
            except Exception as exc:  # a reader created the name meanwhile: drop it, again
                if attempt == 2:
                    raise StoreError(
                        f"the compacted store could not be renamed ({exc}); the next index "
                        "run finishes it"
                    ) from exc
                if name in self._names():
                    self._client.delete_collection(name)
        self._collections[space] = target
        return kept

    def _vacuum(self, path: Path) -> None:
        """Drop the files of deleted segments and rewrite chroma.sqlite3 without free pages."""
        database = path / "chroma.sqlite3"
        try:
            with closing(sqlite3.connect(database, timeout=30.0)) as db:
                live = {row[0] for row in db.execute("SELECT id FROM segments")}
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("VACUUM")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot compact {database}: {exc}") from exc
        for entry in path.iterdir():
            if entry.is_dir() and _is_uuid(entry.name) and entry.name not in live:
                shutil.rmtree(entry, ignore_errors=True)

    def get_file_chunks(self, file_id: str, space: str = MAIN) -> list[ChunkRecord]:
        """Every chunk of one file in a space, with its embedding (to move across clients)."""
        self._fresh()
        if space in self._stale:
            return []
        got = self._call(
            "read chunks",
            self._collections[space].get,
            where={"file": file_id},
            include=["embeddings", "metadatas"],
        )
        return [
            ChunkRecord(id=i, embedding=list(e), meta=m)
            for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"], strict=True)
        ]

    def get(self, ids: Sequence[str]) -> dict[str, ChunkMeta]:
        """The metadata of these chunks, by id (ids not in the store are left out)."""
        if not ids:
            return {}
        self._fresh()
        got = self._call(
            "read chunks", self._collections[MAIN].get, ids=list(ids), include=["metadatas"]
        )
        return {i: m for i, m in zip(got["ids"], got["metadatas"], strict=True) if m is not None}

    def ids(self, space: str = MAIN) -> set[str]:
        """Every chunk id in a space."""
        self._fresh()
        if space in self._stale:
            return set()
        found: set[str] = set()
        offset = 0
        while True:
            got = self._call(
                "read chunks",
                self._collections[space].get,
                include=[],
                limit=self._batch * 8,
                offset=offset,
            )
            if not got["ids"]:
                return found
            found.update(got["ids"])
            offset += len(got["ids"])

    def query(
        self,
        embedding: Sequence[float],
        top_k: int,
        client_id: str | None = None,
        space: str = MAIN,
    ) -> list[StoredHit]:
        """Nearest chunks to ``embedding`` in a space, best first, optionally of one client."""
        # not count(): Chroma counts by scanning (55 ms at a million chunks); an empty
        # collection just returns no hits
        self._fresh()
        if space in self._stale:
            return []
        kwargs: dict[str, Any] = {
            "query_embeddings": [list(map(float, embedding))],
            "n_results": top_k,
            "include": ["metadatas", "distances"],
        }
        if client_id is not None:
            kwargs["where"] = {"client": client_id}
        try:
            got = self._call("search", self._collections[space].query, **kwargs)
            stale = any(m is None for m in got["metadatas"][0])
        except StoreError:
            if self._marker is None or self._generation() in _WRITTEN_HERE:
                raise
            stale = True
        if stale:
            # Another process wrote meanwhile: this process's vector index still
            # names chunks whose records are gone. Reopen and ask again.
            self._fresh(force=True)
            got = self._call("search", self._collections[space].query, **kwargs)
        return [
            StoredHit(id=i, distance=float(d), meta=m)
            for i, d, m in zip(got["ids"][0], got["distances"][0], got["metadatas"][0], strict=True)
            if m is not None  # deleted by another process between the two reads
        ]
