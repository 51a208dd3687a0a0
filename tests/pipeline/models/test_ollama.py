"""The Ollama backend against a faithful fake Ollama server, over real loopback HTTP.

No Ollama server can run here, so :class:`tests.fakes.ollama.FakeOllama`
answers like one (tags, streamed NDJSON chat, 404 for a missing model). The
network guard from conftest stays on throughout.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ollama
import pytest
from haystack.dataclasses import ChatMessage, StreamingChunk

from huisclos.config import GeneratorError, OfflineViolation, load_settings
from huisclos.pipeline import Huisclos
from huisclos.pipeline.answering.prompts import NOT_FOUND
from huisclos.pipeline.cli import main
from huisclos.pipeline.models.generators import LocalChatGenerator
from tests.fakes.ollama import FakeOllama, closed_port_url, split_pieces

MODEL = "qwen2.5:7b-instruct"
OTHER = "llama3.2:latest"
QUESTION = "Quel est le montant de la facture 2024-117 ?"
DUPONT = "Facture 2024-117 de Dupont SARL : montant total 4 860,00 euros TTC."
MARTIN = "Facture 2024-117 de Martin : montant total 990,00 euros TTC."
REPLY = "La facture 2024-117 s'élève à 4 860,00 euros TTC [1]."
_DOCUMENT = re.compile(r'<document n="(\d+)" source="[^"]*">\n(.*?)\n</document>', re.S)
_AMOUNT = re.compile(r"montant total (\d[\d  ]*,\d\d) euros")


def _messages() -> list[ChatMessage]:
    return [
        ChatMessage.from_system("Réponds brièvement."),
        ChatMessage.from_user("Quel est le montant de la facture 2024-117 ?"),
    ]


def _prompt_text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []))


def _answer_from_prompt(body: dict[str, Any]) -> str:
    """A "model" that reads the numbered passages it was given and cites the one it used."""
    for n, passage in _DOCUMENT.findall(_prompt_text(body)):
        found = _AMOUNT.search(passage)
        if found:
            return f"Le montant est de {found.group(1)} euros [{n}]."
    return NOT_FOUND["fr"]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[MODEL, OTHER], reply=lambda body: REPLY) as server:
        yield server


Make = Callable[..., LocalChatGenerator]


@pytest.fixture
def make() -> Iterator[Make]:
    """Ollama generators, closed after the test."""
    made: list[LocalChatGenerator] = []

    def build(**kwargs: Any) -> LocalChatGenerator:
        made.append(LocalChatGenerator(backend="ollama", **kwargs))
        return made[-1]

    yield build
    for generator in made:
        generator.close()


def test_the_fake_answers_like_ollama(fake: FakeOllama) -> None:
    """The official client reads the fake's answers (guards the fake's faithfulness)."""
    with urllib.request.urlopen(fake.url + "/api/version", timeout=5) as response:
        assert json.load(response) == {"version": "0.12.3"}
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(fake.url + "/api/nothing", timeout=5)
    assert (missing.value.code, missing.value.read()) == (404, b"404 page not found")
    missing.value.close()
    with ollama.Client(host=fake.url, timeout=5) as client:
        assert [m.model for m in client.list().models] == [MODEL, OTHER]
        whole = client.chat(model=MODEL, messages=[{"role": "user", "content": "?"}])
        assert (whole.message.content, whole.done, whole.done_reason) == (REPLY, True, "stop")
        parts = list(client.chat(MODEL, messages=[{"role": "user", "content": "?"}], stream=True))
        assert "".join(p.message.content or "" for p in parts) == REPLY
        assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
        assert parts[-1].eval_count == len(parts) - 1 and parts[-1].prompt_eval_count
        with pytest.raises(ollama.ResponseError) as absent:
            client.chat(model="mistral:7b", messages=[{"role": "user", "content": "?"}])
    assert absent.value.status_code == 404
    assert absent.value.error == 'model "mistral:7b" not found, try pulling it first'


# The generator component


def test_streams_the_reply_and_sends_messages_and_options(fake: FakeOllama, make: Make) -> None:
    generator = make(model=MODEL, url=fake.url, context_tokens=2048, max_tokens=64)
    generator.warm_up()
    generator.warm_up()  # idempotent: the server is asked once
    pieces: list[str] = []

    def on_chunk(chunk: StreamingChunk) -> None:
        pieces.append(chunk.content)

    reply = generator.run(_messages(), streaming_callback=on_chunk)["replies"][0]

    assert reply.text == REPLY
    streamed = [piece for piece in pieces if piece]
    assert streamed == split_pieces(REPLY)
    assert len(streamed) > 1
    assert [r.path for r in fake.requests] == ["/api/tags", "/api/chat"]
    body = fake.chat_requests[0]
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Réponds brièvement."},
        {"role": "user", "content": "Quel est le montant de la facture 2024-117 ?"},
    ]
    options = body["options"]
    assert options["temperature"] == 0
    assert options["num_ctx"] == 2048
    assert options["num_predict"] == 64


def test_a_model_named_without_tag_is_found_as_latest(fake: FakeOllama, make: Make) -> None:
    generator = make(model="llama3.2", url=fake.url)
    reply = generator.run(_messages())["replies"][0]
    assert reply.text == REPLY
    assert generator.model_name == "llama3.2"


def test_from_settings_uses_the_ollama_settings(
    fake: FakeOllama, request: pytest.FixtureRequest
) -> None:
    settings = load_settings(
        generator="ollama", ollama_url=fake.url + "/", ollama_model=OTHER, ollama_timeout_seconds=7
    )
    generator = LocalChatGenerator.from_settings(settings)
    request.addfinalizer(generator.close)
    assert (generator.backend, generator.model, generator.url) == ("ollama", OTHER, fake.url)
    assert generator.run(_messages())["replies"][0].text == REPLY
    assert fake.chat_requests[0]["model"] == OTHER


def test_model_missing_at_warm_up_says_to_pull_it(fake: FakeOllama, make: Make) -> None:
    fake.models = [OTHER]
    generator = make(model=MODEL, url=fake.url)
    with pytest.raises(GeneratorError) as excinfo:
        generator.warm_up()
    message = str(excinfo.value)
    assert fake.url in message
    assert MODEL in message
    assert f"ollama pull {MODEL}" in message
    assert OTHER in message  # what the server does have
    assert fake.chat_requests == []


def test_model_removed_after_warm_up_says_to_pull_it(fake: FakeOllama, make: Make) -> None:
    generator = make(model=MODEL, url=fake.url)
    generator.warm_up()
    fake.models = [OTHER]  # `ollama rm` on the server
    with pytest.raises(GeneratorError) as excinfo:
        generator.run(_messages(), streaming_callback=lambda chunk: None)
    message = str(excinfo.value)
    assert fake.url in message
    assert MODEL in message
    assert f"ollama pull {MODEL}" in message
    assert isinstance(excinfo.value.__cause__, ollama.ResponseError)
    assert excinfo.value.__cause__.status_code == 404
    assert len(fake.chat_requests) == 1


def test_a_server_error_is_reported_with_its_reason(fake: FakeOllama, make: Make) -> None:
    reason = "model requires more system memory (5.5 GiB) than is available (3.1 GiB)"
    fake.error = (500, reason)
    generator = make(model=MODEL, url=fake.url)
    with pytest.raises(GeneratorError) as excinfo:
        generator.run(_messages(), streaming_callback=lambda chunk: None)
    message = str(excinfo.value)
    assert reason in message
    assert fake.url in message
    assert MODEL in message


def _eventually(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_closing_the_generator_hangs_up(fake: FakeOllama, make: Make) -> None:
    generator = make(model=MODEL, url=fake.url)
    generator.run(_messages())
    assert fake.open_connections == 1  # kept alive for the next question
    generator.close()
    assert _eventually(lambda: fake.open_connections == 0)


def test_a_failed_warm_up_leaves_no_connection_open(fake: FakeOllama, make: Make) -> None:
    fake.models = [OTHER]
    generator = make(model=MODEL, url=fake.url)
    for _ in range(3):  # e.g. an integration retrying while the model is being pulled
        with pytest.raises(GeneratorError, match="ollama pull") as excinfo:
            generator.warm_up()
    generator.close()
    assert _eventually(lambda: fake.open_connections == 0), (
        f"{fake.open_connections} connection(s) to Ollama left open after a failed warm-up "
        f"({excinfo.value})"
    )


def test_connection_refused_names_url_and_model(make: Make) -> None:
    url = closed_port_url()
    generator = make(model=MODEL, url=url)
    with pytest.raises(GeneratorError) as excinfo:
        generator.warm_up()
    message = str(excinfo.value)
    assert url in message
    assert MODEL in message
    assert "ollama serve" in message


def test_server_gone_after_warm_up_names_url_and_model(fake: FakeOllama, make: Make) -> None:
    generator = make(model=MODEL, url=fake.url)
    generator.warm_up()
    url = fake.url
    fake.stop()
    with pytest.raises(GeneratorError) as excinfo:
        generator.run(_messages(), streaming_callback=lambda chunk: None)
    assert url in str(excinfo.value)
    assert MODEL in str(excinfo.value)


def test_slow_server_times_out_with_a_clear_message(fake: FakeOllama, make: Make) -> None:
    fake.delay = 30.0
    generator = make(model=MODEL, url=fake.url, timeout=1)
    generator.warm_up()
    started = time.monotonic()
    with pytest.raises(GeneratorError, match=r"did not answer within 1 s") as excinfo:
        generator.run(_messages(), streaming_callback=lambda chunk: None)
    assert time.monotonic() - started < 5
    assert fake.url in str(excinfo.value)
    assert MODEL in str(excinfo.value)


def test_server_stalling_mid_answer_times_out(fake: FakeOllama, make: Make) -> None:
    fake.piece_delay = 30.0
    generator = make(model=MODEL, url=fake.url, timeout=1)
    received: list[str] = []
    started = time.monotonic()
    with pytest.raises(GeneratorError, match=r"did not answer within 1 s"):
        generator.run(_messages(), streaming_callback=lambda chunk: received.append(chunk.content))
    assert time.monotonic() - started < 5
    assert received == split_pieces(REPLY)[:1]  # the first piece came, then silence


def test_non_loopback_url_is_refused_before_any_connection(
    monkeypatch: pytest.MonkeyPatch, make: Make
) -> None:
    attempts: list[Any] = []
    real = socket.create_connection

    def spy(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    generator = make(model=MODEL, url="http://192.0.2.10:11434")
    with pytest.raises(OfflineViolation, match=r"192\.0\.2\.10") as excinfo:
        generator.warm_up()
    assert MODEL in str(excinfo.value)
    with pytest.raises(OfflineViolation):
        generator.run(_messages())
    assert attempts == []


def test_a_configured_ollama_host_is_allowed_by_the_guard() -> None:
    url = "http://192.0.2.10:11434"
    assert "192.0.2.10" in load_settings(generator="ollama", ollama_url=url).network_hosts()
    assert "192.0.2.10" not in load_settings(generator="llamacpp", ollama_url=url).network_hosts()


# End to end: the public API and the CLI, with a real vault and embedding model


@pytest.fixture
def clients(tmp_path: Path) -> Path:
    root = tmp_path / "Clients"
    (root / "Dupont SARL").mkdir(parents=True)
    (root / "Martin").mkdir()
    (root / "Dupont SARL" / "facture.txt").write_text(DUPONT + "\n", encoding="utf-8")
    (root / "Martin" / "facture.txt").write_text(MARTIN + "\n", encoding="utf-8")
    return root


@pytest.fixture
def hc(fake: FakeOllama, clients: Path) -> Iterator[Huisclos]:
    fake.reply = _answer_from_prompt
    settings = load_settings(
        key_source="file",
        convert_workers=0,
        generator="ollama",
        ollama_url=fake.url,
        ollama_model=MODEL,
    )
    with Huisclos(settings) as opened:
        report = opened.index(clients)
        assert (report.added, report.failed) == (2, 0)
        yield opened


@pytest.mark.integration
def test_ask_cites_only_the_scoped_client(hc: Huisclos, fake: FakeOllama) -> None:
    answer = hc.ask(QUESTION, client="Dupont SARL")

    assert answer.answer == "Le montant est de 4 860,00 euros [1]."
    assert not answer.not_found
    assert [(c.n, c.path, c.client) for c in answer.citations] == [
        (1, "Dupont SARL/facture.txt", "Dupont SARL")
    ]
    assert "4 860,00" in answer.citations[0].snippet
    assert (answer.backend, answer.model) == ("ollama", MODEL)
    prompt = _prompt_text(fake.chat_requests[-1])
    assert "4 860,00" in prompt
    assert "Martin" not in prompt
    assert "990,00" not in prompt
    assert fake.chat_requests[-1]["stream"] is True


@pytest.mark.integration
def test_ask_stream_yields_the_answer_piece_by_piece(hc: Huisclos) -> None:
    stream = hc.ask_stream(QUESTION, client="Dupont SARL")
    pieces = list(stream)
    answer = stream.result()

    assert len(pieces) > 1
    assert answer.answer.startswith("".join(pieces))
    assert answer.answer == "Le montant est de 4 860,00 euros [1]."
    assert [c.path for c in answer.citations] == ["Dupont SARL/facture.txt"]
    assert answer.first_token_seconds is not None


@pytest.mark.integration
def test_a_marker_for_a_missing_passage_cites_nothing(hc: Huisclos, fake: FakeOllama) -> None:
    fake.reply = lambda body: "Voir l'annexe [7]."
    answer = hc.ask(QUESTION, client="Dupont SARL")

    assert answer.passages == 1
    assert answer.citations == []


@pytest.mark.integration
def test_every_marker_shown_in_the_answer_has_its_source(hc: Huisclos, fake: FakeOllama) -> None:
    # An out-of-range marker on an answer that matches a passage: huisclos
    # attributes the answer to that passage, and the reader must not be shown
    # a "[7]" that leads nowhere.
    fake.reply = lambda body: "Le montant est de 4 860,00 euros [7]."
    answer = hc.ask(QUESTION, client="Dupont SARL")

    assert [c.n for c in answer.citations] == [1]
    assert answer.citations[0].path == "Dupont SARL/facture.txt"
    shown = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    assert shown == {c.n for c in answer.citations}


@pytest.mark.integration
def test_closing_an_answer_stream_stops_the_generation(hc: Huisclos, fake: FakeOllama) -> None:
    fake.piece_delay = 0.2  # the whole answer would take about 2 s
    stream = hc.ask_stream(QUESTION, client="Dupont SARL")
    first = next(stream)
    started = time.monotonic()  # the rest of the answer would take about 2 s
    stream.close()
    with pytest.raises(GeneratorError, match="cancelled"):
        for _ in stream:
            pass
    assert first == "Le"
    assert time.monotonic() - started < 1.0
    with pytest.raises(GeneratorError, match="cancelled"):
        stream.result()


def _use_fake_ollama(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("HUISCLOS_GENERATOR", "ollama")
    monkeypatch.setenv("HUISCLOS_OLLAMA_URL", url)
    monkeypatch.setenv("HUISCLOS_OLLAMA_MODEL", MODEL)
    monkeypatch.setenv("HUISCLOS_KEY_SOURCE", "file")
    monkeypatch.setenv("HUISCLOS_CONVERT_WORKERS", "0")  # convert in-process: fast


@pytest.fixture
def cli_indexed(
    fake: FakeOllama,
    clients: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> FakeOllama:
    """The CLI set to the fake Ollama, with the two clients indexed; output cleared."""
    fake.reply = _answer_from_prompt
    _use_fake_ollama(monkeypatch, fake.url)
    assert main(["index", str(clients)]) == 0
    capsys.readouterr()
    return fake


@pytest.mark.integration
def test_cli_ask_json_answers_through_ollama(
    cli_indexed: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "--json", QUESTION, "--client", "Dupont SARL"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) == {"answer", "citations", "backend", "model"}
    assert result["answer"] == "Le montant est de 4 860,00 euros [1]."
    assert [(c["path"], c["client"]) for c in result["citations"]] == [
        ("Dupont SARL/facture.txt", "Dupont SARL")
    ]
    assert (result["backend"], result["model"]) == ("ollama", MODEL)
    assert "990,00" not in _prompt_text(cli_indexed.chat_requests[-1])


@pytest.mark.integration
def test_cli_ask_with_ollama_down_exits_1_naming_url_and_model(
    clients: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = closed_port_url()
    _use_fake_ollama(monkeypatch, url)
    assert main(["index", str(clients)]) == 0
    capsys.readouterr()

    assert main(["ask", "--json", QUESTION, "--client", "Dupont SARL"]) == 1
    captured = capsys.readouterr()
    assert url in captured.err
    assert MODEL in captured.err
    assert captured.out == ""


@pytest.mark.integration
@pytest.mark.parametrize(
    "reply",
    [
        "Je ne trouve pas la réponse dans les documents.",
        "Je ne trouve pas la réponse dans les documents fournis.",
    ],
)
def test_cli_ask_shows_the_not_found_sentence_once(
    reply: str, cli_indexed: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_indexed.reply = lambda body: reply
    assert main(["ask", "Qui est le gérant ?", "--client", "Dupont SARL"]) == 0
    out = capsys.readouterr().out
    assert out.count(NOT_FOUND["fr"]) == 1
    assert out.strip().endswith(NOT_FOUND["fr"])
    assert "facture.txt" not in out


@pytest.mark.integration
def test_cli_ask_streams_the_answer_then_lists_its_source(
    cli_indexed: FakeOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", QUESTION, "--client", "Dupont SARL"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Le montant est de 4 860,00 euros [1]."
    assert lines[2] == "[1] Dupont SARL/facture.txt (Dupont SARL)"
    assert "4 860,00" in lines[3]
