"""The Twilio SMS sender, through the official ``twilio`` SDK (Programmable Messaging).

The SDK builds every URL on ``https://api.twilio.com`` (its ``Api`` domain) and hands the
request to its ``HttpClient``, the SDK's documented extension point (custom proxies and the
like). :class:`_RebasedHttpClient` is the SDK's own ``TwilioHttpClient`` (``requests``) that
moves those URLs onto ``ORDERFLOW_TWILIO_API_BASE`` when it is set (a wire-level stand-in in
tests) and applies our timeout. The client is given its own small environment mapping, so
``TWILIO_EDGE`` / ``TWILIO_REGION`` / ``TWILIO_ACCOUNT_SID`` of the process environment never
change where it goes or who it is: our settings are the ``ORDERFLOW_*`` ones.

Twilio has no idempotency key for creating a message: a request whose answer is lost (a
read timeout after Twilio accepted it) has sent the text, and a blind retry sends it again.
:meth:`TwilioSmsSender.find_sent` therefore looks the text up (the latest messages from our
number to that phone, compared by body, which names the order and the kind) before the
caller sends again after an attempt whose outcome it does not know.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from orderflow.sms.sender import (
    SmsError,
    SmsMessage,
    SmsProviderMisconfigured,
    SmsProviderUnavailable,
    SmsRejected,
)

DEFAULT_API_BASE = "https://api.twilio.com"
DEFAULT_TIMEOUT_SECONDS = 10.0
#: How many of the latest texts to the phone ``find_sent`` reads (one page, one request).
LOOKUP_PAGE_SIZE = 50

#: The SDK logs every request at INFO (URLs with our account SID, headers); we keep WARNING+.
_SDK_LOGGER = logging.getLogger("orderflow.sms.twilio.http")
_SDK_LOGGER.setLevel(logging.WARNING)


class _RebasedHttpClient(TwilioHttpClient):
    """``TwilioHttpClient`` whose requests to ``*.twilio.com`` go to ``api_base`` instead."""

    def __init__(self, api_base: str | None, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_SDK_LOGGER)
        self._base = urlsplit(api_base.rstrip("/")) if api_base else None

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        return super().request(
            method,
            self.rebase(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )

    def rebase(self, url: str) -> str:
        if self._base is None:
            return url
        parts = urlsplit(url)
        if not (parts.hostname or "").endswith("twilio.com"):
            return url
        path = self._base.path + parts.path
        return urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))


class TwilioSmsSender:
    """An :class:`~orderflow.sms.sender.SmsSender` backed by Twilio's Messages API."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not account_sid or not auth_token or not from_number:
            raise ValueError("a Twilio account SID, auth token and from-number are required")
        self._from = from_number
        self._client = Client(
            account_sid,
            auth_token,
            http_client=_RebasedHttpClient(api_base, timeout),
            environment={"TWILIO_ACCOUNT_SID": account_sid},
        )

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(from_number={self._from!r})"

    def send(self, message: SmsMessage) -> str:
        try:
            created = self._client.messages.create(
                to=message.to, from_=self._from, body=message.body
            )
        except TwilioRestException as exc:
            raise _translate(exc.status, exc.code, "send") from exc
        except requests.RequestException as exc:
            # A connect error never reached Twilio; a read timeout may have been accepted.
            raise SmsProviderUnavailable(f"could not reach Twilio: {type(exc).__name__}") from exc
        return str(created.sid)

    def find_sent(self, message: SmsMessage) -> str | None:
        try:
            page = self._client.messages.page(
                to=message.to, from_=self._from, page_size=LOOKUP_PAGE_SIZE
            )
            for found in page:
                if found.body == message.body and found.direction == "outbound-api":
                    return str(found.sid)
        except TwilioRestException as exc:
            raise _translate(exc.status, exc.code, "look up") from exc
        except TwilioException as exc:  # a list page answered with another status than 200
            raise _translate(_status_of(exc), None, "look up") from exc
        except requests.RequestException as exc:
            raise SmsProviderUnavailable(f"could not reach Twilio: {type(exc).__name__}") from exc
        return None


def _status_of(exc: TwilioException) -> int:
    response: Any = exc.args[1] if len(exc.args) > 1 else None
    return int(getattr(response, "status_code", 500))


def _translate(status: int, code: int | None, action: str) -> SmsError:
    """429 and 5xx are transient; 401/403 mean our credentials are wrong; other 4xx are
    final (an unreachable or unsubscribed number: Twilio codes 21211, 21610, 21614, ...).
    The message names the status and Twilio's code only: its text may echo the number."""
    what = f"HTTP {status}" + (f", Twilio error {code}" if code else "")
    if status in (408, 429) or status >= 500:
        return SmsProviderUnavailable(f"Twilio unavailable ({what})", http_status=status, code=code)
    if status in (401, 403):
        return SmsProviderMisconfigured(
            f"Twilio refused our credentials ({what})", http_status=status, code=code
        )
    return SmsRejected(
        f"Twilio refused to {action} the text ({what})", http_status=status, code=code
    )
