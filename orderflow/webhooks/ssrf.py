"""The SSRF guard: an endpoint URL must be https and resolve only to public addresses,
checked when the endpoint is created or changed and again before every send (a name may
resolve elsewhere later). ``ORDERFLOW_WEBHOOK_ALLOW_PRIVATE_URLS`` turns it off for
development and tests (plain http is then accepted too).

Known gap: between the check at send and httpx's own resolution a name could change
(DNS rebinding within seconds); pinning the checked address would close it."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

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
    for address in _addresses(host, port):
        if not _public(address):
            raise _unsafe(f"{host} resolves to {address}, which is not public")


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
