"""Keep-alive for the ``sendgrid`` SDK: its ``python_http_client`` opens a new connection for
every request (``urllib``), a TCP and TLS handshake per e-mail. This client sends the same
requests, built by the SDK as before, through one ``httpx.Client``: a pool of kept-alive
connections shared by every thread of the worker.

Errors come back as the SDK raises them: an HTTP error status as ``python_http_client``'s
exceptions (``handle_error``), a connection that fails or times out as ``urllib``'s
``URLError``, so the sender's translation stays the one it has for the SDK."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from typing import Any

import httpx
from python_http_client import Client
from python_http_client.exceptions import handle_error

#: Connections kept open to the API: enough for every thread of a provider worker.
KEEP_ALIVE = httpx.Limits(max_connections=256, max_keepalive_connections=128)


class _Answer:
    """What ``python_http_client.Response`` reads from urllib's answer."""

    def __init__(self, answer: httpx.Response) -> None:
        self._answer = answer

    def getcode(self) -> int:
        return self._answer.status_code

    def read(self) -> bytes:
        return self._answer.content

    def info(self) -> httpx.Headers:
        return self._answer.headers


class KeptAliveClient(Client):
    """A ``python_http_client.Client`` whose requests go through ``transport``."""

    def __init__(self, *args: Any, transport: httpx.Client, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._transport = transport

    @classmethod
    def replacing(cls, client: Client, transport: httpx.Client) -> KeptAliveClient:
        return cls(
            host=client.host,
            request_headers=client.request_headers,
            version=client._version,
            url_path=client._url_path,
            append_slash=client.append_slash,
            timeout=client.timeout,
            transport=transport,
        )

    def _build_client(self, name: str | None = None) -> KeptAliveClient:
        url_path = [*self._url_path, name] if name else self._url_path
        return KeptAliveClient(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            transport=self._transport,
        )

    def _make_request(
        self, opener: Any, request: urllib.request.Request, timeout: float | None = None
    ) -> _Answer:
        try:
            answer = self._transport.request(
                request.get_method(),
                request.full_url,
                content=request.data,  # type: ignore[arg-type]  # bytes or None here
                headers=dict(request.header_items()),
                timeout=timeout or self.timeout,
            )
        except httpx.TransportError as error:  # refused, reset, timed out
            raise urllib.error.URLError(f"{type(error).__name__}: {error}") from error
        if answer.status_code >= 400:
            failed = urllib.error.HTTPError(
                request.full_url,
                answer.status_code,
                answer.reason_phrase,
                answer.headers,  # type: ignore[arg-type]  # read with .get, as urllib's
                io.BytesIO(answer.content),
            )
            raise handle_error(failed)
        return _Answer(answer)
