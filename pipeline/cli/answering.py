"""``huisclos search`` and ``huisclos ask``: passages, and answers with their sources.

``ask`` without a question reads one question per line until end of input; one
question that fails is reported and the session goes on, except when the
language model itself cannot answer (then every question would fail).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from huisclos.config import GeneratorError, HuisclosError
from huisclos.pipeline.cli.command import Subcommands, on_the_vault

if TYPE_CHECKING:
    from collections.abc import Sequence

    from huisclos.pipeline.answering.answer import Answer
    from huisclos.pipeline.answering.search import SearchHit
    from huisclos.pipeline.api import Huisclos

__all__ = ["add_parsers"]


def add_parsers(sub: Subcommands) -> None:
    """Add ``search`` and ``ask`` to the ``huisclos`` parser."""
    search = sub.add_parser("search", help="passages closest to a query")
    search.add_argument("query")
    search.add_argument("--client", help="only this client's documents")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=on_the_vault(_search))

    ask = sub.add_parser(
        "ask",
        help="answer a question from the documents, with citations "
        "(no question: interactive, one question per line)",
    )
    ask.add_argument("question", nargs="?", help="in French or English")
    ask.add_argument("--client", help="only this client's documents")
    ask.add_argument("--json", action="store_true", help="print each answer as one JSON line")
    ask.set_defaults(handler=on_the_vault(_ask))


def _search(hc: Huisclos, args: argparse.Namespace) -> int:
    _print_hits(hc.search(args.query, client=args.client, top_k=args.top_k), args.json)
    return 0


def _ask(hc: Huisclos, args: argparse.Namespace) -> int:
    if args.question:
        _ask_one(hc, args.question, args.client, args.json)
    else:
        _interactive(hc, args.client, args.json)
    return 0


def _where(path: str, source: str | None, page: int | None) -> str:
    where = path + (f" › {source}" if source else "")
    return where + (f", p. {page}" if page else "")


def _print_hits(hits: Sequence[SearchHit], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"hits": [hit.to_dict() for hit in hits]}, ensure_ascii=False))
        return
    if not hits:
        print("no match")
    for rank, hit in enumerate(hits, 1):
        where = _where(hit.path, hit.source, hit.page)
        print(f"[{rank}] {where} ({hit.client}, score {hit.score:.3f})")
        print("    " + " ".join(hit.text.split())[:300])


def _print_sources(answer: Answer) -> None:
    if not answer.citations:
        return
    print()
    for citation in answer.citations:
        print(f"[{citation.n}] {_where(citation.path, citation.source, citation.page)} "
              f"({citation.client})")  # fmt: skip
        print(f"    « {citation.snippet} »")


def _ask_one(hc: Huisclos, question: str, client: str | None, as_json: bool) -> None:
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


def _interactive(hc: Huisclos, client: str | None, as_json: bool) -> None:
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
