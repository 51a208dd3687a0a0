"""A small, faithful fake of the Ollama HTTP API, for tests without a server.

It listens on 127.0.0.1 (a free port) in a background thread and answers
like Ollama 0.12 does:

* ``GET /api/version`` → ``{"version": "0.12.3"}``
* ``GET /api/tags`` → the installed models, with name, model, modified_at,
  size, digest and details
* ``POST /api/chat`` → with ``"stream": true`` (the default) HTTP 200,
  ``application/x-ndjson``, chunked: one object per piece of the reply, then a
  final object with ``done_reason`` and the timing and token counts; with
  ``"stream": false`` one object with the whole message and the same fields.
  An unknown model gives 404 ``{"error": "model \\"NAME\\" not found, try
  pulling it first"}``; an empty message list loads the model
  (``done_reason: "load"``); ``options.num_predict`` caps the pieces
  (``done_reason: "length"``).
* ``GET /`` → ``Ollama is running``; anything else → 404 ``404 page not found``.

Every request is recorded (method, path, JSON body) so a test can read the
prompt that was sent, and ``open_connections`` tells whether a client hung up.
``models``, ``reply``, ``delay``, ``piece_delay`` and ``error`` may be changed
while the server runs (a model "disappears", the server gets slow or fails).

Example::

    with FakeOllama(models=["qwen2.5:7b-instruct"], reply=lambda body: "Bonjour") as fake:
        generator = LocalChatGenerator("ollama", "qwen2.5:7b-instruct", url=fake.url)
        ...
        assert fake.chat_requests[-1]["stream"] is True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "DEFAULT_MODELS",
    "VERSION",
    "FakeOllama",
    "RecordedRequest",
    "Reply",
    "closed_port_url",
    "split_pieces",
]

VERSION = "0.12.3"
DEFAULT_MODELS = ("qwen2.5:7b-instruct", "llama3.2:latest")

Reply = Callable[[dict[str, Any]], str]
"""Receives the /api/chat request body, returns the assistant's whole text."""

# What `ollama list` shows for a few real models; others get plausible values.
_KNOWN: dict[str, tuple[int, str, str, str]] = {
    # name: (size in bytes, family, parameter_size, quantization_level)
    "qwen2.5:7b-instruct": (4_683_087_332, "qwen2", "7.6B", "Q4_K_M"),
    "llama3.2:latest": (2_019_393_189, "llama", "3.2B", "Q4_K_M"),
    "mistral:7b": (4_113_301_824, "llama", "7.2B", "Q4_0"),
}
_PIECE = re.compile(r"\s*\S+\s*$|\s*\S+")


def split_pieces(text: str) -> list[str]:
    """The streamed pieces of ``text``: one word each, with its leading spaces.

    ``"".join(split_pieces(text)) == text`` whenever ``text`` has a non-space.
    """
    return _PIECE.findall(text)


def _full_name(name: str) -> str:
    """Ollama's canonical name: a tag-less name means ``:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _timestamp() -> str:
    """Like Go's RFC 3339 with nanoseconds, as Ollama writes ``created_at``."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}123Z"


def _tag(name: str) -> dict[str, Any]:
    size, family, parameters, quantization = _KNOWN.get(
        name, (1_000_000_000 + len(name), name.split(":")[0].rstrip("0123456789."), "1B", "Q4_K_M")
    )
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-09-30T11:42:07.123456789+02:00",
        "size": size,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": parameters,
            "quantization_level": quantization,
        },
    }


def _default_reply(body: dict[str, Any]) -> str:
    return "Bonjour, je suis un modèle factice."


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    body: dict[str, Any] | None
    """The JSON body (None when there was none or it was not JSON)."""
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeOllama

    def __init__(self, address: tuple[str, int], fake: FakeOllama) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on clients still connected (kept-alive or waiting for a delay)."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, closed stream) is normal here; anything
        # else is a bug in the fake and must be seen.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like Ollama
    server: _Server

    # Quiet: no access log on stderr.
    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def fake(self) -> FakeOllama:
        return self.server.fake

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        raw = self._read_body()
        body: dict[str, Any] | None = None
        invalid = False
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                invalid = True
            else:
                body = parsed if isinstance(parsed, dict) else None
                invalid = body is None
        path = self.path.split("?", 1)[0]
        self.fake._record(RecordedRequest(method, path, body, dict(self.headers.items())))
        if method in ("GET", "HEAD") and path == "/":
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif method == "GET" and path == "/api/version":
            self._send_json(200, {"version": VERSION})
        elif method == "GET" and path == "/api/tags":
            self._send_json(200, {"models": [_tag(name) for name in self.fake.models]})
        elif method == "POST" and path == "/api/chat":
            if invalid:
                self._send_json(400, {"error": "invalid character in request body"})
            else:
                self._chat(body or {})
        else:
            self._send(404, b"404 page not found", "text/plain")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self._send(status, data, "application/json; charset=utf-8")

    def _chat(self, body: dict[str, Any]) -> None:
        fake = self.fake
        name = body.get("model")
        if not isinstance(name, str) or not name:
            self._send_json(400, {"error": "model is required"})
            return
        if _full_name(name) not in {_full_name(m) for m in fake.models}:
            self._send_json(404, {"error": f'model "{name}" not found, try pulling it first'})
            return
        if fake.delay > 0 and fake._stopping.wait(fake.delay):
            self.close_connection = True  # the fake is shutting down: no answer
            return
        if fake.error is not None:
            status, reason = fake.error
            self._send_json(status, {"error": reason})
            return
        messages = body.get("messages") or []
        stream = body.get("stream", True) is not False
        if not messages:  # Ollama loads the model and says so
            done = {
                "model": name,
                "created_at": _timestamp(),
                "message": {"role": "assistant", "content": ""},
                "done_reason": "load",
                "done": True,
            }
            self._send_ndjson([done]) if stream else self._send_json(200, done)
            return
        pieces = split_pieces(fake.reply(body))
        reason = "stop"
        limit = (body.get("options") or {}).get("num_predict")
        if isinstance(limit, int) and 0 <= limit < len(pieces):
            pieces, reason = pieces[:limit], "length"
        prompt_tokens = sum(
            len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict)
        )
        final = {
            "done": True,
            "done_reason": reason,
            "total_duration": 1_250_000_000 + 25_000_000 * len(pieces),
            "load_duration": 45_000_000,
            "prompt_eval_count": max(1, prompt_tokens),
            "prompt_eval_duration": 800_000_000,
            "eval_count": len(pieces),
            "eval_duration": 25_000_000 * len(pieces),
        }
        if not stream:
            self._send_json(
                200,
                {
                    "model": name,
                    "created_at": _timestamp(),
                    "message": {"role": "assistant", "content": "".join(pieces)},
                    **final,
                },
            )
            return
        objects: list[dict[str, Any]] = [
            {
                "model": name,
                "created_at": _timestamp(),
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            for piece in pieces
        ]
        objects.append(
            {
                "model": name,
                "created_at": _timestamp(),
                "message": {"role": "assistant", "content": ""},
                **final,
            }
        )
        self._send_ndjson(objects)

    def _send_ndjson(self, objects: Iterable[Mapping[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for obj in objects:
            line = json.dumps(obj, ensure_ascii=False).encode() + b"\n"
            self.wfile.write(f"{len(line):X}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
            if self.fake.piece_delay > 0 and self.fake._stopping.wait(self.fake.piece_delay):
                self.close_connection = True
                return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeOllama:
    """A fake Ollama server on 127.0.0.1; a context manager.

    Args:
        models: installed model names (``"llama3.2"`` means ``"llama3.2:latest"``).
        reply: builds the assistant's text from the /api/chat request body.
        delay: seconds to wait before answering /api/chat (to provoke timeouts).
        piece_delay: seconds to wait after each streamed piece.
        error: ``(status, reason)`` to answer /api/chat with, as Ollama reports a
            failure, e.g. ``(500, "model requires more system memory ...")``.
    """

    def __init__(
        self,
        models: Iterable[str] = DEFAULT_MODELS,
        reply: Reply = _default_reply,
        *,
        delay: float = 0.0,
        piece_delay: float = 0.0,
        error: tuple[int, str] | None = None,
    ) -> None:
        self.models: list[str] = [_full_name(m) for m in models]
        self.reply: Reply = reply
        self.delay = delay
        self.piece_delay = piece_delay
        self.error = error
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the server must be started)."""
        if self._server is None:
            raise RuntimeError("the fake Ollama server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the /api/chat requests, oldest first."""
        return [r.body or {} for r in self.requests if r.path == "/api/chat"]

    @property
    def open_connections(self) -> int:
        """Client connections the server still holds open (kept alive or in use)."""
        if self._server is None:
            return 0
        with self._server.connections_lock:
            return len(self._server.connections)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self) -> FakeOllama:
        """Listen on a free loopback port and serve in a background thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="fake-ollama",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; wakes delayed handlers so that nothing lingers."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def closed_port_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
