"""Generator backends: the embedded llama.cpp model, or an Ollama server.

:class:`LocalChatGenerator` is one Haystack chat-generator component for
both, chosen by ``Settings.generator``. It wraps Haystack's
``LlamaCppChatGenerator`` or ``OllamaChatGenerator`` and translates their
failures into :class:`GeneratorError` with a message that names the backend,
the model and, for Ollama, the URL.

Example::

    generator = LocalChatGenerator.from_settings(settings)
    generator.warm_up()
    reply = generator.run([ChatMessage.from_user("Bonjour")])["replies"][0].text
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from haystack import component, default_from_dict, default_to_dict
from haystack.dataclasses import ChatMessage, StreamingChunk

from huisclos.config import ConfigError, GeneratorError, OfflineViolation, Settings
from huisclos.config.privacy import host_allowed
from huisclos.pipeline.models.llm_weights import resolve

__all__ = ["Backend", "LocalChatGenerator"]

log = logging.getLogger(__name__)

Backend = Literal["llamacpp", "ollama"]
StreamingCallback = Callable[[StreamingChunk], None]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence llama.cpp's C-level log lines (they go to fd 2, not to logging)."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@component
class LocalChatGenerator:
    """Chat completion by a local model, streamed, with translated errors.

    Args:
        backend: ``"llamacpp"`` (embedded) or ``"ollama"``.
        model: for llamacpp a packaged model name or a .gguf path; for
            Ollama the model tag (``"qwen2.5:7b-instruct"``).
        models_dir: where packaged models are assembled (llamacpp).
        url: the Ollama server (ollama).
        context_tokens: context window to allocate.
        max_tokens: longest answer.
        threads: CPU threads (llamacpp).
        timeout: seconds to wait for Ollama.
    """

    def __init__(
        self,
        backend: Backend = "llamacpp",
        model: str = "qwen2.5-coder-1.5b",
        *,
        models_dir: str | None = None,
        url: str = "http://127.0.0.1:11434",
        context_tokens: int = 4096,
        max_tokens: int = 320,
        threads: int = 2,
        timeout: float = 120.0,
    ) -> None:
        if backend not in ("llamacpp", "ollama"):
            raise ConfigError(f"unknown generator backend {backend!r}: use llamacpp or ollama")
        self.backend: Backend = backend
        self.model = model
        self.models_dir = models_dir
        self.url = url.rstrip("/")
        self.context_tokens = context_tokens
        self.max_tokens = max_tokens
        self.threads = threads
        self.timeout = timeout
        self._inner: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalChatGenerator:
        ollama = settings.generator == "ollama"
        return cls(
            settings.generator,
            settings.ollama_model if ollama else settings.llm_model,
            models_dir=str(settings.resolved_models_dir),
            url=settings.ollama_url,
            context_tokens=settings.llm_context_tokens,
            max_tokens=settings.max_answer_tokens,
            threads=settings.generation_threads,
            timeout=settings.ollama_timeout_seconds,
        )

    @property
    def model_name(self) -> str:
        """The model as reported to users (file name for a user's own GGUF)."""
        if self.backend == "llamacpp" and self.model.lower().endswith(".gguf"):
            return Path(self.model).name
        return self.model

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            backend=self.backend,
            model=self.model,
            models_dir=self.models_dir,
            url=self.url,
            context_tokens=self.context_tokens,
            max_tokens=self.max_tokens,
            threads=self.threads,
            timeout=self.timeout,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalChatGenerator:
        return default_from_dict(cls, data)

    def warm_up(self) -> None:
        """Load the model (llamacpp) or check the server has it (ollama). Idempotent.

        Raises:
            GeneratorError: the model is missing, corrupt, or Ollama is unreachable.
            ConfigError: the model setting names nothing usable.
        """
        if self._inner is not None:
            return
        if self.backend == "llamacpp":
            self._inner = self._load_llamacpp()
        else:
            self._inner = self._connect_ollama()

    def _load_llamacpp(self) -> Any:
        path = resolve(self.model, Path(self.models_dir or "."))
        try:
            from haystack_integrations.components.generators.llama_cpp import (
                LlamaCppChatGenerator,
            )
        except ImportError as exc:
            raise GeneratorError("llama-cpp-python is not installed; run `make install`") from exc
        generator = LlamaCppChatGenerator(
            model=str(path),
            n_ctx=self.context_tokens,
            n_batch=512,
            model_kwargs={
                "n_threads": self.threads,
                "n_threads_batch": self.threads,
                "seed": 0,
                "verbose": False,
            },
            generation_kwargs={"max_tokens": self.max_tokens, "temperature": 0.0},
        )
        try:
            with _quiet_stderr():
                generator.warm_up()
        except (ValueError, RuntimeError, OSError) as exc:
            raise GeneratorError(
                f"llama.cpp could not load the model {self.model_name}: {type(exc).__name__}"
            ) from exc
        log.info("embedded model loaded (%s)", self.model_name)
        return generator

    def _describe(self) -> str:
        return f"Ollama at {self.url} (model {self.model})"

    def _check_guard(self) -> None:
        host = urlsplit(self.url).hostname or ""
        if not host_allowed(host):
            raise OfflineViolation(
                f"huisclos refused to connect to {self._describe()}: the host is not allowed; "
                "set HUISCLOS_GENERATOR=ollama with this HUISCLOS_OLLAMA_URL, or add the host "
                "to HUISCLOS_ALLOWED_HOSTS"
            )

    def _connect_ollama(self) -> Any:
        from haystack_integrations.components.generators.ollama import OllamaChatGenerator
        from ollama import Client

        self._check_guard()
        generator = OllamaChatGenerator(
            model=self.model,
            url=self.url,
            timeout=self.timeout,  # type: ignore[arg-type]  # httpx takes float seconds
            generation_kwargs={
                "temperature": 0.0,
                "num_ctx": self.context_tokens,
                "num_predict": self.max_tokens,
                "seed": 0,
            },
        )
        with Client(host=self.url, timeout=self.timeout) as client, self._translated():
            listed = client.list()
        names = {m.model for m in listed.models if m.model}
        wanted = self.model if ":" in self.model else f"{self.model}:latest"
        if self.model not in names and wanted not in names:
            raise GeneratorError(
                f"{self._describe()}: the server has no such model; "
                f"run `ollama pull {self.model}` on that machine or set "
                f"HUISCLOS_OLLAMA_MODEL (available: {', '.join(sorted(names)) or 'none'})"
            )
        generator.warm_up()
        log.info("ollama server reachable, model present")
        return generator

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn the ollama client's and httpx's errors into GeneratorError."""
        import httpx
        from ollama import ResponseError

        try:
            yield
        except ResponseError as exc:
            if exc.status_code == 404:
                raise GeneratorError(
                    f"{self._describe()}: the server has no such model; "
                    f"run `ollama pull {self.model}` on that machine"
                ) from exc
            raise GeneratorError(f"{self._describe()} failed: {exc.error}") from exc
        except httpx.TimeoutException as exc:
            raise GeneratorError(
                f"{self._describe()} did not answer within {self.timeout:g} s; "
                "raise HUISCLOS_OLLAMA_TIMEOUT_SECONDS or check the server's load"
            ) from exc
        except (ConnectionError, httpx.TransportError) as exc:
            raise GeneratorError(
                f"cannot reach {self._describe()}: is `ollama serve` running there and "
                "is the URL right (HUISCLOS_OLLAMA_URL)?"
            ) from exc

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage],
        streaming_callback: StreamingCallback | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """Generate the reply to ``messages``; stream chunks to ``streaming_callback``.

        Raises:
            GeneratorError: the backend failed (message names backend, model, URL).
        """
        self.warm_up()
        if self.backend == "ollama":
            self._check_guard()
            with self._translated():
                result = self._inner.run(messages=messages, streaming_callback=streaming_callback)
            return {"replies": result["replies"]}
        try:
            result = self._inner.run(messages=messages, streaming_callback=streaming_callback)
        except (ValueError, RuntimeError) as exc:
            raise GeneratorError(
                f"llama.cpp failed while answering with {self.model_name}: {type(exc).__name__}"
            ) from exc
        return {"replies": result["replies"]}

    def close(self) -> None:
        """Free the model or the HTTP client."""
        inner, self._inner = self._inner, None
        if inner is not None and hasattr(inner, "close"):
            with contextlib.suppress(Exception):
                inner.close()
