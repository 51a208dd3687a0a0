"""Offline by construction: telemetry switches and the outbound-connection guard.

:func:`apply_privacy_switches` must run before haystack, chromadb,
sentence-transformers or unstructured are imported; importing
``huisclos.config`` does it. :func:`install_network_guard` adds an audit hook
that refuses any ``socket.connect`` to an address outside loopback and the
hosts explicitly allowed (a Chroma server, an Ollama server).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterable
from typing import Any

from huisclos.config.errors import OfflineViolation

__all__ = [
    "CONTENT_LOGGERS",
    "PRIVACY_ENVIRONMENT",
    "allow_hosts",
    "apply_privacy_switches",
    "guard_installed",
    "host_allowed",
    "install_network_guard",
]

PRIVACY_ENVIRONMENT: dict[str, str] = {
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "CHROMA_TELEMETRY": "False",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Haystack can dump a failed pipeline's inputs (questions, decrypted passages) to disk.
    "HAYSTACK_PIPELINE_SNAPSHOT_SAVE_ENABLED": "false",
    "HAYSTACK_CONTENT_TRACING_ENABLED": "false",
    "OLLAMA_NOHISTORY": "1",
}


CONTENT_LOGGERS: dict[str, int] = {
    # These quote document text in their messages: unstructured's trace logger
    # ("Not narrative ... <element text>"), pdfminer ("Cannot render ... b'<text>'").
    "unstructured": logging.WARNING,
    "unstructured.trace": logging.WARNING,
    "unstructured_inference": logging.WARNING,
    "pdfminer": logging.ERROR,
    "pypdf": logging.ERROR,
    # Debug messages name every changed file ("in-event <...src_path=...>").
    "watchdog": logging.INFO,
    # Describes the inputs of a failed pipeline run (questions, passages).
    "haystack.utils.base_serialization": logging.ERROR,
    "haystack.core.pipeline": logging.WARNING,
}


def apply_privacy_switches() -> None:
    """Turn off every library's telemetry and hub access (idempotent).

    Values already set by the user to something stricter are overwritten
    too: there is no supported way to turn telemetry on. Loggers known to
    quote document text get a level above the one at which they do, so that
    turning on debug logging never writes client data to a log.
    """
    os.environ.update(PRIVACY_ENVIRONMENT)
    for name, level in CONTENT_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


_lock = threading.Lock()
_allowed_names: set[str] = {"localhost"}
_allowed_addresses: set[str] = set()
_installed = False


def _resolve(host: str) -> set[str]:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return set()
    return {str(info[4][0]) for info in infos}


def allow_hosts(hosts: Iterable[str]) -> None:
    """Allow outbound connections to these host names or addresses.

    Names are resolved once, now; loopback is always allowed.
    """
    with _lock:
        for host in hosts:
            host = host.strip().strip("[]")
            if not host:
                continue
            _allowed_names.add(host.lower())
            _allowed_addresses.add(host)
            if not _is_ip(host):
                _allowed_addresses.update(_resolve(host))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _permitted(address: Any) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and other local families
    host = str(address[0]).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower() in _allowed_names
    if ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped and ip.ipv4_mapped.is_loopback):
        return True
    return host in _allowed_addresses


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect":
        return
    sock, address = args[0], args[1]
    family = getattr(sock, "family", None)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return
    if not _permitted(address):
        raise OfflineViolation(
            f"huisclos refused an outbound connection to {address[0]}: only loopback "
            "and configured hosts are allowed (see HUISCLOS_ALLOWED_HOSTS)"
        )


def install_network_guard(extra_hosts: Iterable[str] = ()) -> None:
    """Install the outbound-connection guard for this process (idempotent).

    Audit hooks cannot be removed: once installed, the guard stays for the
    life of the process. Further hosts can be allowed with :func:`allow_hosts`.
    """
    global _installed
    allow_hosts(extra_hosts)
    with _lock:
        if _installed:
            return
        sys.addaudithook(_audit)
        _installed = True


def host_allowed(host: str) -> bool:
    """Whether the guard lets this process connect to ``host`` (name or address)."""
    host = host.strip().strip("[]")
    if not _installed:
        return True
    addresses = {host} if _is_ip(host) else _resolve(host) or {host}
    return all(_permitted((address, 0)) for address in addresses)


def guard_installed() -> bool:
    """Whether this process refuses outbound connections."""
    return _installed
