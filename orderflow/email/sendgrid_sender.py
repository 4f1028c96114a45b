"""The SendGrid email sender, through the official ``sendgrid`` SDK (v3 mail send).

``SendGridAPIClient(api_key, host=...)`` takes the API host (a stub's address in tests,
``ORDERFLOW_SENDGRID_HOST``); the request goes through the SDK's ``python_http_client``
(over kept-alive connections: ``sendgrid_transport``) with an explicit timeout (the SDK's
``send`` has none, so we call the same ``client.mail.send.post`` it calls, with
``timeout=``).

SendGrid has no idempotency key: a send whose answer is lost (a timeout, a worker killed
mid-send) may have been delivered, and a retry would send it again. We tag every message
with ``custom_args.message_key`` and a ``Message-ID`` derived from the key; before sending
again after such an attempt, the caller asks ``find_sent``, which looks the key up in the
Email Activity API (``GET /v3/messages?query=unique_args['message_key']="…"``). That API is
a paid add-on and its feed lags the send by seconds to minutes: without access (401/403),
or when it answers nothing yet, the message is sent again, and a duplicate stays traceable
by its key and collapses in clients that dedupe by Message-ID.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
from typing import Any

import httpx
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Header, Mail
from sendgrid.helpers.mail.exceptions import SendGridException

from orderflow.email.local import MESSAGE_KEY_HEADER
from orderflow.email.sender import (
    EmailError,
    EmailMessage,
    EmailProviderMisconfigured,
    EmailProviderUnavailable,
    EmailRejected,
    message_id_header,
)
from orderflow.email.sendgrid_transport import KEEP_ALIVE, KeptAliveClient

DEFAULT_HOST = "https://api.sendgrid.com"
DEFAULT_TIMEOUT_SECONDS = 10.0
_SDK_LOGGER = "python_http_client.client"


class _DropSensitiveRecords(logging.Filter):
    """``python_http_client`` logs request headers (our ``Authorization: Bearer`` key) and
    payloads (customers' addresses and mail) at DEBUG. Drop those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not message.startswith(("HEADERS:", "PAYLOAD:"))


def _guard_sdk_logger() -> None:
    logger = logging.getLogger(_SDK_LOGGER)
    if not any(isinstance(f, _DropSensitiveRecords) for f in logger.filters):
        logger.addFilter(_DropSensitiveRecords())


class SendGridEmailSender:
    """An :class:`~orderflow.email.sender.EmailSender` backed by SendGrid."""

    def __init__(
        self,
        api_key: str,
        from_address: str,
        *,
        host: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not api_key:
            raise ValueError("a SendGrid API key is required")
        _guard_sdk_logger()
        self._client = SendGridAPIClient(api_key=api_key, host=(host or DEFAULT_HOST).rstrip("/"))
        # Kept-alive connections, shared by the worker's threads (the SDK opens one a send).
        self._transport = httpx.Client(limits=KEEP_ALIVE, timeout=timeout)
        self._client.client = KeptAliveClient.replacing(self._client.client, self._transport)
        self._from = from_address
        self._timeout = timeout

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(from_address={self._from!r})"

    def close(self) -> None:
        """Close the kept-alive connections."""
        self._transport.close()

    def build_request_body(self, message: EmailMessage) -> dict[str, Any]:
        """The v3 ``/mail/send`` JSON body, built with the SDK's ``Mail`` helper."""
        mail = Mail(
            from_email=self._from,
            to_emails=message.to,
            subject=message.subject,
            plain_text_content=message.text,
            html_content=message.html,
        )
        mail.custom_arg = CustomArg("message_key", message.message_key)
        mail.header = Header("Message-ID", message_id_header(message.message_key, self._from))
        mail.header = Header(MESSAGE_KEY_HEADER, message.message_key)
        body: dict[str, Any] = mail.get()
        return body

    def find_sent(self, message: EmailMessage) -> str | None:
        query = {"query": f"unique_args['message_key']=\"{message.message_key}\"", "limit": 1}
        try:
            response = self._client.client.messages.get(query_params=query, timeout=self._timeout)
            found = json.loads(response.body or b"{}")["messages"]
            message_id = found[0]["msg_id"] if found else None
        except (http_errors.HTTPError, urllib.error.URLError, OSError, http.client.HTTPException,
                ValueError, LookupError, TypeError):  # fmt: skip
            return None  # no Email Activity access, no answer, or not one we understand
        return str(message_id) if message_id else None

    def send(self, message: EmailMessage) -> str:
        try:
            body = self.build_request_body(message)
        except SendGridException as exc:  # e.g. the SDK's "API key in content" guard
            raise EmailRejected(f"SendGrid SDK refused the message: {type(exc).__name__}") from exc
        try:
            response = self._client.client.mail.send.post(request_body=body, timeout=self._timeout)
        except http_errors.HTTPError as exc:
            raise _translate_http_error(exc) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            # URLError wraps refused connections and connect timeouts; a read timeout
            # surfaces as TimeoutError (an OSError); a dropped connection as
            # RemoteDisconnected (an HTTPException).
            reason = getattr(exc, "reason", None)  # URLError's: what failed (no secrets)
            raise EmailProviderUnavailable(
                f"could not reach SendGrid: {type(exc).__name__}"
                + (f" ({str(reason)[:200]})" if reason else "")
            ) from exc
        return _message_id(response.headers) or message_id_header(message.message_key, self._from)


def _message_id(headers: Any) -> str | None:
    if headers is None:
        return None
    value = headers.get("X-Message-Id")
    return str(value) if value else None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _translate_http_error(exc: http_errors.HTTPError) -> EmailError:
    """429 and 5xx are transient; 401/403 mean our key is wrong; other 4xx are final.

    The message names the status only: SendGrid's error body may echo addresses."""
    status = int(exc.status_code)
    if status == 429 or status >= 500 or status == 408:
        return EmailProviderUnavailable(
            f"SendGrid unavailable (HTTP {status})",
            http_status=status,
            retry_after=_retry_after(exc.headers),
        )
    if status in (401, 403):
        return EmailProviderMisconfigured(
            f"SendGrid refused our credentials (HTTP {status})", http_status=status
        )
    return EmailRejected(f"SendGrid rejected the message (HTTP {status})", http_status=status)
