"""An idle keep-alive connection outlives uvicorn's 5-second default: a server that closes it
first races the client's next request on it ("server disconnected without sending a
response"), which is how a test of 200 orders from 20 clients once failed under load."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: orderflow\r\nConnection: keep-alive\r\n\r\n"


def _answer(connection: socket.socket) -> bytes:
    """The head and body of one answer to ``REQUEST`` (small: read until the JSON closes)."""
    received = b""
    while not received.rstrip().endswith(b"}"):
        chunk = connection.recv(4096)
        if not chunk:
            return received
        received += chunk
    return received


def test_an_idle_connection_is_still_served_after_six_seconds(api_url: str) -> None:
    address = urlsplit(api_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(REQUEST)
        assert _answer(connection).startswith(b"HTTP/1.1 200")
        time.sleep(6)  # longer than uvicorn's own keep-alive default (5 s)
        connection.sendall(REQUEST)
        assert _answer(connection).startswith(b"HTTP/1.1 200")
