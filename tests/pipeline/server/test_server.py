"""The HTTP API through a real HTTP client, against ``serve()`` (real uvicorn) on a real vault.

Questions are answered by :class:`tests.fakes.ollama.FakeOllama` (a model that
cites the passage holding the amount); the embedded model answers in
``test_web.py``. The network guard from conftest stays on throughout.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.routing import APIRoute

from huisclos.config import ConfigError, load_settings
from huisclos.pipeline import Huisclos
from huisclos.pipeline.cli import main
from huisclos.pipeline.server import create_app, new_token, read_token, serve
from huisclos.pipeline.server.app import route_table
from huisclos.pipeline.server.openai_compat import MODEL
from huisclos.pipeline.server.page import router as page_router
from huisclos.pipeline.server.security import PROTECTED
from tests.conftest import REPO
from tests.fakes.ollama import FakeOllama, closed_port_url

OLLAMA_MODEL = "qwen2.5:7b-instruct"
QUESTION = "Quel est le montant de la facture 2024-117 ?"
DUPONT = "Facture 2024-117 de Dupont SARL : montant total 4 860,00 euros TTC."
MARTIN = "Facture 2024-117 de Martin : montant total 990,00 euros TTC."
POST = {"X-Huisclos": "1"}
_DOCUMENT = re.compile(r'<document n="(\d+)" source="[^"]*">\n(.*?)\n</document>', re.S)
_AMOUNT = re.compile(r"montant total (\d[\d  ]*,\d\d) euros")


def _answer_from_prompt(body: dict[str, Any]) -> str:
    """A "model" that reads the numbered passages it was given and cites the one it used."""
    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    for n, passage in _DOCUMENT.findall(prompt):
        found = _AMOUNT.search(passage)
        if found:
            return f"Le montant est de {found.group(1)} euros [{n}]."
    return "Je ne trouve pas la réponse dans les documents."


def _tree(base: Path) -> Path:
    root = base / "Clients"
    for client, text in (("Dupont SARL", DUPONT), ("Martin", MARTIN)):
        (root / client).mkdir(parents=True)
        (root / client / "facture.txt").write_text(text + "\n", encoding="utf-8")
    (root / "Martin" / "scan.pdf").write_bytes(b"%PDF-1.4 not really a pdf")  # fails, with a reason
    return root


@contextmanager
def _served(hc: Huisclos, **options: Any) -> Iterator[str]:
    """``serve()`` in a thread on a free port; yields its base URL (always via 127.0.0.1)."""
    stop = threading.Event()
    urls: queue.Queue[str] = queue.Queue()
    thread = threading.Thread(
        target=serve,
        args=(hc,),
        kwargs={"port": 0, "stop": stop, "on_ready": urls.put, **options},
        daemon=True,
    )
    thread.start()
    port = int(urls.get(timeout=60).rstrip("/").rsplit(":", 1)[1])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(models=[OLLAMA_MODEL], reply=_answer_from_prompt) as server:
        yield server


def _open(home: Path, fake: FakeOllama) -> Huisclos:
    return Huisclos(
        load_settings(
            home=home,
            key_source="file",
            convert_workers=0,
            generator="ollama",
            ollama_url=fake.url,
            ollama_model=OLLAMA_MODEL,
        )
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, fake: FakeOllama) -> Iterator[Huisclos]:
    base = tmp_path_factory.mktemp("server")
    with _open(base / "vault", fake) as hc:
        report = hc.index(_tree(base))
        assert (report.added, report.failed) == (2, 1)
        yield hc


@pytest.fixture(scope="module")
def url(indexed: Huisclos) -> Iterator[str]:
    with _served(indexed) as base:
        yield base


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


def _events(response: httpx.Response) -> Iterator[tuple[str, Any, float]]:
    """Server-sent events as (event, data, arrival time), parsed from the raw lines."""
    event, data = "message", []
    for line in response.iter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            text = "\n".join(data)
            yield event, (text if text == "[DONE]" else json.loads(text)), time.monotonic()
            event, data = "message", []


def test_status_shows_documents_last_update_and_failed_files_with_reasons(
    http: httpx.Client,
) -> None:
    response = http.get("/api/status")
    assert response.status_code == 200
    status = response.json()
    assert (status["files"], status["failed"]) == (3, 1)
    assert status["failures"] == [{"path": "Martin/scan.pdf", "reason": "corrupt or unreadable"}]
    assert time.time() - 600 < status["last_update"] <= time.time()
    assert {c["name"]: c["files"] for c in status["clients"]} == {"Dupont SARL": 1, "Martin": 2}
    clients = http.get("/api/clients").json()["clients"]
    assert [(c["name"], c["chunks"], c["failed"]) for c in clients] == [
        ("Dupont SARL", 1, 0),
        ("Martin", 1, 1),
    ]


def test_search_finds_the_scoped_clients_passage_and_where_its_file_is(
    http: httpx.Client, indexed: Huisclos
) -> None:
    response = http.post(
        "/api/search", json={"query": "montant facture 2024-117", "client": "Martin"}, headers=POST
    )
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert [(h["path"], h["client"]) for h in hits] == [("Martin/facture.txt", "Martin")]
    assert "990,00" in hits[0]["text"] and hits[0]["score"] > 0
    (root,) = indexed.roots()
    assert hits[0]["location"] == str(root / "Martin" / "facture.txt")
    assert Path(hits[0]["location"]).read_text(encoding="utf-8").strip() == MARTIN


def test_ask_streams_tokens_then_the_answer_with_its_citations(
    http: httpx.Client, fake: FakeOllama, indexed: Huisclos
) -> None:
    fake.piece_delay = 0.15  # about 1 s of writing: the pieces must arrive as they come
    try:
        with http.stream(
            "POST", "/api/ask", json={"question": QUESTION, "client": "Dupont SARL"}, headers=POST
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = list(_events(response))
    finally:
        fake.piece_delay = 0.0
    tokens = [(data["text"], at) for name, data, at in events if name == "token"]
    assert [name for name, _, _ in events] == ["token"] * len(tokens) + ["answer"]
    assert len(tokens) >= 5
    assert events[-1][2] - tokens[0][1] > 0.5  # streamed, not delivered at once
    answer = events[-1][1]
    assert answer["answer"] == "Le montant est de 4 860,00 euros [1]."
    assert "".join(text for text, _ in tokens) == answer["answer"]
    assert not answer["not_found"] and answer["language"] == "fr"
    (citation,) = answer["citations"]
    (root,) = indexed.roots()
    assert citation["n"] == 1
    assert (citation["path"], citation["client"]) == ("Dupont SARL/facture.txt", "Dupont SARL")
    assert citation["passage"].strip() == DUPONT
    assert "4 860,00" in citation["snippet"]
    assert citation["score"] > 0
    assert citation["location"] == str(root / "Dupont SARL" / "facture.txt")
    assert (answer["backend"], answer["model"]) == ("ollama", OLLAMA_MODEL)


def test_a_question_nothing_answers_says_so_and_cites_nothing(
    http: httpx.Client, fake: FakeOllama
) -> None:
    fake.reply = lambda body: "Je ne trouve pas la réponse dans les documents."
    try:
        with http.stream(
            "POST", "/api/ask", json={"question": "Quel est le capital social ?"}, headers=POST
        ) as response:
            events = list(_events(response))
    finally:
        fake.reply = _answer_from_prompt
    name, answer, _ = events[-1]
    assert name == "answer"
    assert answer["not_found"] and answer["citations"] == []
    assert answer["answer"] == "Je ne trouve pas la réponse dans les documents."


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/ask", {"question": QUESTION, "client": "Inconnu"}, 404, "unknown_client"),
        ("/api/search", {"query": "facture", "client": "Inconnu"}, 404, "unknown_client"),
        ("/api/ask", {"question": ""}, 422, "invalid_request"),
        ("/api/ask", {"question": "   "}, 422, "invalid_request"),
        ("/api/ask", {}, 422, "invalid_request"),
        ("/api/ask", {"question": QUESTION, "surprise": 1}, 422, "invalid_request"),
        ("/api/search", {"query": "facture", "top_k": 0}, 422, "invalid_request"),
        ("/api/forget", {}, 422, "invalid_request"),
        ("/api/forget", {"client": "Martin", "path": "/tmp"}, 422, "invalid_request"),
        ("/api/forget", {"client": "Inconnu"}, 404, "not_indexed"),
    ],
)
def test_bad_requests_get_a_clear_json_error_with_the_right_status(
    http: httpx.Client, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    response = http.post(path, json=body, headers=POST)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]


def test_an_unknown_route_is_a_json_404(http: httpx.Client) -> None:
    response = http.get("/api/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_the_audit_trail_is_readable_with_limits_and_keeps_questions_out(
    http: httpx.Client,
) -> None:
    asked = http.post("/api/search", json={"query": "facture 2024-117"}, headers=POST)
    assert asked.status_code == 200
    response = http.get("/api/audit", params={"action": ["search", "ask"], "limit": 2})
    assert response.status_code == 200
    audit = response.json()
    assert audit["total"] >= 2 and len(audit["entries"]) == 2
    last = audit["entries"][-1]
    assert last["action"] == "search" and last["question_kept"] is True
    assert last["chunks"] and last["local"] is True
    assert "facture" not in response.text and "2024-117" not in response.text
    dupont = http.get("/api/audit", params={"client": "Dupont SARL", "limit": 1000}).json()
    assert all("Dupont SARL" in entry["clients"] for entry in dupont["entries"])
    for limit in (0, 1001, "many"):
        assert http.get("/api/audit", params={"limit": limit}).status_code == 422


def test_the_register_comes_as_json_or_markdown(http: httpx.Client) -> None:
    register = http.get("/api/register")
    assert register.status_code == 200
    assert register.json()["totals"]["clients"] == 2
    markdown = http.get("/api/register", params={"format": "md", "lang": "en"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("#")
    assert http.get("/api/register", params={"format": "pdf"}).status_code == 422


def test_an_openai_client_lists_the_models_and_gets_a_cited_answer(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused-on-loopback", max_retries=0)
    models = [model.id for model in client.models.list()]
    assert models == [MODEL, f"{MODEL}:Dupont SARL", f"{MODEL}:Martin"]
    reply = client.chat.completions.create(
        model=f"{MODEL}:Dupont SARL",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Bonjour"},
            {"role": "assistant", "content": "Bonjour, que voulez-vous savoir ?"},
            {"role": "user", "content": QUESTION},
        ],
    )
    assert reply.object == "chat.completion" and reply.model == f"{MODEL}:Dupont SARL"
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "stop"
    assert content.startswith("Le montant est de 4 860,00 euros [1].")
    assert "Sources :\n[1] Dupont SARL/facture.txt (Dupont SARL) « " in content
    citations = (reply.model_extra or {})["citations"]
    assert [c["path"] for c in citations] == ["Dupont SARL/facture.txt"]


def test_an_openai_client_streams_chunks_then_the_sources(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused-on-loopback", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=f"{MODEL}:Martin",
            messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
            stream=True,
        )
    )
    assert len(chunks) > 5 and len({chunk.id for chunk in chunks}) == 1
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks][-2:] == [None, "stop"]
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert content == (
        "Le montant est de 990,00 euros [1].\n\nSources :\n"
        "[1] Martin/facture.txt (Martin) « montant total 990,00 euros TTC. »"
    )


def test_openai_streams_end_with_done_and_unknown_models_are_404(
    http: httpx.Client, url: str
) -> None:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        events = list(_events(response))
    assert events[-1][1] == "[DONE]"
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": QUESTION}]
        )
    assert raised.value.code == "model_not_found"
    empty = {"model": MODEL, "messages": [{"role": "user", "content": ""}]}
    assert http.post("/v1/chat/completions", json=empty).status_code == 422


def _data_routes(hc: Huisclos) -> list[tuple[str, str]]:
    """The (method, path) of every route that reaches the vault's data, from the app itself."""
    routes = [
        (method, path) for method, path in route_table(create_app(hc)) if path.startswith(PROTECTED)
    ]
    assert len(routes) >= 2, routes  # the enumeration sees the routes behind the routers
    return routes


def test_the_served_openapi_description_is_the_committed_one(
    http: httpx.Client, indexed: Huisclos
) -> None:
    served = http.get("/openapi.json").json()
    committed = json.loads((REPO / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert served == committed, "the API changed: run `make openapi` and commit docs/openapi.json"
    described = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    assert described == set(_data_routes(indexed))  # every data route is described
    assert http.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        # DNS rebinding: a page on evil.example resolved to 127.0.0.1
        ("GET", "/api/status", {"Host": "evil.example"}, 421),
        ("GET", "/", {"Host": "evil.example:8765"}, 421),
        # another site's page in the user's browser
        ("GET", "/api/status", {"Sec-Fetch-Site": "cross-site"}, 403),
        ("POST", "/api/forget", {**POST, "Origin": "http://evil.example"}, 403),
        ("POST", "/v1/chat/completions", {"Origin": "http://evil.example"}, 403),
        # a cross-site form cannot set a custom header or send JSON
        ("POST", "/api/forget", {}, 403),
        ("POST", "/api/forget", {**POST, "Content-Type": "text/plain"}, 415),
    ],
)
def test_cross_site_requests_are_refused_on_loopback(
    http: httpx.Client, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    body = '{"client": "Dupont SARL"}' if method == "POST" else None
    sent = {"Content-Type": "application/json", **headers}
    response = http.request(method, path, content=body, headers=sent)
    assert response.status_code == status, response.text
    assert http.get("/api/clients").json()["clients"][0]["name"] == "Dupont SARL"  # not erased


def test_every_post_under_api_needs_the_custom_header_on_loopback(
    http: httpx.Client, indexed: Huisclos
) -> None:
    posts = [path for method, path in _data_routes(indexed) if method == "POST"]
    assert any(path.startswith("/api/") for path in posts)
    for path in posts:
        response = http.post(path, json={"client": "Dupont SARL"})
        if path.startswith("/api/"):
            assert response.status_code == 403, path
            assert response.json()["error"]["code"] == "missing_header"
        else:  # /v1: OpenAI clients send no such header; their requests are JSON
            assert response.status_code != 403, path
    assert http.get("/api/clients").json()["clients"][0]["name"] == "Dupont SARL"  # not erased


def test_the_page_and_api_carry_a_strict_content_security_policy(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for response in (page, http.get("/api/status"), http.get("/static/app.js")):
        policy = response.headers["content-security-policy"]
        assert policy.startswith("default-src 'self';") and "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    assert http.get("/api/status").headers["cache-control"] == "no-store"
    assert http.get("/static/../api.py").status_code == 404


def test_forget_erases_a_client_over_http(
    tmp_path: Path, fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _open(tmp_path / "vault", fake) as hc:
        hc.index(_tree(tmp_path))
        with _served(hc) as base, httpx.Client(base_url=base, timeout=120) as http:
            response = http.post("/api/forget", json={"client": "Martin"}, headers=POST)
            assert response.status_code == 200, response.text
            report = response.json()
            assert report["target"] == "client" and report["key_destroyed"] is True
            assert report["files"] == 2
            assert [c["name"] for c in http.get("/api/clients").json()["clients"]] == [
                "Dupont SARL"
            ]
            search = {"query": "facture", "client": "Martin"}
            assert http.post("/api/search", json=search, headers=POST).status_code == 404
            again = http.post("/api/forget", json={"client": "Martin"}, headers=POST)
            assert again.status_code == 404 and "already forgotten" in again.text


# Beyond loopback: the token


def test_binding_beyond_loopback_without_a_token_is_refused(indexed: Huisclos) -> None:
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        with pytest.raises(ConfigError, match="access token is required"):
            create_app(indexed, host=host)
    with pytest.raises(ConfigError, match="too short"):
        create_app(indexed, host="0.0.0.0", token="short")


def test_beyond_loopback_a_request_without_the_token_is_refused(
    indexed: Huisclos, tmp_path: Path
) -> None:
    token = new_token(tmp_path / "server.token")
    # A real uvicorn bound to every interface; the test talks to it over loopback only.
    with (
        _served(indexed, host="0.0.0.0", token=token) as base,
        httpx.Client(base_url=base, timeout=60) as http,
    ):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"X-Huisclos": "1"},
        ):
            refused = http.get("/api/status", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["type"] == "authentication_error"
            assert "files" not in refused.text
        assert http.post("/api/forget", json={"client": "Martin"}).status_code == 401
        assert http.get("/v1/models").status_code == 401
        for method, path in _data_routes(indexed):  # every route with data, none forgotten
            assert http.request(method, path, json={}).status_code == 401, (method, path)
        # all else is the page and the description, which hold no data
        app = create_app(indexed, token=token, host="0.0.0.0")
        page = {route.path for route in page_router.routes if isinstance(route, APIRoute)}
        data = {path for _, path in _data_routes(indexed)}
        assert {path for _, path in route_table(app)} - data == page | {app.openapi_url}
        bearer = {"Authorization": f"Bearer {token}"}
        assert http.get("/api/status", headers=bearer).json()["files"] == 3
        # a LAN client's Host is the server's name or address, not localhost
        named = http.get("/api/clients", headers={**bearer, "Host": "cabinet-srv:8765"})
        assert named.status_code == 200
        assert http.get("/").status_code == 200  # the page itself holds no data: it asks for it
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0)
        assert next(m.id for m in client.models.list()) == MODEL
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1", api_key="nope", max_retries=0).models.list()


def test_token_files_are_private_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "server.token"
    token = new_token(path)
    assert len(token) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert read_token(path) == token
    assert new_token(path) != token  # a new one replaces the old
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        read_token(path)
    with pytest.raises(ConfigError, match="--new-token"):
        read_token(tmp_path / "absent.token")


def test_serve_beyond_loopback_without_a_token_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUISCLOS_KEY_SOURCE", "file")
    assert main(["serve", "--host", "0.0.0.0", "--no-watch"]) == 1
    assert "access token is required" in capsys.readouterr().err


def test_serve_keeps_the_network_guard_on(vault_home: Path) -> None:
    # `huisclos serve` up to the point where it would listen; then an outbound connection.
    script = (
        "import socket\n"
        "import huisclos.pipeline.server as server\n"
        "def serve(hc, **kwargs):\n"
        "    s = socket.socket()\n"
        "    try:\n"
        "        s.connect(('192.0.2.10', 443))\n"
        "    except PermissionError as exc:\n"
        "        print('refused:', type(exc).__name__)\n"
        "server.serve = serve\n"
        "from huisclos.pipeline.cli import main\n"
        "raise SystemExit(main(['serve', '--no-watch']))\n"
    )
    env = {
        **os.environ,
        "HUISCLOS_HOME": str(vault_home),
        "HUISCLOS_KEY_SOURCE": "file",
        "HUISCLOS_GENERATOR": "ollama",
        "HUISCLOS_OLLAMA_URL": closed_port_url(),
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "refused: OfflineViolation" in out.stdout


def test_requests_log_no_question_document_text_client_or_token(
    indexed: Huisclos, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = new_token(tmp_path / "server.token")
    with (
        _served(indexed, host="0.0.0.0", token=token) as base,
        httpx.Client(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as http,
    ):
        with http.stream(
            "POST", "/api/ask", json={"question": QUESTION, "client": "Dupont SARL"}
        ) as response:
            assert [e for e, _, _ in _events(response)][-1] == "answer"
        assert http.post("/api/search", json={"query": "montant TTC"}).status_code == 200
        assert http.get("/api/audit", params={"client": "Dupont SARL"}).status_code == 200
        guess = {"Authorization": "Bearer leaked-guess-1234567"}
        assert http.get("/api/status", headers=guess).status_code == 401
    # what the server logged (this test's own HTTP clients log their requests' URLs)
    clients = ("httpx", "httpcore", "openai")
    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if not record.name.startswith(clients)
    )
    assert "POST /api/ask 200" in logged  # requests are logged: method, route, status, time
    for secret in (token, "montant", "2024-117", "4 860", "Dupont", "facture.txt", "leaked"):
        assert secret not in logged
