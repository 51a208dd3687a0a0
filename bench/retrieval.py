#!/usr/bin/env python3
"""Retrieval quality of each configuration, on the dev benchmarks, in one run.

For each main embedding model, each benchmark's corpus is indexed once
(through ``huisclos eval retrieval``'s code path, ``evaluate_retrieval``, into
a vault kept under ``--cache``), then every retrieval configuration is scored
on the same vault: dense only, sparse only (BM25), hybrid (weighted score
fusion or reciprocal rank fusion), with and without the English model.
Results go to ``--out`` as JSON and are printed as a Markdown table (the one
in ``docs/retrieval.md``).

Usage (from the repository root)::

    nice .venv/bin/python bench/retrieval.py                       # everything
    nice .venv/bin/python bench/retrieval.py --sets piaf-fr --limit 300

Data is read in place from ``<repo>/../shared/data`` and never copied into
the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HUISCLOS_KEY_SOURCE", "file")

from huisclos.pipeline.evaluation.retrieval import evaluate_retrieval

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SETS = {"scifact": DATA / "scifact", "piaf-fr": DATA / "piaf-fr"}
NO_EN = {"embedding_model_en": ""}
MINILM = {"embedding_model": "minilm", "embedding_model_en": ""}
CONFIGS: dict[str, dict[str, Any]] = {
    "dense usem3": {"retrieval": "dense", **NO_EN},
    "sparse BM25 k1=1.2 b=0.75": {"retrieval": "sparse", "bm25_k1": 1.2, "bm25_b": 0.75, **NO_EN},
    "sparse BM25 k1=0.9 b=0.4": {"retrieval": "sparse", **NO_EN},
    "hybrid usem3 RRF 1:1": {"fusion": "rrf", "dense_weight": 1.0, "sparse_weight": 1.0, **NO_EN},
    "hybrid usem3 weighted 0.3/0.7": {**NO_EN},
    "dense minilm": {"retrieval": "dense", **MINILM},
    "hybrid minilm weighted 0.3/0.7": {**MINILM},
    "dense usem3 + minilm (en)": {"retrieval": "dense"},
    "hybrid usem3 + minilm (en) RRF 1:1": {"fusion": "rrf", "dense_weight": 1.0,
                                            "sparse_weight": 1.0},
    "hybrid usem3 + minilm (en) weighted 0.2/0.8": {"dense_weight": 0.2, "sparse_weight": 0.8},
    "hybrid usem3 + minilm (en) weighted 0.4/0.6": {"dense_weight": 0.4, "sparse_weight": 0.6},
    "hybrid usem3 + minilm (en) weighted 0.3/0.7 (default)": {},
}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    parser.add_argument("--limit", type=int, help="only the first N judged queries of each set")
    parser.add_argument("--cache", default="/tmp/huisclos-bench-retrieval", help="kept vaults")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "retrieval.json"))
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for name in args.sets.split(","):
        for config in args.configs.split(","):
            overrides = CONFIGS[config]
            model = overrides.get("embedding_model", "usem3")
            english = overrides.get("embedding_model_en", "minilm") and model == "usem3"
            # one vault per (set, models): turning the English model off drops its vectors
            suffix = "" if english or model != "usem3" else "-noen"
            home = Path(args.cache) / f"{name}-{model}{suffix}"
            report = evaluate_retrieval(SETS[name], limit=args.limit, home=home, **overrides)
            row = {"set": name, "model": model, "config": config, **report.to_dict()}
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "command": "python bench/retrieval.py " + " ".join(sys.argv[1:]),
                "started": started,
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "loadavg_end": os.getloadavg()[0],
                },
                "results": results,
            },
            indent=1,
        )
        + "\n"
    )
    print("| set | configuration | nDCG@10 | Recall@5 | Recall@10 | MRR@10 | "
          "search median / p95 (ms) | index (s) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in results:
        print(
            f"| {row['set']} | {row['config']} | {row['ndcg_at_10']:.3f} | "
            f"{row['recall_at_5']:.3f} | {row['recall_at_10']:.3f} | {row['mrr_at_10']:.3f} | "
            f"{row['median_query_ms']:.0f} / {row['p95_query_ms']:.0f} | "
            f"{row['index_seconds']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
