"""The SMS interface: a message value, a small Protocol, and its errors.

``message_key`` is our dedupe key (``"ord_x:sms:shipped"``), derived from domain ids, never
random. Twilio takes no idempotency key: two accepted requests are two texts on the
customer's phone. The once-only guarantee is therefore the caller's: one ``sms_messages``
row per (order, kind) under a unique constraint, claimed before the provider is called, and,
when an earlier attempt may have reached the provider (a timeout after it accepted, a worker
killed before the row was marked sent), :meth:`SmsSender.find_sent` asks the provider
whether the text already went before sending it again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MAX_MESSAGE_KEY_LENGTH = 255
#: Twilio refuses a body longer than this (error 21617); ours are far shorter.
MAX_BODY_LENGTH = 1600
#: E.164's shape; whether the number exists was checked when the customer gave it.
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsMessage:
    """One text to one phone (E.164)."""

    to: str
    body: str
    message_key: str

    def __post_init__(self) -> None:
        if not self.message_key or len(self.message_key) > MAX_MESSAGE_KEY_LENGTH:
            raise ValueError(f"message_key must be 1..{MAX_MESSAGE_KEY_LENGTH} characters")
        if not self.body or len(self.body) > MAX_BODY_LENGTH:
            raise ValueError(f"body must be 1..{MAX_BODY_LENGTH} characters")
        if not E164.match(self.to):
            raise ValueError("to must be a phone number in E.164 (+14155550123)")


def message_digest(message_key: str) -> str:
    """32 hex chars identifying a message key: file names, local message ids."""
    return hashlib.sha256(message_key.encode()).hexdigest()[:32]


class SmsError(Exception):
    """Base of every error the SMS adapters raise."""

    def __init__(
        self, message: str, *, http_status: int | None = None, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


class SmsProviderUnavailable(SmsError):
    """Transient (5xx, 429, timeouts, connection errors): retry later with backoff. The text
    may have been accepted all the same (a timeout after the provider took it)."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status, code=code)
        self.retry_after = retry_after


class SmsRejected(SmsError):
    """Permanent: the provider refused this text as made (a number it cannot reach, a
    recipient who replied STOP, ...). Sending it again would be refused again."""


class SmsProviderMisconfigured(SmsRejected):
    """Authentication or permission refused (wrong account SID or auth token, a from-number
    the account does not own)."""


@runtime_checkable
class SmsSender(Protocol):
    def send(self, message: SmsMessage) -> str:
        """Send (or, locally, store) the text; return the provider's message id."""
        ...

    def find_sent(self, message: SmsMessage) -> str | None:
        """The provider's id of this very text if an earlier attempt got it accepted, else
        None. Asked before sending again after an attempt whose outcome is unknown."""
        ...
