"""DNS rebinding: the sender connects to the very address the SSRF guard checked. A resolver
we control (``socket.getaddrinfo`` answering for one test name only; every other name goes to
the real resolver) answers a public address to the check at send and 127.0.0.1 a moment
later; the connection is refused before it is made, and the local listener that the second
answer points to is never reached. No connection ever goes to the public address: it is
answered once, to the check, and never connected to."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orderflow.settings import Settings
from orderflow.webhooks import delivery
from orderflow.webhooks.delivery import Job
from tests.receivers import Receiver

REBINDING = "rebinding.orderflow.test"
PINNED = "pinned.orderflow.test"
#: A public address (is_global), answered to the check only; nothing connects to it.
PUBLIC = "93.184.216.34"


class Listener:
    """A TCP listener on loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names → the addresses the resolver answers, one per lookup (the last one sticks)."""
    script: dict[str, list[str]] = {}
    real = socket.getaddrinfo
    lookups: dict[str, int] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in script:
            return real(host, port, *args, **kwargs)
        turn = lookups.get(host, 0)
        lookups[host] = turn + 1
        address = script[host][min(turn, len(script[host]) - 1)]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return script


def _job(url: str) -> Job:
    return Job(
        delivery_id=1,
        endpoint_id="we_test",
        attempt=1,
        url=url,
        secrets=["whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        event_id="evt_test",
        body='{"id":"evt_test"}',
    )


def _settings(allow_private: bool) -> Settings:
    return Settings(webhook_allow_private_urls=allow_private, webhook_timeout_seconds=2)


def test_a_name_rebound_to_loopback_after_the_check_is_refused(
    answers: dict[str, list[str]], listener: Listener
) -> None:
    answers[REBINDING] = [PUBLIC, "127.0.0.1"]
    settings = _settings(allow_private=False)
    with delivery.new_transport(settings) as transport:
        outcome = delivery.send(
            _job(f"https://{REBINDING}:{listener.port}/hook"), settings, transport
        )
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("refused:")
    assert "127.0.0.1" in outcome.error
    assert listener.accepted == 0


def test_a_name_resolving_to_loopback_at_the_check_is_refused(
    answers: dict[str, list[str]], listener: Listener
) -> None:
    answers[REBINDING] = ["127.0.0.1"]
    settings = _settings(allow_private=False)
    with delivery.new_transport(settings) as transport:
        outcome = delivery.send(
            _job(f"https://{REBINDING}:{listener.port}/hook"), settings, transport
        )
    assert outcome.error is not None
    assert outcome.error.startswith("refused:")
    assert listener.accepted == 0


def test_the_connection_goes_to_the_resolved_address_and_keeps_the_host_name(
    answers: dict[str, list[str]],
) -> None:
    """With private addresses allowed the pinned backend still connects to the address it
    resolved, and the request still names the host (``Host``; TLS would verify that name)."""
    receiver = Receiver()
    receiver.secrets.append("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    try:
        answers[PINNED] = ["127.0.0.1"]
        port = receiver.server.server_address[1]
        settings = _settings(allow_private=True)
        with delivery.new_transport(settings) as transport:
            outcome = delivery.send(_job(f"http://{PINNED}:{port}/hook"), settings, transport)
        assert outcome.status_code == 200, outcome.error
        (arrived,) = receiver.at("/hook")
        assert arrived.headers["host"] == f"{PINNED}:{port}"
        assert arrived.headers["webhook-id"] == "evt_test"
    finally:
        receiver.close()


def test_the_transport_uses_the_pinned_backend() -> None:
    """httpx takes no network backend argument: the transport's pool is swapped. If a new
    httpx moves that pool, this fails rather than the guard silently going."""
    with delivery.new_transport(_settings(allow_private=False)) as transport:
        assert isinstance(transport, httpx.HTTPTransport)
        backend = transport._pool._network_backend
        assert type(backend).__name__ == "PinnedBackend"
