import os
import socket

import pytest

from huisclos.config import OfflineViolation, allow_hosts
from huisclos.config.privacy import PRIVACY_ENVIRONMENT, _permitted, guard_installed


def test_telemetry_and_hub_are_off() -> None:
    for name, value in PRIVACY_ENVIRONMENT.items():
        assert os.environ[name] == value
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["HAYSTACK_TELEMETRY_ENABLED"] == "False"


def test_guard_refuses_outbound_connection_before_any_packet() -> None:
    assert guard_installed()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OfflineViolation, match="refused an outbound connection"):
            sock.connect(("192.0.2.10", 443))  # TEST-NET-1: refused by the hook itself
    finally:
        sock.close()


def test_guard_lets_loopback_through() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    try:
        client = socket.create_connection(server.getsockname(), timeout=2)
        client.close()
    finally:
        server.close()


def test_only_configured_hosts_are_allowed() -> None:
    assert _permitted(("127.0.0.1", 80))
    assert _permitted(("::1", 80, 0, 0))
    assert not _permitted(("198.51.100.7", 80))
    allow_hosts(["198.51.100.7"])
    assert _permitted(("198.51.100.7", 80))
    assert not _permitted(("198.51.100.8", 80))
