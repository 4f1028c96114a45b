"""The SSRF guard: an endpoint URL must be https and resolve only to public addresses,
checked when the endpoint is created or changed and again before every send (a name may
resolve elsewhere later). ``ORDERFLOW_WEBHOOK_ALLOW_PRIVATE_URLS`` turns it off for
development and tests (plain http is then accepted too).

DNS rebinding (a name that answers a public address to the check and a private one a moment
later to the connection) is closed by pinning: the sender's connections are opened by
``PinnedBackend``, which resolves the host itself, refuses it unless every address is public,
and connects to the very addresses it checked. TLS still verifies the certificate for the
host's name (httpcore takes the SNI name and the ``Host`` header from the URL, not from the
address connected to).
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from urllib.parse import urlsplit

import httpcore
import httpx

from orderflow.errors import Unprocessable


class UnsafeUrl(Unprocessable):
    slug, title = "unsafe-webhook-url", "Webhook URL not allowed"


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise ``UnsafeUrl`` naming the reason, or return."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise _unsafe("the URL cannot be parsed") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise _unsafe(f"the URL must use {' or '.join(schemes)}")
    if not host:
        raise _unsafe("the URL has no host")
    if parts.username or parts.password:
        raise _unsafe("the URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _unsafe("the URL's port is invalid") from None
    if allow_private:
        return
    vetted_addresses(host, port, allow_private=False)


def vetted_addresses(
    host: str, port: int, *, allow_private: bool
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The host's addresses, each public unless private ones are allowed (``UnsafeUrl``)."""
    addresses = _addresses(host, port)
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise _unsafe(f"{host} resolves to {address}, which is not public")
    return addresses


class PinnedBackend(httpcore.NetworkBackend):
    """Opens each connection to an address it has just checked (see the module's note); a
    host that resolves to any address that is not public raises ``UnsafeUrl``, before any
    connection is made."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in vetted_addresses(host, port, allow_private=self.allow_private):
            try:
                return self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure or httpcore.ConnectError(f"{host} has no address")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks are sent over TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def pinned_transport(*, allow_private: bool) -> httpx.HTTPTransport:
    """httpx's transport, its connections opened by ``PinnedBackend`` (no proxy from the
    environment: the sender talks to the receiver's vetted address itself)."""
    transport = httpx.HTTPTransport(trust_env=False)
    # The transport's own pool, with the same defaults, but our network backend (httpx
    # takes no backend argument; a unit test proves the swap is in effect).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=httpx._config.DEFAULT_LIMITS.max_connections,
        max_keepalive_connections=httpx._config.DEFAULT_LIMITS.max_keepalive_connections,
        keepalive_expiry=httpx._config.DEFAULT_LIMITS.keepalive_expiry,
        network_backend=PinnedBackend(allow_private=allow_private),
    )
    return transport


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise _unsafe(f"{host} does not resolve") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _unsafe(reason: str) -> UnsafeUrl:
    return UnsafeUrl(reason, errors=[{"field": "url", "message": reason}])
