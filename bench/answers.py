#!/usr/bin/env python3
"""Answer quality and latency of the packaged language models, end to end.

For each model and each question set, indexes the documents into a throw-away
vault and asks every (sampled) question through ``Huisclos.ask``, the code
path of ``huisclos ask``; scores as in :mod:`huisclos.pipeline.evaluation.answers`
(correct answer, token F1, right source cited, "not found" rate, median time
to first token and to the full answer). One model at a time, in this process,
on a machine otherwise idle: latency figures are only comparable within a run.

Question sets (read in place from ``<repo>/../shared/data``, never copied):

- ``spf``: spf-qa-fr, 105 French questions over 105 service-public.fr pages;
  long extractive expected answers.
- ``piaf``: piaf-fr/qa.jsonl, French Wikipedia, short expected answers; 191
  articles indexed.

Usage (from the repository root)::

    .venv/bin/python bench/answers.py --models qwen2.5-coder-1.5b,qwen2.5-coder-0.5b \\
        --spf 20 --piaf 20
    .venv/bin/python bench/answers.py --models qwen2.5-coder-1.5b --spf 0 --piaf 0  # all

``--spf 0`` / ``--piaf 0`` mean every question; a negative count skips the set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SETS = {
    "spf": (DATA / "spf-qa-fr" / "qa.jsonl", DATA / "spf-qa-fr"),
    "piaf": (DATA / "piaf-fr" / "qa.jsonl", DATA / "piaf-fr"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="qwen2.5-coder-1.5b,qwen2.5-coder-0.5b,smollm2-135m")
    parser.add_argument("--spf", type=int, default=20, help="questions (0: all, <0: skip)")
    parser.add_argument("--piaf", type=int, default=20, help="questions (0: all, <0: skip)")
    parser.add_argument("--passages", type=int, default=None, help="answer_passages setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "answers.json")
    parser.add_argument("--details", action="store_true", help="keep per-question scores")
    args = parser.parse_args()

    from huisclos.pipeline.evaluation.answers import evaluate_answers

    overrides = {} if args.passages is None else {"answer_passages": args.passages}
    runs = []
    for model in args.models.split(","):
        for name, count in (("spf", args.spf), ("piaf", args.piaf)):
            if count < 0:
                continue
            qa, docs = SETS[name]
            started = time.perf_counter()
            report = evaluate_answers(
                qa, docs, limit=count or None, seed=args.seed, llm_model=model, **overrides
            )
            row = {"set": name, **report.to_dict(details=args.details)}
            runs.append(row)
            print(
                f"{model:20} {name:5} n={report.questions:3} correct={report.accuracy:.3f} "
                f"f1={report.f1:.3f} cited={report.citation_accuracy:.3f} "
                f"not_found={report.not_found_rate:.3f} "
                f"ttft={report.median_first_token_seconds}s total={report.median_seconds}s "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": " ".join(sys.argv), "seed": args.seed, "when": time.strftime("%Y-%m-%d")}
    args.out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
