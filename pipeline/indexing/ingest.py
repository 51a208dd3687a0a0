"""Incremental ingest: roots on disk into the encrypted index.

One run compares each root with the manifest and does only what changed:

- unchanged (same size and mtime, or same content): nothing;
- moved (a new path whose content a vanished path had): the manifest row is
  re-pointed, and within one client no chunk is touched; across clients the
  chunks are re-encrypted under the new client's key, with their embeddings;
- added or modified: converted, chunked, embedded (the Haystack pipeline
  ``TokenChunker → DocumentEmbedder``), encrypted, written in batches;
- removed: chunks and row deleted.

Crash safety: a new file id is recorded as an intent before its chunks are
written; the manifest row that adopts it is committed after; chunks of the
replaced version are deleted last. :func:`recover` deletes the chunks of any
intent no row adopted, so a crash at any point leaves no duplicate and no
orphan once the next run starts.
"""

from __future__ import annotations

import json
import logging
import secrets
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from haystack import Document, Pipeline

from huisclos.config import ConfigError, Settings
from huisclos.connectors.personal_data import count_personal_data
from huisclos.connectors.scan import SourceFile, ignore_filter, scan_root
from huisclos.connectors.worker_pool import Converted, Converter, content_hash
from huisclos.index.keys import ClientCipher
from huisclos.index.keywords import KeywordEntry, keyword_entry
from huisclos.index.manifest import FileRecord
from huisclos.index.store import ENGLISH, ChunkMeta, ChunkRecord
from huisclos.index.vault import Vault
from huisclos.pipeline.indexing.chunking import TokenChunker
from huisclos.pipeline.models.embedding import DocumentEmbedder

__all__ = ["IndexReport", "Ingestor", "build_ingest_pipeline", "recover", "sync_keyword_index"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (files done, files to convert) as conversion proceeds."""

EMPTY = "empty: no text found"
_BATCH_ELEMENTS = 400
"""A batch is embedded and written once it holds this many text elements, or
``Settings.batch_files`` files."""
_LOOKAHEAD = 48
"""Files converted ahead of the batch being embedded (bounds the memory they hold)."""


@dataclass(slots=True)
class IndexReport:
    """What one index run did. Counts are files, except ``chunks_written``."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks_written: int = 0
    chunks_removed: int = 0
    excluded: int = 0
    """Files left out because their client or folder was forgotten (``huisclos include``)."""
    seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def build_ingest_pipeline(settings: Settings) -> Pipeline:
    """The Haystack pipeline from text elements to embedded chunks."""
    pipeline = Pipeline()
    pipeline.add_component(
        "chunker",
        TokenChunker(
            model=settings.embedding_model,
            threads=settings.threads,
            chunk_tokens=settings.chunk_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
        ),
    )
    pipeline.add_component(
        "embedder", DocumentEmbedder(model=settings.embedding_model, threads=settings.threads)
    )
    pipeline.connect("chunker.documents", "embedder.documents")
    return pipeline


def recover(vault: Vault) -> int:
    """Delete chunks left by an interrupted run; returns how many file ids were cleaned.

    Also completes a store compaction an erasure left half-done. The caller
    holds the writer lock.
    """
    vault.store.finish_compaction()
    pending = vault.manifest.pending_intents()
    if pending:
        log.info("recovering %d interrupted file writes", len(pending))
        vault.store.refresh()  # the interrupted writer's last writes, seen before deleting
        vault.delete_files(pending)
        vault.manifest.clear_intents(pending)
    if vault.keywords.outdated:
        log.info("the keyword index was made by another version: rebuilding it")
        vault.keywords.clear()
    out_of_step = vault.keywords.count() != vault.store.count()
    if out_of_step:
        sync_keyword_index(vault)
    vault.reconcile(full=out_of_step)  # chunks lost or left behind the manifest's back
    return len(pending)


def sync_keyword_index(vault: Vault) -> int:
    """Give the keyword index the files it lacks (a vault made before it existed,
    or a rebuild after a change of text analysis).

    Their chunks are read from the store and decrypted; nothing is re-embedded.
    Returns how many files were added.
    """
    indexed = {row.file_id: row for row in vault.manifest.all_files() if row.chunks}
    present = vault.keywords.file_ids()
    stale = sorted(present - indexed.keys())
    if stale:
        vault.keywords.delete_files(stale)
    missing = [row for file_id, row in indexed.items() if file_id not in present]
    for row in missing:
        cipher = vault.keys.cipher(row.client_id, create=False)
        path = cipher.decrypt(row.path_ct, row.file_id)
        vault.keywords.add(_stored_keywords(vault, cipher, row.file_id, path))
    if missing or stale:
        log.info("keyword index: %d files added, %d stale removed", len(missing), len(stale))
    return len(missing)


def _stored_keywords(
    vault: Vault, cipher: ClientCipher, file_id: str, path: str
) -> list[KeywordEntry]:
    """Keyword-index entries of a file's stored chunks (decrypted; nothing re-embedded)."""
    entries = []
    for chunk in vault.store.get_file_chunks(file_id):
        payload = json.loads(cipher.decrypt(chunk.meta["ct"], chunk.id))
        entries.append(_keywords(cipher, chunk.id, file_id, payload, path))
    return entries


def _english_meta(meta: ChunkMeta) -> ChunkMeta:
    """Metadata of a chunk in the English space: its main record's ids and position, no
    payload."""
    return ChunkMeta(
        client=meta["client"], file=meta["file"], page=meta["page"], n=meta["n"], ct=""
    )


def _keywords(
    cipher: ClientCipher, chunk_id: str, file_id: str, payload: dict[str, str], path: str
) -> KeywordEntry:
    """A chunk's keyword-index entry: its text, labelled with its path, attachment, section."""
    stem = str(PurePosixPath(path).with_suffix(""))
    labels = " ".join([stem, payload.get("source") or "", payload.get("section") or ""])
    return keyword_entry(cipher, chunk_id, file_id, payload["text"], labels)


def _chunk_id(file_id: str, n: int) -> str:
    return f"{file_id}-{n}"


@dataclass(slots=True)
class _Change:
    file: SourceFile
    root_id: str
    path_id: str
    content_id: str | None
    """None: not hashed yet (a new file that cannot be a move); the conversion hashes it."""
    old: FileRecord | None


class Ingestor:
    """Runs index passes over roots into one vault."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.settings = vault.settings
        self._pipeline = build_ingest_pipeline(self.settings)
        self._chunker = self._pipeline.get_component("chunker")
        self._embedder = self._pipeline.get_component("embedder")
        english = self.settings.embedding_model_en
        self._english = (
            DocumentEmbedder(model=english, threads=self.settings.threads) if english else None
        )
        self._keep = ignore_filter(self.settings.ignore_patterns)
        self._excluded: dict[str, set[str]] = {"client": set(), "path": set()}
        self._converter = Converter(self.settings)
        self._converter.start()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="huisclos-write")

    def warm_up(self) -> None:
        """Load the embedding models and the conversion workers' parsers."""
        self._pipeline.warm_up()
        if self._english is not None:
            self._english.warm_up()
        self._converter.wait_ready()

    def close(self) -> None:
        """Stop the conversion workers and the writer thread."""
        self._converter.close()
        self._writer.shutdown(wait=True)

    # --- the run --------------------------------------------------------------

    def index(self, roots: Iterable[Path], progress: Progress | None = None) -> IndexReport:
        """Bring the index in line with the files under ``roots``.

        Raises:
            ConfigError: a root does not exist or is not a directory (nothing
                is removed from the index in that case).
        """
        return self._run([(root, None) for root in roots], progress)

    def update(
        self, root: Path, paths: Iterable[str], progress: Progress | None = None
    ) -> IndexReport:
        """Bring the index in line with some paths under ``root`` (what the watcher does).

        Each path (relative to ``root``) is reconciled with the disk: a file is
        indexed if its content changed (it is always hashed: size and mtime are
        not trusted), a directory is reconciled recursively, and what no longer
        exists at or under a path is removed. Files that vanished from one path
        and appeared at another in the same call are moves: no re-embedding.

        Raises:
            ConfigError: the root does not exist (nothing is removed).
        """
        scope = sorted(set(paths))
        return self._run([(root, None if "" in scope else scope)], progress)

    def _run(
        self, plan: list[tuple[Path, list[str] | None]], progress: Progress | None
    ) -> IndexReport:
        started = time.monotonic()
        resolved = []
        for root, scope in plan:
            path = Path(root).expanduser().resolve()
            if not path.is_dir():
                raise ConfigError(f"{root} is not a directory; give the folder of client folders")
            resolved.append((path, scope))
        report = IndexReport()
        with self.vault.writing(wait=self.settings.writer_wait_seconds):
            recover(self.vault)
            self._sync_english()
            self._excluded = self.vault.manifest.exclusions()
            changes: list[_Change] = []
            for root, scope in resolved:
                changes.extend(self._diff_root(root, report, scope))
            self._convert_and_write(changes, report, progress)
        report.seconds = round(time.monotonic() - started, 3)
        full = all(scope is None for _, scope in plan)
        counts = {
            name: getattr(report, name)
            for name in ("added", "updated", "moved", "removed", "failed", "excluded")
        }
        if full or any(counts.values()):
            self.vault.audit.append(
                "index",
                details={
                    "run": "full" if full else "update",
                    **counts,
                    "unchanged": report.unchanged,
                    "chunks_written": report.chunks_written,
                },
            )
        log.info(
            "index %s: %d added, %d updated, %d moved, %d removed, %d unchanged, %d failed, "
            "%d chunks written in %.1fs",
            "run" if all(scope is None for _, scope in plan) else "update",
            report.added, report.updated, report.moved, report.removed,
            report.unchanged, report.failed, report.chunks_written, report.seconds,
        )  # fmt: skip
        return report

    def _diff_root(
        self, root: Path, report: IndexReport, scope: list[str] | None = None
    ) -> list[_Change]:
        keys, manifest = self.vault.keys, self.vault.manifest
        root_id = keys.blind("root", str(root))
        manifest.put_root(root_id, keys.vault_cipher.encrypt(str(root), root_id))
        scanned_at = time.time()
        if scope is None:
            known = manifest.files_under(root_id)
            files: Iterable[SourceFile] = scan_root(root, self._keep)
        else:
            known = self._known_in(root, root_id, scope)
            files = self._scan_paths(root, scope)
        seen: set[str] = set()
        candidates: list[tuple[SourceFile, str, FileRecord | None]] = []
        for file in files:
            if self._is_excluded(root_id, file):
                report.excluded += 1
                continue
            path_id = keys.blind("path", f"{root_id}\x00{file.rel}")
            seen.add(path_id)
            old = known.get(path_id)
            if scope is None and old and old.size == file.size and old.mtime_ns == file.mtime_ns:
                report.unchanged += 1
            else:
                candidates.append((file, path_id, old))
        missing = {pid: row for pid, row in known.items() if pid not in seen}
        by_content: dict[str | None, list[str]] = {}
        for pid, row in missing.items():
            by_content.setdefault(row.content_id, []).append(pid)
        # A move has the size of a vanished file: only those new files, and changed
        # ones, are hashed now. The others are hashed by the conversion worker that
        # reads them anyway (a first index of a share does not read it twice, and
        # starts converting at once instead of after hashing every byte).
        sizes = {row.size for row in missing.values()}
        changes: list[_Change] = []
        for file, path_id, old in candidates:
            if old is None and scope is None and file.size not in sizes:
                changes.append(_Change(file, root_id, path_id, None, old))
                continue
            try:
                content_id = keys.blind("content", content_hash(file.path))
            except OSError:  # vanished since the scan
                if old is not None:
                    missing[path_id] = old
                continue
            if old is not None and old.content_id == content_id:
                manifest.touch(path_id, file.size, file.mtime_ns)
                report.unchanged += 1
            elif old is None and by_content.get(content_id):
                moved_from = missing.pop(by_content[content_id].pop())
                self._move(moved_from, file, path_id, root_id, report)
            elif old is None and scope is not None and (gone := self._vanished(root, content_id)):
                # moved from a path whose removal the watcher has not reported yet
                self._move(gone, file, path_id, root_id, report)
            else:
                changes.append(_Change(file, root_id, path_id, content_id, old))
        self._remove(list(missing.values()), report)
        if scope is None:
            manifest.root_seen(root_id, scanned_at)
        return changes

    def _is_excluded(self, root_id: str, file: SourceFile) -> bool:
        """Whether the file's client, or the file or a folder above it, was forgotten."""
        excluded, keys = self._excluded, self.vault.keys
        if excluded["client"] and keys.client_id(file.client) in excluded["client"]:
            return True
        if excluded["path"]:
            parts = PurePosixPath(file.rel).parts
            for depth in range(1, len(parts) + 1):
                prefix = "/".join(parts[:depth])
                if keys.blind("path", f"{root_id}\x00{prefix}") in excluded["path"]:
                    return True
        return False

    def _scan_paths(self, root: Path, paths: list[str]) -> Iterator[SourceFile]:
        """The kept files at or under ``paths`` (each path once, ancestors first)."""
        covered: list[str] = []
        for rel in sorted(paths, key=lambda p: (p.count("/"), p)):
            if any(rel == d or rel.startswith(d + "/") for d in covered):
                continue
            parts = PurePosixPath(rel).parts
            if not parts or not all(self._keep(part) for part in parts):
                continue
            path = root / rel
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                covered.append(rel)
                for found in scan_root(path, self._keep):
                    yield SourceFile(root, f"{rel}/{found.rel}", found.size, found.mtime_ns)
            elif stat.S_ISREG(info.st_mode):
                yield SourceFile(root, rel, info.st_size, info.st_mtime_ns)

    def _known_in(self, root: Path, root_id: str, paths: list[str]) -> dict[str, FileRecord]:
        """Manifest rows at or under ``paths``, by ``path_id``."""
        keys = self.vault.keys
        exact = {keys.blind("path", f"{root_id}\x00{rel}"): rel for rel in paths}
        known = self.vault.manifest.by_path_ids(exact)
        prefixes = [
            rel + "/"
            for path_id, rel in exact.items()
            if path_id not in known and not (root / rel).is_file()
        ]
        if prefixes:  # a directory (or what was one): find its rows by their decrypted paths
            ciphers: dict[str, ClientCipher] = {}
            for path_id, row in self.vault.manifest.files_under(root_id).items():
                if row.client_id not in ciphers:
                    ciphers[row.client_id] = keys.cipher(row.client_id, create=False)
                rel = ciphers[row.client_id].decrypt(row.path_ct, row.file_id)
                if rel.startswith(tuple(prefixes)):
                    known[path_id] = row
        return known

    def _vanished(self, root: Path, content_id: str) -> FileRecord | None:
        """A row of this root with this content whose file is no longer on disk."""
        root_id = self.vault.keys.blind("root", str(root))
        for row in self.vault.manifest.by_content(content_id):
            if row.root_id != root_id:
                continue
            cipher = self.vault.keys.cipher(row.client_id, create=False)
            if not (root / cipher.decrypt(row.path_ct, row.file_id)).exists():
                return row
        return None

    # --- moves and removals ----------------------------------------------------

    def _move(
        self, old: FileRecord, file: SourceFile, path_id: str, root_id: str, report: IndexReport
    ) -> None:
        vault = self.vault
        cipher = vault.client_cipher(file.client)
        if cipher.client_id == old.client_id:
            file_id = old.file_id
        else:
            file_id = self._reencrypt(old, cipher.client_id, file.rel)
        record = FileRecord(
            path_id=path_id, root_id=root_id, client_id=cipher.client_id, file_id=file_id,
            path_ct=cipher.encrypt(file.rel, file_id), content_id=old.content_id,
            kind=file.kind, size=file.size, mtime_ns=file.mtime_ns, state=old.state,
            reason=old.reason, chunks=old.chunks, updated=time.time(), personal=old.personal,
        )  # fmt: skip
        with vault.manifest.transaction():
            vault.manifest.delete_file(old.path_id)
            vault.manifest.put_file(record)
            if file_id != old.file_id:
                vault.manifest.add_intents([old.file_id])
        if file_id != old.file_id:
            vault.delete_files([old.file_id])
            vault.manifest.clear_intents([old.file_id])
        else:  # the path's words label the chunks in the keyword index: new path, new labels
            vault.keywords.add(_stored_keywords(vault, cipher, file_id, file.rel))
        report.moved += 1

    def _reencrypt(self, old: FileRecord, client_id: str, rel: str) -> str:
        """Copy a file's chunks under a new file id and client key; no re-embedding."""
        source = self.vault.keys.cipher(old.client_id, create=False)
        target = self.vault.keys.cipher(client_id)
        file_id = secrets.token_hex(16)
        records, entries = [], []
        for chunk in self.vault.store.get_file_chunks(old.file_id):
            payload = source.decrypt(chunk.meta["ct"], chunk.id)
            new_id = _chunk_id(file_id, chunk.meta["n"])
            meta = ChunkMeta(
                client=client_id,
                file=file_id,
                page=chunk.meta["page"],
                n=chunk.meta["n"],
                ct=target.encrypt(payload, new_id),
            )
            records.append(ChunkRecord(new_id, chunk.embedding, meta))
            entries.append(_keywords(target, new_id, file_id, json.loads(payload), rel))
        english = []
        if ENGLISH in self.vault.store.spaces:
            for chunk in self.vault.store.get_file_chunks(old.file_id, ENGLISH):
                new_id = _chunk_id(file_id, chunk.meta["n"])
                meta = {**chunk.meta, "client": client_id, "file": file_id}
                english.append(ChunkRecord(new_id, chunk.embedding, _english_meta(meta)))
        self.vault.manifest.add_intents([file_id])
        self.vault.write_chunks(records, entries, english)
        return file_id

    def _remove(self, rows: list[FileRecord], report: IndexReport) -> None:
        if not rows:
            return
        manifest = self.vault.manifest
        with manifest.transaction():
            for row in rows:
                manifest.delete_file(row.path_id)
            manifest.add_intents(row.file_id for row in rows)
        ids = [row.file_id for row in rows]
        self.vault.delete_files(ids)
        manifest.clear_intents(ids)
        report.removed += len(rows)
        report.chunks_removed += sum(row.chunks for row in rows)

    # --- conversion, embedding, writing ----------------------------------------

    def _convert_and_write(
        self, changes: list[_Change], report: IndexReport, progress: Progress | None
    ) -> None:
        if not changes:
            return
        by_file = {(change.file.root, change.file.rel): change for change in changes}
        done = 0
        # Two stages: this thread chunks and embeds a batch while a writer thread
        # encrypts, writes and records the previous one (at most one batch waits).
        # (one long-lived writer thread: its SQLite connections are reused, not leaked)
        writing: Future[int] | None = None
        try:
            for batch in self._batches(
                self._converter.map((change.file for change in changes), lookahead=_LOOKAHEAD)
            ):
                files = [
                    (by_file[(c.file.root, c.file.rel)], c, secrets.token_hex(16)) for c in batch
                ]
                embedded = self._embed(files)
                if writing is not None:
                    done += writing.result()
                    if progress:
                        progress(done, len(changes))
                writing = self._writer.submit(self._write_batch, files, embedded, report)
        finally:
            if writing is not None:
                done += writing.result()  # never leave a write running: the caller holds the lock
        if progress:
            progress(done, len(changes))

    def _batches(self, results: Iterator[Converted]) -> Iterator[list[Converted]]:
        batch: list[Converted] = []
        elements = 0
        for result in results:
            batch.append(result)
            elements += len(result.elements)
            if elements >= _BATCH_ELEMENTS or len(batch) >= self.settings.batch_files:
                yield batch
                batch, elements = [], 0
        if batch:
            yield batch

    def _embed(self, batch: list[tuple[_Change, Converted, str]]) -> dict[str, list[Document]]:
        """Chunk and embed the elements of a batch of files; chunks by file id."""
        documents = [
            Document(
                content=element.text,
                meta={
                    "file_id": file_id,
                    "source": element.source or "",
                    "page": element.page or 0,
                    "section": element.section or "",
                },
            )
            for _, converted, file_id in batch
            for element in converted.elements
            if element.text.strip()
        ]
        by_file: dict[str, list[Document]] = {}
        if documents:
            # The pipeline's components in order, as Pipeline.run would call them,
            # without its deep copy of every input Document (14 % of the run on
            # office files, which have thousands of small elements); the
            # components never mutate their inputs.
            chunks = self._chunker.run(documents=documents)["documents"]
            for chunk in self._embedder.run(documents=chunks)["documents"]:
                by_file.setdefault(chunk.meta["file_id"], []).append(chunk)
        return by_file

    def _encrypt(
        self, chunks: list[Document], cipher: ClientCipher, rel: str
    ) -> Iterator[tuple[ChunkRecord, KeywordEntry]]:
        for chunk in chunks:
            meta = chunk.meta
            chunk_id = _chunk_id(meta["file_id"], meta["n"])
            payload = {
                "text": chunk.content or "",
                "source": meta["source"],
                "section": meta["section"],
            }
            record = ChunkRecord(
                chunk_id,
                chunk.embedding or [],
                {
                    "client": cipher.client_id,
                    "file": meta["file_id"],
                    "page": meta["page"],
                    "n": meta["n"],
                    "ct": cipher.encrypt(json.dumps(payload, ensure_ascii=False), chunk_id),
                },
            )
            yield record, _keywords(cipher, chunk_id, meta["file_id"], payload, rel)

    def _embed_english(self, chunks: list[tuple[ChunkRecord, str]]) -> list[ChunkRecord]:
        """Second embeddings, by the English model, of (main record, text) pairs."""
        if self._english is None or not chunks:
            return []
        documents = [Document(id=record.id, content=text) for record, text in chunks]
        embedded = self._english.run(documents=documents)["documents"]
        return [
            ChunkRecord(record.id, doc.embedding or [], _english_meta(record.meta))
            for (record, _), doc in zip(chunks, embedded, strict=True)
        ]

    def _sync_english(self) -> int:
        """Embed with the English model the English chunks that lack it (after an upgrade,
        or when ``embedding_model_en`` was just set); returns how many."""
        vault = self.vault
        if self._english is None or vault.keywords.count_in("en") == vault.store.count(ENGLISH):
            return 0
        missing = sorted(set(vault.keywords.chunks_in("en")) - vault.store.ids(ENGLISH))
        ciphers: dict[str, ClientCipher] = {}
        done = 0
        for start in range(0, len(missing), 256):
            chunks = []
            for chunk_id, meta in vault.store.get(missing[start : start + 256]).items():
                if meta["client"] not in ciphers:
                    ciphers[meta["client"]] = vault.keys.cipher(meta["client"], create=False)
                text = json.loads(ciphers[meta["client"]].decrypt(meta["ct"], chunk_id))["text"]
                chunks.append((ChunkRecord(chunk_id, [], meta), text))
            done += vault.store.upsert(self._embed_english(chunks), ENGLISH)
        if done:
            log.info("English model: %d chunks embedded that lacked it", done)
        return done

    def _content_id(self, converted: Converted) -> str | None:
        """The blind content id of a converted file (None: unread, or changed since the scan)."""
        if converted.digest is None:
            return None
        return self.vault.keys.blind("content", converted.digest)

    def _personal(self, converted: Converted) -> str | None:
        """Counts of personal identifiers in a file's text, as JSON (None: none found)."""
        names = self.settings.personal_data_names
        total: Counter[str] = Counter()
        for element in converted.elements:
            total.update(count_personal_data(element.text, names=names))
        return json.dumps(dict(sorted(total.items()))) if total else None

    def _write_batch(
        self,
        batch: list[tuple[_Change, Converted, str]],
        by_file: dict[str, list[Document]],
        report: IndexReport,
    ) -> int:
        """Encrypt and write a batch's chunks, then commit its files; returns how many files."""
        vault, manifest = self.vault, self.vault.manifest
        records: list[ChunkRecord] = []
        entries: list[KeywordEntry] = []
        english: list[tuple[ChunkRecord, str]] = []
        rows: list[tuple[_Change, FileRecord]] = []
        for change, result, file_id in batch:
            cipher = vault.client_cipher(change.file.client)
            chunks = by_file.get(file_id, [])
            reason = result.reason or (None if chunks else EMPTY)
            if reason is None:
                for chunk, (record, entry) in zip(
                    chunks, self._encrypt(chunks, cipher, change.file.rel), strict=True
                ):
                    records.append(record)
                    entries.append(entry)
                    if entry.language == "en":
                        english.append((record, chunk.content or ""))
            file = change.file
            row = FileRecord(
                path_id=change.path_id,
                root_id=change.root_id,
                client_id=cipher.client_id,
                file_id=file_id,
                path_ct=cipher.encrypt(file.rel, file_id),
                content_id=change.content_id or self._content_id(result),
                kind=file.kind,
                size=file.size,
                mtime_ns=file.mtime_ns,
                state="failed" if reason else "indexed",
                reason=reason,
                chunks=0 if reason else len(chunks),
                updated=time.time(),
                personal=None if reason else self._personal(result),
            )
            rows.append((change, row))

        manifest.add_intents(row.file_id for _, row in rows)
        written = vault.write_chunks(records, entries, self._embed_english(english))
        replaced = [change.old.file_id for change, _ in rows if change.old is not None]
        with manifest.transaction():
            for _, row in rows:
                manifest.put_file(row)
            manifest.add_intents(replaced)
        if replaced:
            vault.delete_files(replaced)
            manifest.clear_intents(replaced)
        report.chunks_written += written
        for change, row in rows:
            if row.state == "failed":
                report.failed += 1
                report.failures.append({"path": change.file.rel, "reason": row.reason or ""})
            elif change.old is None:
                report.added += 1
            else:
                report.updated += 1
        return len(batch)
