"""The retrieval benchmark harness: metrics, BEIR loading, and `huisclos eval retrieval`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from huisclos.config import ConfigError
from huisclos.pipeline.cli import main
from huisclos.pipeline.evaluation.retrieval import (
    evaluate_retrieval,
    load_qrels,
    ndcg_at,
    recall_at,
    reciprocal_rank_at,
)


def test_ndcg_of_a_perfect_ranking_is_one_and_of_a_miss_zero() -> None:
    assert ndcg_at(["a", "b", "x"], {"a": 1, "b": 1}) == pytest.approx(1.0)
    assert ndcg_at(["x", "y"], {"a": 1}) == 0.0


def test_ndcg_discounts_by_rank_and_uses_grades() -> None:
    # one relevant document at rank 2: 1/log2(3)
    assert ndcg_at(["x", "a"], {"a": 1}) == pytest.approx(1 / math.log2(3))
    # grades: the better document first is ideal, second is not
    assert ndcg_at(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)
    swapped = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at(["b", "a"], {"a": 2, "b": 1}) == pytest.approx(swapped)
    # beyond k does not count
    assert ndcg_at(["x"] * 10 + ["a"], {"a": 1}, 10) == 0.0


def test_recall_and_reciprocal_rank() -> None:
    relevant = {"a": 1, "b": 1, "n": 0}
    assert recall_at(["a", "x", "b"], relevant, 2) == 0.5
    assert recall_at(["a", "x", "b"], relevant, 5) == 1.0
    assert reciprocal_rank_at(["x", "y", "b"], relevant) == pytest.approx(1 / 3)
    assert reciprocal_rank_at(["n", "x"], relevant) == 0.0  # a grade of 0 is not relevant


def _beir(folder: Path, docs: dict[str, tuple[str, str]], queries: dict[str, str],
          qrels: list[tuple[str, str, int]], split: str = "test") -> Path:  # fmt: skip
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for doc_id, (title, text) in docs.items():
            out.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as out:
        for query_id, text in queries.items():
            out.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_qrels_are_read_from_every_split_or_one(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "b", {}, {}, [("q1", "d1", 1), ("q1", "d2", 2)])
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td3\t1\n")
    assert load_qrels(folder) == {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}}
    assert load_qrels(folder, "train") == {"q2": {"d3": 1}}


@pytest.mark.parametrize(
    ("content", "message"),
    [("q\td\ts\nq1\td1\t1\n", "header"), ("query-id\tcorpus-id\tscore\nq1\td1\n", "line 2")],
)
def test_bad_qrels_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_qrels(tmp_path)


def test_a_folder_that_is_not_beir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="qrels"):
        evaluate_retrieval(tmp_path)
    _beir(tmp_path / "b", {}, {}, [("q1", "d1", 1)])
    (tmp_path / "b" / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\nnot json\n')
    with pytest.raises(ConfigError, match="line 2"):
        evaluate_retrieval(tmp_path / "b")


DOCS = {
    "bail/1": ("Bail commercial", "Le preneur peut donner congé avec un préavis de six mois."),
    "tva-2": ("TVA", "Le taux normal de la taxe sur la valeur ajoutée est de 20 %."),
    "rgpd": ("Données personnelles", "Le responsable du traitement tient un registre."),
    "aspirin": ("Aspirin", "Aspirin reduces the risk of heart attack in adults."),
    "penguins": ("Penguins", "Emperor penguins breed during the Antarctic winter."),
    "invoice": ("Invoice 2024-117", "Invoice 2024-117 totals 4,860 euros including VAT."),
}
QUERIES = {
    "q1": "préavis pour quitter un bail commercial",
    "q2": "quel est le taux normal de TVA ?",
    "q3": "registre du responsable de traitement",
    "q4": "does aspirin lower heart attack risk",
    "q5": "when do emperor penguins breed",
    "q6": "invoice 2024-117 amount",
    "q7": "a query nobody judged",
}
QRELS = [("q1", "bail/1", 1), ("q2", "tva-2", 1), ("q3", "rgpd", 1), ("q4", "aspirin", 1),
         ("q5", "penguins", 1), ("q6", "invoice", 1)]  # fmt: skip


@pytest.mark.integration
def test_eval_retrieval_indexes_searches_and_scores_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _beir(tmp_path / "bench", DOCS, QUERIES, QRELS)
    keep = tmp_path / "kept"
    assert main(["eval", "retrieval", str(folder), "--json", "--keep-vault", str(keep)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert set(summary) == {"ndcg@10", "recall@5", "recall@10", "mrr@10", "queries", "seconds"}
    assert summary["queries"] == 6  # the unjudged query is not scored
    assert summary["recall@5"] == 1.0 and summary["ndcg@10"] > 0.9
    assert isinstance(summary["seconds"], float)
    # the kept vault is reused: nothing is indexed again, every mode is scored on it
    report = evaluate_retrieval(folder, home=keep, retrieval="sparse")
    assert report.index_seconds < 5 and report.recall_at_5 == 1.0
    assert report.documents == 6 and report.retrieval == "sparse"


@pytest.mark.integration
def test_eval_answers_is_a_cli_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUISCLOS_LLM_MODEL", "smollm2-135m")  # plumbing, not quality
    docs = tmp_path / "docs"
    (docs / "fiches").mkdir(parents=True)
    (docs / "fiches" / "tva.txt").write_text(DOCS["tva-2"][1] + "\n", encoding="utf-8")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps(
            {"question": QUERIES["q2"], "answers": ["20 %"], "source_file": "fiches/tva.txt"}
        )
        + "\n"
    )
    args = ["eval", "answers", str(qa), "--docs", str(docs), "--json"]
    assert main([*args, "--limit", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["questions"] == 1 and result["index_seconds"] >= 0
    assert (result["backend"], result["model"]) == ("llamacpp", "smollm2-135m")
