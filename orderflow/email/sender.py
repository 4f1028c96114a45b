"""The email interface: a message value, a one-method Protocol, and its errors.

``message_key`` is our idempotency/dedupe key (``"ord_x:confirmation"``). It is derived
from domain ids, never random, so every retry of "send the confirmation for ord_x"
carries the same key: the local sender overwrites the same file, the SendGrid sender
tags the message with it (``custom_args``) and gives it a ``Message-ID`` computed from it,
so even a duplicate that slips through at the wire is one message to mail clients that
collapse equal Message-IDs. The real once-only guarantee is the caller's unique
constraint on (order, kind); SendGrid itself has no idempotency key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MAX_MESSAGE_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailMessage:
    """One email to one recipient. Header fields refuse CR/LF (header injection)."""

    to: str
    subject: str
    text: str
    html: str | None = None
    message_key: str

    def __post_init__(self) -> None:
        if not self.message_key or len(self.message_key) > MAX_MESSAGE_KEY_LENGTH:
            raise ValueError(f"message_key must be 1..{MAX_MESSAGE_KEY_LENGTH} characters")
        for name in ("to", "subject", "message_key"):
            value: str = getattr(self, name)
            if "\r" in value or "\n" in value:
                raise ValueError(f"{name} must not contain line breaks")
        if "@" not in self.to.strip("@"):
            raise ValueError("to must be an email address")


def message_digest(message_key: str) -> str:
    """32 hex chars identifying a message key: file names, Message-IDs, local ids."""
    return hashlib.sha256(message_key.encode()).hexdigest()[:32]


def message_id_header(message_key: str, from_address: str) -> str:
    """A deterministic RFC 5322 ``Message-ID`` for a message key, on the sender's domain."""
    domain = from_address.rpartition("@")[2].strip("> ") or "orderflow.local"
    return f"<{message_digest(message_key)}@{domain}>"


class EmailError(Exception):
    """Base of every error the email adapters raise."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class EmailProviderUnavailable(EmailError):
    """Transient (5xx, 429, timeouts, connection errors): retry later with backoff."""

    def __init__(
        self, message: str, *, http_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after = retry_after


class EmailRejected(EmailError):
    """Permanent: the provider refused this message as made (4xx other than 429)."""


class EmailProviderMisconfigured(EmailRejected):
    """Authentication or permission refused (wrong or revoked API key)."""


@runtime_checkable
class EmailSender(Protocol):
    def send(self, message: EmailMessage) -> str:
        """Send (or, locally, store) the message; return the provider's message id."""
        ...

    def find_sent(self, message: EmailMessage) -> str | None:
        """The provider's id of a message it already took under ``message.message_key``,
        or ``None`` when it has none or cannot tell. Asked before sending again after an
        attempt whose outcome is unknown (a worker killed mid-send, a timeout)."""
        ...
