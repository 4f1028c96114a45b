"""Web origins (``scheme://host[:port]``), written as browsers send them in ``Origin``.

One home for the idea, shared by the setting that lists the browser origins allowed to call
the API (``ORDERFLOW_CORS_ORIGINS``, checked at start-up) and by the API's cross-site
request check, which compares a request's ``Origin`` or ``Referer`` with those.

The serialisation is the URL standard's: scheme and host in lower case, the scheme's default
port left out, IPv6 hosts in brackets, never a path or a trailing slash.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
EXAMPLE = "https://shop.example"
#: A host as browsers put it in ``Origin``: a DNS name in ASCII (punycode) or an IP address.
_HOST = re.compile(r"[a-z0-9._-]+|\[[0-9a-f:.]+\]")


class NotAnOrigin(ValueError):
    """Configured text that is not an origin; the message says what is wrong with it."""


def origin_of(url: str) -> str | None:
    """The origin of an absolute ``http(s)`` URL (an ``Origin`` or ``Referer`` header, or
    ``scheme://`` + ``Host``), or None when it has none (``null``, a relative or other-scheme
    URL, a bad port)."""
    parts = _split(url)
    return None if parts is None else _serialise(parts)


def configured_origin(text: str) -> str:
    """``text`` as an origin in the form it is compared in, or :class:`NotAnOrigin`: only
    ``scheme://host[:port]``, never a wildcard, a path (not even ``/``), a query or
    credentials."""
    text = text.strip()
    if "*" in text:
        raise NotAnOrigin("a wildcard is never allowed with credentials, list each origin")
    parts = _split(text)
    if parts is None:
        raise NotAnOrigin("it needs http:// or https://, a host and at most a valid port")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise NotAnOrigin("it has a path (even a trailing / is one), a query or a fragment")
    if parts.username is not None or "@" in parts.netloc:
        raise NotAnOrigin("it has a user name or password")
    if not _HOST.fullmatch(_host(parts)):
        raise NotAnOrigin("the host must be an ASCII name (punycode for others) or an IP address")
    return _serialise(parts)


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port that is not 0-65535)
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname or parts.port == 0:
        return None
    return parts


def _host(parts: SplitResult) -> str:
    host = parts.hostname or ""  # lower case
    return f"[{host}]" if ":" in host else host  # IPv6: urlsplit took the brackets off


def _serialise(parts: SplitResult) -> str:
    scheme, host, port = parts.scheme.lower(), _host(parts), parts.port
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
