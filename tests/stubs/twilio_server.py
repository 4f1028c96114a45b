"""A stand-in for Twilio's Programmable Messaging REST API, close enough for the official
``twilio`` SDK: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded
``To``, ``From``, ``Body``), the list (``GET …/Messages.json?To=&From=&PageSize=``, newest
first) and one message (``GET …/Messages/{Sid}.json``).

Auth is HTTP Basic with the account SID and auth token (401, Twilio error 20003, otherwise;
another account's path is 404, 20404). Errors have Twilio's shape
(``{"code", "message", "more_info", "status"}``): a missing ``To`` (21604), ``From`` (21603)
or ``Body`` (21602), a ``To`` that is no E.164 number (21211), a ``From`` the account does not
own (21606), a recipient who replied STOP (21610, :attr:`TwilioStub.unsubscribed`), a body
over 1,600 characters (21617). Faults come from :mod:`tests.stubs.base`: ``fail_next(status=
500)`` answers 500 (20500) before anything is sent; ``hang_next(after_processing=True)`` sends
the text, then holds the answer past the client's timeout (the lost answer).

Like Twilio, it takes no idempotency key: two accepted posts are two texts, which
:meth:`TwilioStub.sent_to` counts.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from tests.stubs.base import StubRequest, StubResponse, StubServer

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "twilio-stub-auth-token-0123456789"
#: Twilio's own magic test number: a valid "From" for test credentials.
DEFAULT_FROM = "+15005550006"
MAX_BODY = 1600
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>SM\w+)\.json$")


@dataclass(frozen=True, slots=True)
class SentText:
    sid: str
    to: str
    from_: str
    body: str
    created: datetime


def _error(
    status: int, code: int, message: str, note: dict[str, Any] | None = None
) -> StubResponse:
    return StubResponse.json(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        None,
        note or {},
    )


class TwilioStub(StubServer):
    """See the module docstring. ``.url`` is the API base (``ORDERFLOW_TWILIO_API_BASE``)."""

    name = "twilio-stub"

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        from_numbers: tuple[str, ...] = (DEFAULT_FROM,),
    ) -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.from_numbers = set(from_numbers)
        #: Numbers that replied STOP: Twilio refuses to text them (21610).
        self.unsubscribed: set[str] = set()
        self._sent: list[SentText] = []

    def reset(self) -> None:
        with self.lock:
            self._sent.clear()
            self.unsubscribed.clear()
        self.reset_requests()
        self.clear_faults()

    # -- inspection ---------------------------------------------------------------------

    def texts(self, to: str | None = None) -> list[SentText]:
        """Every text accepted (to ``to``), oldest first."""
        with self.lock:
            return [text for text in self._sent if to is None or text.to == to]

    def sent_to(self, to: str) -> int:
        return len(self.texts(to))

    # -- HTTP -----------------------------------------------------------------------------

    def fault_body(self, status: int) -> StubResponse:
        if status == 429:
            return _error(429, 20429, "Too Many Requests", {"injected": True})
        if status >= 500:
            return _error(
                status, 20500, "An internal server error has occurred", {"injected": True}
            )
        return _error(status, 20001, f"Injected HTTP {status}", {"injected": True})

    def handle(self, request: StubRequest) -> StubResponse:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate", {"authorized": False})
        many, one = _MESSAGES.match(request.path), _MESSAGE.match(request.path)
        match = many or one
        if match is None or match["account"] != self.account_sid:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        if many and request.method == "POST":
            return self._create(dict(parse_qsl(request.body.decode(), keep_blank_values=True)))
        if many and request.method == "GET":
            return self._list(dict(request.query))
        if one and request.method == "GET":
            found = [text for text in self.texts() if text.sid == one["sid"]]
            if found:
                return StubResponse.json(200, self._resource(found[0]))
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        return _error(405, 20004, "Method not allowed")

    def _authorized(self, request: StubRequest) -> bool:
        scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(
            password, self.auth_token
        )

    def _create(self, form: dict[str, str]) -> StubResponse:
        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not form.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            return _error(400, 21602, "Message body is required.")
        if not _E164.match(to):
            return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if from_ not in self.from_numbers:
            return _error(
                400,
                21606,
                f"The From phone number {from_} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        if len(body) > MAX_BODY:
            return _error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        with self.lock:
            if to in self.unsubscribed:
                return _error(400, 21610, "Attempt to send to unsubscribed recipient")
            text = SentText("SM" + secrets.token_hex(16), to, from_, body, datetime.now(UTC))
            self._sent.append(text)
        return StubResponse.json(
            201, self._resource(text), note={"authorized": True, "sid": text.sid}
        )

    def _list(self, query: dict[str, str]) -> StubResponse:
        size = max(1, min(int(query.get("PageSize") or 50), 1000))
        found = [
            text
            for text in reversed(self.texts())
            if query.get("To") in (None, text.to) and query.get("From") in (None, text.from_)
        ][:size]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json?PageSize={size}&Page=0"
        return StubResponse.json(
            200,
            {
                "messages": [self._resource(text) for text in found],
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
                "page": 0,
                "page_size": size,
                "start": 0,
                "end": max(0, len(found) - 1),
                "uri": uri,
            },
        )

    def _resource(self, text: SentText) -> dict[str, Any]:
        created = format_datetime(text.created)
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": text.body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": text.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(max(1, -(-len(text.body) // 153))),
            "price": None,
            "price_unit": "USD",
            "sid": text.sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{text.sid}/Media.json"
            },
            "to": text.to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{text.sid}.json",
        }
