"""The keyword index: BM25 scores, client scoping, deletions, no plaintext term on disk."""

from __future__ import annotations

import math
import secrets
from pathlib import Path

import pytest

from huisclos.index.keys import ClientCipher
from huisclos.index.keywords import KeywordEntry, KeywordIndex, keyword_entry
from huisclos.index.terms import query_terms

DUPONT = ClientCipher("dupont", secrets.token_bytes(32))
ACME = ClientCipher("acme", secrets.token_bytes(32))

PASSAGES = {
    ("dupont", "f1-0"): "Le contrat de prestation peut être résilié avec un préavis de trois mois.",
    ("dupont", "f1-1"): "Facture 2024-117 : montant TTC 4 860,00 euros, réglée par virement.",
    ("dupont", "f2-0"): "Le contrat d'entretien couvre la chaudière et le contrat de gaz.",
    ("acme", "f3-0"): "Fees are billed quarterly at a fixed rate of 1,200 euros per quarter.",
    ("acme", "f3-1"): "The engagement letter may be terminated with thirty days notice.",
}


def _cipher(client: str) -> ClientCipher:
    return DUPONT if client == "dupont" else ACME


@pytest.fixture
def index(tmp_path: Path) -> KeywordIndex:
    sparse = KeywordIndex(tmp_path / "sparse.sqlite3")
    sparse.add(
        keyword_entry(_cipher(client), chunk, chunk.split("-")[0], text)
        for (client, chunk), text in PASSAGES.items()
    )
    return sparse


def _search(index: KeywordIndex, query: str, clients: list[str], top_k: int = 5):  # type: ignore[no-untyped-def]
    terms = query_terms(query)
    by_client = [_cipher(c).term_ids(terms) for c in clients]
    return index.search([list(col) for col in zip(*by_client, strict=True)], top_k, clients)


def test_an_identifier_finds_its_passage_first(index: KeywordIndex) -> None:
    hits = _search(index, "montant TTC de la facture 2024-117", ["dupont", "acme"])
    assert hits[0][0] == "f1-1"


def test_scores_are_bm25_over_the_searched_chunks(index: KeywordIndex) -> None:
    """Recompute Lucene BM25 by hand for a one-term query over all five chunks."""
    hits = dict(_search(index, "contrat", ["dupont", "acme"]))
    assert set(hits) == {"f1-0", "f2-0"}
    lengths = {}
    for (client, chunk), text in PASSAGES.items():
        entry = keyword_entry(_cipher(client), chunk, "f", text)
        lengths[chunk] = sum(entry.terms.values())
    average = sum(lengths.values()) / len(lengths)
    idf = math.log(1 + (5 - 2 + 0.5) / (2 + 0.5))
    for chunk, tf in (("f1-0", 1), ("f2-0", 2)):
        norm = 1.2 * (1 - 0.75 + 0.75 * lengths[chunk] / average)
        assert hits[chunk] == pytest.approx(idf * tf * 2.2 / (tf + norm))
    assert hits["f2-0"] > hits["f1-0"]  # two occurrences beat one


def test_a_client_scoped_search_sees_only_that_client(index: KeywordIndex) -> None:
    assert [chunk for chunk, _ in _search(index, "euros", ["acme"])] == ["f3-0"]
    assert {chunk for chunk, _ in _search(index, "euros", ["dupont", "acme"])} == {"f1-1", "f3-0"}


def test_a_term_hashed_under_another_clients_key_matches_nothing(index: KeywordIndex) -> None:
    terms = query_terms("fees quarterly")
    assert index.search([[h] for h in DUPONT.term_ids(terms)], 5, ["acme"]) == []
    assert DUPONT.term_ids(["contrat"]) != ACME.term_ids(["contrat"])


def test_deleting_files_and_clients_removes_their_chunks(index: KeywordIndex) -> None:
    index.delete_files(["f1"])
    assert index.count() == 3
    assert [c for c, _ in _search(index, "contrat facture", ["dupont"])] == ["f2-0"]
    index.delete_client("acme")
    assert index.count() == 1
    assert _search(index, "fees", ["acme"]) == []
    index.delete_files(["f1", "nothing"])  # idempotent
    assert index.file_ids() == {"f2"}


def test_re_adding_a_chunk_replaces_it(index: KeywordIndex) -> None:
    index.add([keyword_entry(DUPONT, "f1-0", "f1", "Clause de confidentialité.")])
    assert index.count() == 5
    assert _search(index, "résilié", ["dupont"]) == []
    assert [c for c, _ in _search(index, "confidentialité", ["dupont"])] == ["f1-0"]


def test_no_word_of_the_passages_is_on_disk(index: KeywordIndex, tmp_path: Path) -> None:
    index.compact()
    index.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for word in ("contrat", "contra", "factur", "facture", "quarterly", "quarter", "2024", "euros"):
        assert word.encode() not in data


def test_erased_postings_leave_no_bytes_after_compaction(tmp_path: Path) -> None:
    path = tmp_path / "sparse.sqlite3"
    index = KeywordIndex(path)
    marker = 0x5A5A5A5A5A5A5A5A
    index.add([KeywordEntry("c-0", "c", "client", {marker: 7})])
    index.delete_client("client")
    index.compact()
    index.close()
    assert marker.to_bytes(8, "big") not in path.read_bytes()


def test_a_search_with_nothing_indexed_or_no_known_term_is_empty(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "sparse.sqlite3")
    assert _search(index, "contrat", ["dupont"]) == []
    index.add([keyword_entry(DUPONT, "f-0", "f", "Le contrat.")])
    assert _search(index, "inconnu", ["dupont"]) == []
    assert index.search([], 5, ["dupont"]) == []


def test_labels_make_a_passage_findable_by_its_file_name(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "sparse.sqlite3")
    index.add(
        [keyword_entry(DUPONT, "f-0", "f", "Article 4 : durée.", "Dupont SARL/bail-commercial")]
    )
    assert [c for c, _ in _search(index, "bail commercial", ["dupont"])] == ["f-0"]


def test_the_index_survives_reopening_and_knows_its_analysis_version(tmp_path: Path) -> None:
    path = tmp_path / "sparse.sqlite3"
    index = KeywordIndex(path)
    index.add([keyword_entry(DUPONT, "f-0", "f", "Le contrat.")])
    index.close()
    again = KeywordIndex(path)
    assert again.count() == 1 and not again.outdated
    again.db.execute("UPDATE meta SET value = 'old' WHERE key = 'analysis'")
    assert again.outdated
    again.clear()
    assert again.count() == 0 and not again.outdated


def test_an_index_made_before_languages_were_kept_is_opened_and_marked_outdated(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "sparse.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE chunks(id INTEGER PRIMARY KEY, chunk TEXT NOT NULL UNIQUE, "
        "file TEXT NOT NULL, client TEXT NOT NULL, length INTEGER NOT NULL);"
        "INSERT INTO chunks(chunk, file, client, length) VALUES ('f-0', 'f', 'c', 3);"
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('analysis', '2');"
    )
    db.commit()
    db.close()
    index = KeywordIndex(path)
    assert index.outdated  # the next index run rebuilds it, languages included
    assert index.count_in("en") == 0


# --- large indexes: impact order, kept document frequencies, bounded reading ----------

WORDS = [
    "contrat",
    "facture",
    "bail",
    "devis",
    "relance",
    "acompte",
    "solde",
    "echeance",
    "note",
    "courrier",
]


def _large(path: Path, **limits: int) -> KeywordIndex:
    """300 chunks of two clients: "contrat" in all, "loyer" in a third, "avenant" in three."""
    index = KeywordIndex(path, **limits)
    entries = []
    for n in range(300):
        cipher = DUPONT if n % 2 else ACME
        words = ["contrat"] * (1 + n % 3) + [WORDS[1 + n % 9]] * (n % 4) + ["relance"] * (n % 5)
        if n % 3 == 0:
            words.append("loyer")
        if n in (7, 150, 299):
            words += ["avenant", "avenant"]
        entries.append(keyword_entry(cipher, f"f{n}-0", f"f{n}", " ".join(words)))
    index.add(entries)
    return index


def _counted(index: KeywordIndex) -> dict[int, int]:
    rows = index.db.execute("SELECT term, COUNT(*) FROM postings GROUP BY term").fetchall()
    return dict(rows)


def test_document_frequencies_are_kept_through_adds_replacements_and_deletions(
    tmp_path: Path,
) -> None:
    index = _large(tmp_path / "sparse.sqlite3")
    kept = lambda: dict(index.db.execute("SELECT term, df FROM terms").fetchall())  # noqa: E731
    assert kept() == _counted(index)
    index.add([keyword_entry(DUPONT, "f1-0", "f1", "Clause de confidentialité.")])
    index.delete_files(["f2", "f3", "nothing"])
    assert kept() == _counted(index)
    index.delete_client("acme")
    assert kept() == _counted(index) and index.count() == 149
    index.clear()
    assert kept() == {} == _counted(index)


def test_postings_are_kept_in_impact_order_within_a_term(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "sparse.sqlite3")
    assert index.impact(2, 100) > index.impact(1, 100) > index.impact(1, 300) > 0
    index.add(
        [
            keyword_entry(DUPONT, "f-0", "f", "contrat " + "mot " * 200),
            keyword_entry(DUPONT, "f-1", "f", "contrat contrat"),
            keyword_entry(DUPONT, "f-2", "f", "contrat bail"),
        ]
    )
    (term,) = DUPONT.term_ids(["contrat"])
    rows = index.db.execute(
        "SELECT c.chunk FROM postings p JOIN chunks c ON c.id = p.chunk WHERE p.term = ? "
        "ORDER BY p.impact DESC",
        (term,),
    ).fetchall()
    assert [chunk for (chunk,) in rows] == ["f-1", "f-2", "f-0"]


def test_a_bounded_search_reads_rare_terms_whole_and_gives_exact_scores(tmp_path: Path) -> None:
    """A budget of 60 postings for 300 + 100 + 3: "avenant" is read whole and decides."""
    path = tmp_path / "sparse.sqlite3"
    exact = _large(path)  # the default budget holds the whole query
    bounded = KeywordIndex(path, budget=60, rescore=10)
    clients = ["dupont", "acme"]
    got = _search(bounded, "contrat loyer avenant", clients, top_k=5)
    want = _search(exact, "contrat loyer avenant", clients, top_k=300)
    assert len(want) == 300 and len(got) == 5
    assert [c for c, _ in got[:3]] == [c for c, _ in want[:3]]  # the three with "avenant"
    assert {c for c, _ in got[:3]} == {"f7-0", "f150-0", "f299-0"}
    scores = dict(want)
    for chunk, score in got:  # the chunks found have their exact scores, best first
        assert score == pytest.approx(scores[chunk])
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def test_a_bounded_search_keeps_to_the_clients_searched(tmp_path: Path) -> None:
    bounded = _large(tmp_path / "sparse.sqlite3", budget=40, rescore=10)
    hits = _search(bounded, "contrat loyer avenant", ["acme"], top_k=10)
    assert hits and all(int(chunk[1:].split("-")[0]) % 2 == 0 for chunk, _ in hits)


def test_an_index_of_the_earlier_layout_is_searched_exactly_until_rebuilt(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "sparse.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE chunks(id INTEGER PRIMARY KEY, chunk TEXT NOT NULL UNIQUE, "
        "file TEXT NOT NULL, client TEXT NOT NULL, length INTEGER NOT NULL, "
        "lang TEXT NOT NULL DEFAULT '');"
        "CREATE TABLE postings(term INTEGER NOT NULL, chunk INTEGER NOT NULL, "
        "tf INTEGER NOT NULL, PRIMARY KEY (term, chunk)) WITHOUT ROWID;"
        "CREATE INDEX postings_chunk ON postings(chunk);"
        "CREATE TABLE stats(client TEXT PRIMARY KEY, chunks INTEGER NOT NULL, "
        "terms INTEGER NOT NULL);"
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('analysis', '2');"
    )
    (term,) = DUPONT.term_ids(["contrat"])
    db.execute("INSERT INTO chunks VALUES (1, 'f-0', 'f', 'dupont', 2, 'fr')")
    db.execute("INSERT INTO postings VALUES (?, 1, 2)", (term,))
    db.execute("INSERT INTO stats VALUES ('dupont', 1, 2)")
    db.commit()
    db.close()
    index = KeywordIndex(path)
    assert index.outdated  # the next index run rebuilds it
    assert [c for c, _ in _search(index, "contrat", ["dupont"])] == ["f-0"]
    index.add([keyword_entry(DUPONT, "g-0", "g", "Le contrat.")])  # still writable
    assert {c for c, _ in _search(index, "contrat", ["dupont"])} == {"f-0", "g-0"}
    index.clear()
    assert not index.outdated and index.count() == 0
    index.add([keyword_entry(DUPONT, "h-0", "h", "Le contrat.")])
    assert [c for c, _ in _search(index, "contrat", ["dupont"])] == ["h-0"]
    columns = {row[1] for row in index.db.execute("PRAGMA table_info(postings)")}
    assert "impact" in columns
    assert dict(index.db.execute("SELECT term, df FROM terms").fetchall()) == {term: 1}


def test_whether_a_language_is_held_is_told_without_counting(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "sparse.sqlite3")
    assert not index.holds("en")
    index.add([keyword_entry(ACME, "f-0", "f", "The engagement letter may be terminated.")])
    assert index.holds("en") and not index.holds("fr")
