"""Measure answer quality on labelled questions, through the real code path.

``evaluate_answers`` indexes a folder of documents into a throw-away vault
(the same ingest as ``huisclos index``), asks every question through
``Huisclos.ask`` (the same path as ``huisclos ask``) and scores each answer
against the expected ones:

- correct: the normalised expected answer appears in the normalised answer,
  or, for long expected answers (3 content words or more, e.g. extractive
  spans; content words are those that are not stop words,
  :func:`huisclos.index.language.is_stop_word`, the keyword index's list),
  at least half of its content words do; or, for a yes/no question,
  the answer opens with the yes or no that the expected span implies (a span
  with a negation such as "n'est plus possible" means no, otherwise yes);
- token F1 between answer and expected answer (SQuAD-style, best over the
  expected answers);
- citation: the expected ``source_file`` is among the cited files;
- latency: time to first token and to the full answer.

QA file: one JSON object per line, ``{"question": str, "answers": [str],
"source_file": str}``, ``source_file`` relative to the documents folder.

Example::

    report = evaluate_answers("spf-qa-fr/qa.jsonl", "spf-qa-fr", limit=20)
    print(report.accuracy, report.citation_accuracy, report.median_seconds)
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from huisclos.config import ConfigError, load_settings
from huisclos.index.language import fold, is_stop_word

__all__ = [
    "AnswerEvalReport",
    "evaluate_answers",
    "is_yes_no_question",
    "normalise",
    "score_answer",
]


def normalise(text: str) -> list[str]:
    """Lower-case, accent-free alphanumeric tokens (apostrophes split words)."""
    text = fold(text.lower().replace("’", "'"))
    cleaned = "".join(ch if ch.isalnum() else " " for ch in text)
    return cleaned.split()


def _f1(prediction: list[str], truth: list[str]) -> float:
    common = Counter(prediction) & Counter(truth)
    same = sum(common.values())
    if not same:
        return 0.0
    precision = same / len(prediction)
    recall = same / len(truth)
    return 2 * precision * recall / (precision + recall)


_WH_FIRST = frozenset(
    [
        "qu",
        "que",
        "quel",
        "quelle",
        "quels",
        "quelles",
        "quoi",
        "qui",
        "comment",
        "combien",
        "ou",
        "quand",
        "pourquoi",
        "lequel",
        "laquelle",
        "lesquels",
        "lesquelles",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
    ]
)
_WH_LATER = frozenset(
    [
        "quel",
        "quelle",
        "quels",
        "quelles",
        "combien",
        "comment",
        "pourquoi",
        "quand",
        "quoi",
        "lequel",
        "laquelle",
        "lesquels",
        "lesquelles",
    ]
)
_INVERTED = ("il", "elle", "on", "ils", "elles", "je", "vous", "nous")
_EN_AUXILIARIES = frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "can",
        "could",
        "do",
        "does",
        "did",
        "should",
        "shall",
        "may",
        "might",
        "must",
        "will",
        "would",
        "has",
        "have",
        "had",
        "am",
    ]
)
_NEGATIONS = frozenset(["pas", "non", "jamais", "aucun", "aucune", "impossible", "not", "no"])
_UNDECIDED = frozenset(["depend", "depends", "selon"])
_PREPOSITIONS = frozenset(
    [
        "a",
        "avec",
        "de",
        "d",
        "pour",
        "sur",
        "contre",
        "par",
        "en",
        "dans",
        "chez",
        "vers",
        "depuis",
        "jusqu",
        "sous",
        "selon",
        "apres",
        "avant",
        "aupres",
        "to",
        "with",
        "for",
        "by",
        "from",
        "in",
        "on",
        "of",
        "at",
    ]
)


def is_yes_no_question(question: str) -> bool:
    """A closed question ("Peut-on ... ?", "Un intérimaire a-t-il ... ?", "Can I ... ?")."""
    clause = question.lower().replace("’", "'").split(":")[-1]
    words = normalise(clause)
    if not words or words[0] in _WH_FIRST:
        return False
    head = normalise(clause.split("-")[0])  # the words before an inverted verb
    if set(head) & _WH_LATER:  # "Dans quels cas peut-on", "Au profit de quoi ..."
        return False
    if any(a in _PREPOSITIONS and b in {"qui", "que"} for a, b in itertools.pairwise(head)):
        return False  # "Avec qui ...", "Auprès de qui ..." (not "Un étranger qui ...")
    if words[0] in _EN_AUXILIARIES or words[:3] == ["est", "ce", "que"]:
        return True
    # French subject-verb inversion: "peut-on", "a-t-il", "est-on", "donne t-il"
    return any(f"-{p}" in clause or f" t-{p}" in clause for p in _INVERTED)


def _expected_polarity(tokens: list[str]) -> bool | None:
    """What an expected span says to a yes/no question: yes, no, or it depends (None)."""
    words = set(tokens)
    if words & _UNDECIDED:
        return None
    return not (words & _NEGATIONS or ("plus" in words and words & {"n", "ne"}))


def _polarity(tokens: list[str]) -> bool | None:
    if not tokens:
        return None
    if tokens[0] in {"oui", "yes"}:
        return True
    if tokens[0] in {"non", "no"}:
        return False
    return None


def score_answer(
    answer: str, expected: list[str], question: str | None = None
) -> tuple[bool, float]:
    """(correct, best token F1) of ``answer`` against the expected answers."""
    tokens = normalise(answer)
    said = _polarity(tokens) if question and is_yes_no_question(question) else None
    joined = " " + " ".join(tokens) + " "
    correct = False
    best_f1 = 0.0
    for truth in expected:
        truth_tokens = normalise(truth)
        if not truth_tokens:
            continue
        best_f1 = max(best_f1, _f1(tokens, truth_tokens))
        if " " + " ".join(truth_tokens) + " " in joined:
            correct = True
        content = [t for t in truth_tokens if not is_stop_word(t)]
        if len(content) >= 3 and sum(t in set(tokens) for t in content) >= len(content) / 2:
            correct = True
        # a yes/no answer matching the span's sense, on the span's subject
        on_subject = set(content) <= {"oui", "non", "yes", "no"} or set(content) & set(tokens[1:])
        if said is not None and said == _expected_polarity(truth_tokens) and on_subject:
            correct = True
    return correct, round(best_f1, 4)


@dataclass(frozen=True, slots=True)
class QuestionResult:
    id: str
    answer: str
    correct: bool
    f1: float
    cited_source: bool
    not_found: bool
    citations: int
    first_token_seconds: float | None
    seconds: float


@dataclass(frozen=True, slots=True)
class AnswerEvalReport:
    """Scores of one model on one labelled question set."""

    backend: str
    model: str
    questions: int
    accuracy: float
    f1: float
    citation_accuracy: float
    not_found_rate: float
    median_first_token_seconds: float | None
    median_seconds: float
    index_seconds: float
    seconds: float
    results: list[QuestionResult] = field(default_factory=list)

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not details:
            data.pop("results")
        return data


def load_questions(qa_path: Path, limit: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The questions of a QA file; a seeded random sample of ``limit`` if given."""
    questions = []
    with qa_path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                questions.append(
                    {
                        "id": str(item.get("id", number)),
                        "question": str(item["question"]),
                        "answers": [str(a) for a in item["answers"]],
                        "source_file": str(item["source_file"]),
                    }
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{qa_path}, line {number}: not a QA record ({exc})") from exc
    if limit is not None and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    return questions


def _roots(docs: Path, questions: list[dict[str, Any]]) -> list[Path]:
    """Index only the folders that hold the expected sources (not the QA files)."""
    firsts = {Path(q["source_file"]).parts[0] for q in questions}
    if any((docs / first).is_file() for first in firsts):
        return [docs]
    return [docs / first for first in sorted(firsts)]


def evaluate_answers(
    qa_path: str | Path,
    docs: str | Path,
    *,
    limit: int | None = None,
    seed: int = 0,
    home: str | Path | None = None,
    **overrides: Any,
) -> AnswerEvalReport:
    """Index ``docs``, ask each question of ``qa_path``, score the answers.

    Args:
        qa_path: QA file (JSON lines).
        docs: the folder ``source_file`` paths are relative to.
        limit: ask a seeded random sample of this many questions.
        home: vault to use (kept); by default a throw-away one.
        overrides: settings (e.g. ``llm_model``, ``answer_passages``, ``generator``).
    """
    from huisclos.pipeline.api import Huisclos

    qa_path, docs = Path(qa_path), Path(docs)
    questions = load_questions(qa_path, limit, seed)
    roots = _roots(docs, questions)
    with tempfile.TemporaryDirectory(prefix="huisclos-eval-") as scratch:
        settings = load_settings(
            home=home or Path(scratch) / "vault",
            key_source=overrides.pop("key_source", "file"),
            **overrides,
        )
        started = time.perf_counter()
        with Huisclos(settings) as hc:
            hc.index(*roots)
            index_seconds = time.perf_counter() - started
            hc.warm_up()
            results = [_ask(hc, q, roots, docs) for q in questions]
            backend, model = hc.answerer.generator.backend, hc.answerer.generator.model_name
    total = time.perf_counter() - started
    count = len(results) or 1
    first = [r.first_token_seconds for r in results if r.first_token_seconds is not None]
    return AnswerEvalReport(
        backend=backend,
        model=model,
        questions=len(results),
        accuracy=round(sum(r.correct for r in results) / count, 4),
        f1=round(sum(r.f1 for r in results) / count, 4),
        citation_accuracy=round(sum(r.cited_source for r in results) / count, 4),
        not_found_rate=round(sum(r.not_found for r in results) / count, 4),
        median_first_token_seconds=round(statistics.median(first), 3) if first else None,
        median_seconds=round(statistics.median(r.seconds for r in results), 3) if results else 0.0,
        index_seconds=round(index_seconds, 3),
        seconds=round(total, 3),
        results=results,
    )


def _ask(hc: Any, item: dict[str, Any], roots: list[Path], docs: Path) -> QuestionResult:
    answer = hc.ask(item["question"])
    correct, f1 = score_answer(answer.answer, item["answers"], item["question"])
    expected = Path(item["source_file"]).as_posix()
    cited = {
        (root.relative_to(docs) / citation.path).as_posix()
        for citation in answer.citations
        for root in roots
    }
    return QuestionResult(
        id=item["id"],
        answer=answer.answer,
        correct=correct and not answer.not_found,
        f1=0.0 if answer.not_found else f1,
        cited_source=expected in cited,
        not_found=answer.not_found,
        citations=len(answer.citations),
        first_token_seconds=answer.first_token_seconds,
        seconds=answer.seconds,
    )
