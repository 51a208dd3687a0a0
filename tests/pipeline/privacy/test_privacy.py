"""Privacy you can prove: the audit trail, its verification, the register, masking."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from huisclos.config import ConfigError, Settings, load_settings
from huisclos.pipeline import Huisclos
from huisclos.pipeline.cli import main
from huisclos.pipeline.privacy.audit_trail import ERASED
from huisclos.pipeline.privacy.register import register_schema, render_markdown
from tests.conftest import SAMPLE
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.integration

MODEL = "qwen2.5:7b-instruct"
IBAN = "FR76 3000 6000 0112 3456 7890 189"
DUPONT = f"Facture 2024-117 de Dupont SARL : 4 860,00 euros, à virer sur l'IBAN {IBAN}."
MARTIN = "Bilan kinésithérapie de Martin : zébrure au genou, contact martin.kine@exemple.fr."


@pytest.fixture
def clients(tmp_path: Path) -> Path:
    root = tmp_path / "Clients"
    for client, text in (("Dupont SARL", DUPONT), ("Martin", MARTIN)):
        (root / client).mkdir(parents=True)
        (root / client / "document.txt").write_text(text + "\n", encoding="utf-8")
    return root


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL], reply=lambda body: "Voir le document [1].") as server:
        yield server


def _settings(fake: FakeOllama, **overrides: object) -> Settings:
    return load_settings(
        key_source="file",
        convert_workers=0,
        generator="ollama",
        ollama_url=fake.url,
        ollama_model=MODEL,
        **overrides,
    )


def test_every_action_is_audited_and_the_trail_holds_no_text(
    clients: Path, fake: FakeOllama
) -> None:
    settings = _settings(fake)
    with Huisclos(settings) as hc:
        hc.index(clients)
        hc.search("zébrure au genou", client="Martin", top_k=1)
        hc.ask("Quel est l'IBAN de la facture 2024-117 ?", client="Dupont SARL")
        hc.ask("Que dit le bilan de kinésithérapie ?")
        hc.forget(client="Martin")
        hc.include(client="Martin")
        hc.rotate_master_key()
        hc.register()

        entries = hc.audit()
        assert [e.record.action for e in entries] == [
            "key.create", "key.create", "index", "search", "ask", "ask", "forget",
            "key.rotate", "include", "key.rotate", "register",
        ]  # fmt: skip
        assert all(e.record.user for e in entries)
        assert all(e.question is None for e in entries)  # not decrypted unless asked
        search, scoped_ask, open_ask = hc.audit(actions=["search", "ask"], questions=True)
        assert hc.audit()[-1].record.action == "audit.show"  # reading them is recorded
        assert search.clients == ["(erased " + search.record.clients[0][:8] + ")"]
        assert search.record.chunks and search.record.files
        assert scoped_ask.clients == ["Dupont SARL"]
        assert (scoped_ask.record.backend, scoped_ask.record.model) == ("ollama", MODEL)
        assert scoped_ask.record.local is True
        assert scoped_ask.record.details["outcome"] == "answered"
        # questions stay readable until a client they concerned is erased
        assert scoped_ask.question == "Quel est l'IBAN de la facture 2024-117 ?"
        assert search.question == ERASED
        assert open_ask.question == ERASED  # it was shown Martin's passage
        forget = entries[6]
        assert forget.record.action == "forget"
        assert forget.record.details["key_destroyed"] is True
        assert forget.record.details["files"] == 1
        assert [e.record.action for e in hc.audit(client="Dupont SARL")] == [
            "key.create",
            "ask",
            "ask",
        ]
        assert hc.verify_audit().ok

    trail = (settings.home / "audit.jsonl").read_bytes()
    for secret in ("zébrure", "IBAN", "4 860", "Dupont", "Martin", "kinésithérapie", "genou"):
        assert secret.encode() not in trail
        assert json.dumps(secret).strip('"').encode() not in trail  # nor \\u-escaped


def test_audit_verify_reports_each_tampering_with_its_position(
    clients: Path, fake: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(fake)
    with Huisclos(settings) as hc:
        hc.index(clients)
        for query in ("facture", "genou", "IBAN", "bilan", "contact"):
            hc.search(query, top_k=1)
    log = settings.home / "audit.jsonl"
    pristine = log.read_bytes()
    lines = pristine.decode().splitlines(keepends=True)
    assert len(lines) == 8  # two client keys created, the index run, five searches
    assert main(["audit", "verify"]) == 0
    assert "intact: 8 records" in capsys.readouterr().out

    def verify_with(content: str) -> str:
        log.write_text(content)
        assert main(["audit", "verify"]) == 1
        out = capsys.readouterr().out
        log.write_bytes(pristine)
        return out

    edited = lines[4].replace('"hits":1', '"hits":7')
    assert edited != lines[4]
    out = verify_with("".join([*lines[:4], edited, *lines[5:]]))
    assert "line 5 (seq 5): altered" in out and out.count("\n") == 1

    out = verify_with("".join(lines[:5] + lines[6:]))
    assert "missing" in out and "seq 6" in out

    swapped = [*lines[:3], lines[6], lines[4], lines[5], lines[3], lines[7]]
    out = verify_with("".join(swapped))
    assert "line 4 (seq 7): reordered" in out and "line 7 (seq 4): reordered" in out

    assert main(["audit", "verify"]) == 0


def test_register_in_french_and_as_json_valid_against_the_schema(
    fake: FakeOllama,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "Clients"
    shutil.copytree(SAMPLE, root)
    (root / "Dupont SARL" / "rib.txt").write_text(f"RIB : {IBAN}\nmail : compta@dupont.fr\n")
    monkeypatch.setenv("HUISCLOS_CONTROLLER_NAME", "Cabinet Leroy")
    monkeypatch.setenv("HUISCLOS_RETENTION_DELETED_DAYS", "30")
    settings = _settings(fake)
    with Huisclos(settings) as hc:
        hc.index(root)
        hc.forget(path=root / "Acme Ltd" / "timesheet.csv")
        register = hc.register()

    jsonschema.validate(register, register_schema())
    by_name = {c["name"]: c for c in register["clients"]}
    assert set(by_name) == {"Acme Ltd", "Dupont SARL", "Martin Kiné", "_shared"}
    assert by_name["Dupont SARL"]["personal_data"] == {"email": 1, "iban": 1}
    assert by_name["Dupont SARL"]["documents_by_type"] == {"docx": 1, "md": 1, "txt": 1}
    assert by_name["Acme Ltd"]["files"] == 1
    assert register["erasures"][0]["target"] == "path"
    assert register["processing"]["leaves_machine"] is False
    assert register["audit"]["intact"] is True

    assert main(["register", "--format", "md"]) == 0
    text = capsys.readouterr().out
    for expected in (
        "# Registre des activités de traitement",
        "Cabinet Leroy",
        "| Dupont SARL | 3 |",
        "1 e-mails, 1 IBAN",
        "Aucune donnée ne quitte cette machine",
        "oubliés après 30.0 jours",
        "## Derniers effacements",
        "chaîne d'intégrité vérifiée : intacte",
    ):
        assert expected in text, expected
    assert "# Record of processing activities" in render_markdown(register, "en")
    assert main(["register", "--format", "json"]) == 0
    jsonschema.validate(json.loads(capsys.readouterr().out), register_schema())


def test_an_ollama_server_elsewhere_is_declared_in_the_register_and_the_trail(
    clients: Path, fake: FakeOllama
) -> None:
    remote = load_settings(
        key_source="file", convert_workers=0, generator="ollama",
        ollama_url="http://192.0.2.10:11434", ollama_model=MODEL,
    )  # fmt: skip
    with Huisclos(remote) as hc:
        hc.index(clients)
        register = hc.register()
    assert register["processing"]["leaves_machine"] is True
    assert [(m["role"], m["local"]) for m in register["models"]] == [
        ("embedding", True), ("embedding", True), ("answers", False)]  # fmt: skip
    assert "192.0.2.10" in register["network"]["allowed_hosts"]
    assert "une autre machine du réseau" in render_markdown(register, "fr")


def test_masking_keeps_identifiers_from_the_model_and_the_citations(
    clients: Path, fake: FakeOllama
) -> None:
    with Huisclos(_settings(fake, mask_personal_data=True)) as hc:
        hc.index(clients)
        answer = hc.ask("À quel IBAN virer la facture 2024-117 ?", client="Dupont SARL")
    prompt = str(fake.chat_requests[-1]["messages"])
    assert "FR76" not in prompt and "[IBAN]" in prompt
    assert answer.citations and "FR76" not in answer.citations[0].snippet
    assert "4 860,00" in prompt  # only identifiers are masked


def test_retention_rules_are_validated() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        load_settings(retention_by_client={"Dupont": {"keep_days": 3}})
    rules = load_settings(retention_by_client={"Dupont": {"inactive_years": 10}})
    assert rules.retention_by_client["Dupont"]["inactive_years"] == 10


def test_a_question_that_touched_no_client_is_not_kept(fake: FakeOllama) -> None:
    with Huisclos(_settings(fake)) as hc:
        assert hc.search("Quel est l'IBAN de Dupont SARL ?") == []  # nothing indexed yet
        (record,) = hc.audit(actions=["search"], questions=True)
    assert record.record.question is None and record.question is None
    assert record.record.details["hits"] == 0
