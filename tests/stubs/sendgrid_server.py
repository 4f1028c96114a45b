"""A stand-in for SendGrid's v3 ``POST /v3/mail/send``, close enough for the ``sendgrid`` SDK.

Checks Bearer auth (401 in SendGrid's ``{"errors": [...]}`` shape on a wrong key),
validates the v3 body (personalizations with recipients, ``from``, a subject, content
with ``text/plain`` before ``text/html``, string ``custom_args``, no reserved headers),
answers 202 with an ``X-Message-Id`` header and records every accepted message. Fault
injection is :mod:`tests.stubs.base`'s (``fail_next``, ``hang_next``, ``set_mode``).

SendGrid has no idempotency key, and neither has this stub: two posts are two messages.
Count them per ``custom_args.message_key`` with :meth:`SendGridStub.messages`. It answers the
Email Activity API's ``GET /v3/messages?query=…&limit=…`` for the queries the sender makes
(``unique_args['message_key']="…"``, Activity's name for ``custom_args``), with the
messages' ``msg_id``, addresses, subject and status, newest first.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.stubs.base import INSTANT, Latency, StubRequest, StubResponse, StubServer

DEFAULT_API_KEY = "SG.orderflow-stub.0123456789abcdef"
#: Headers SendGrid refuses in ``headers`` (they are set from other fields).
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type",
        "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC",
    )
)  # fmt: skip
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: The Email Activity queries the stand-in understands: one unique argument's value.
_UNIQUE_ARG_QUERY = re.compile(r"""^unique_args\['([^']+)'\]="([^"]*)"$""")


@dataclass(frozen=True, slots=True)
class SentMail:
    """One accepted message (one per post, whatever the number of recipients)."""

    message_id: str
    to: list[str]
    from_email: str
    subject: str
    text: str | None
    html: str | None
    custom_args: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any] = field(repr=False)
    sent_at: float = field(default_factory=time.time)

    @property
    def message_key(self) -> str | None:
        return self.custom_args.get("message_key")


class _Invalid(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _errors(*items: tuple[str, str | None]) -> dict[str, Any]:
    return {"errors": [{"message": m, "field": f, "help": None} for m, f in items]}


class SendGridStub(StubServer):
    """See the module docstring. ``SendGridStub(api_key=...)``; ``.url`` is the host."""

    name = "sendgrid-stub"

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: Latency = INSTANT,
    ) -> None:
        super().__init__(host, port, latency)
        self.api_key = api_key
        self._sent: list[SentMail] = []

    def reset(self) -> None:
        with self.lock:
            self._sent.clear()
        self.reset_requests()
        self.clear_faults()

    # -- inspection ---------------------------------------------------------------------

    def messages(self, message_key: str | None = None) -> list[SentMail]:
        with self.lock:
            return [m for m in self._sent if message_key is None or m.message_key == message_key]

    def count_by_key(self) -> Counter[str | None]:
        return Counter(m.message_key for m in self.messages())

    # -- HTTP -----------------------------------------------------------------------------

    def fault_body(self, status: int) -> StubResponse:
        if status == 429:
            return StubResponse.json(
                429,
                _errors(("too many requests", None)),
                {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"},
                {"injected": True},
            )
        message = "Internal server error" if status >= 500 else f"Injected HTTP {status}"
        return StubResponse.json(status, _errors((message, None)), None, {"injected": True})

    def handle(self, request: StubRequest) -> StubResponse:
        route = (request.method, request.path)
        if route not in (("POST", "/v3/mail/send"), ("GET", "/v3/messages")):
            return StubResponse.json(404, _errors(("not found", None)))
        if not self._authorized(request):
            return StubResponse.json(
                401,
                _errors(("The provided authorization grant is invalid, expired, or revoked", None)),
                note={"authorized": False},
            )
        if request.method == "GET":
            return self._activity(dict(request.query))
        try:
            body = json.loads(request.body or b"null")
            mail = _validate(body)
        except json.JSONDecodeError:
            return StubResponse.json(400, _errors(("Bad Request", None)), note={"authorized": True})
        except _Invalid as exc:
            return StubResponse.json(
                400, _errors((str(exc), exc.field)), note={"authorized": True, "invalid": True}
            )
        message_id = secrets.token_urlsafe(16)[:22]
        sent = SentMail(message_id=message_id, body=body, **mail)
        with self.lock:
            self._sent.append(sent)
        return StubResponse(
            202,
            b"",
            {"X-Message-Id": message_id},
            {"authorized": True, "message_id": message_id, "message_key": sent.message_key},
        )

    def _activity(self, query: dict[str, str]) -> StubResponse:
        """Email Activity's message filter, for one unique argument."""
        wanted = _UNIQUE_ARG_QUERY.match(query.get("query", ""))
        if wanted is None:
            return StubResponse.json(400, _errors(("invalid query", "query")))
        limit = max(1, min(int(query.get("limit") or 10), 1000))
        name, value = wanted.groups()
        found = [m for m in reversed(self.messages()) if m.custom_args.get(name) == value]
        return StubResponse.json(
            200,
            {"messages": [_activity_row(m) for m in found[:limit]]},
            note={"authorized": True, "activity": len(found)},
        )

    def _authorized(self, request: StubRequest) -> bool:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.api_key)


def _activity_row(mail: SentMail) -> dict[str, Any]:
    return {
        "from_email": mail.from_email,
        "msg_id": mail.message_id,
        "subject": mail.subject,
        "to_email": mail.to[0],
        "status": "delivered",
        "opens_count": 0,
        "clicks_count": 0,
        "last_event_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mail.sent_at)),
    }


# -- v3 body validation -----------------------------------------------------------------


def _validate(body: Any) -> dict[str, Any]:
    """The fields of a valid v3 mail send body, or :class:`_Invalid` naming the problem."""
    if not isinstance(body, dict):
        raise _Invalid("The request body must be a JSON object.")
    to = _recipients(body.get("personalizations"))
    from_email = _address(body.get("from"), "from")
    has_template = bool(body.get("template_id"))
    subject = _subject(body, has_template)
    text, html = _content(body.get("content"), has_template)
    return {
        "to": to,
        "from_email": from_email,
        "subject": subject,
        "text": text,
        "html": html,
        "custom_args": _string_map(body.get("custom_args"), "custom_args"),
        "headers": _headers(body.get("headers")),
    }


def _address(value: Any, field: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("email"), str):
        raise _Invalid(f"The {field} object must be provided with an email.", field)
    if not _EMAIL.match(value["email"]):
        raise _Invalid("Does not contain a valid address.", f"{field}.email")
    return str(value["email"])


def _recipients(personalizations: Any) -> list[str]:
    if not isinstance(personalizations, list) or not personalizations:
        raise _Invalid(
            "The personalizations field is required and must have at least one personalization.",
            "personalizations",
        )
    to: list[str] = []
    for index, item in enumerate(personalizations):
        recipients = item.get("to") if isinstance(item, dict) else None
        if not isinstance(recipients, list) or not recipients:
            raise _Invalid(
                "The to array is required for all personalization objects, and must have "
                "at least one email object with a valid email address.",
                f"personalizations.{index}.to",
            )
        to.extend(_address(r, f"personalizations.{index}.to") for r in recipients)
    return to


def _subject(body: dict[str, Any], has_template: bool) -> str:
    subject = body.get("subject")
    if isinstance(subject, str) and subject:
        return subject
    per = [p.get("subject") for p in body["personalizations"]]
    if all(isinstance(s, str) and s for s in per):
        return str(per[0])
    if has_template:
        return ""
    raise _Invalid(
        "The subject is required. You can get around this requirement if you use a template "
        "with a subject defined or if every personalization has a subject defined.",
        "subject",
    )


def _content(content: Any, has_template: bool) -> tuple[str | None, str | None]:
    if content is None and has_template:
        return None, None
    if not isinstance(content, list) or not content:
        raise _Invalid(
            "Unless a valid template_id is provided, the content parameter is required. There "
            "must be at least one defined content block.",
            "content",
        )
    types = []
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not block.get("type") or not block.get("value"):
            raise _Invalid("Content blocks need a type and a non-empty value.", f"content.{index}")
        types.append(block["type"])
    if "text/plain" in types and types.index("text/plain") != 0:
        raise _Invalid(
            "If present, text/plain content must be first, followed by text/html.", "content"
        )
    by_type = {block["type"]: block["value"] for block in content}
    return by_type.get("text/plain"), by_type.get("text/html")


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _Invalid(f"{field} values must be strings.", field)
    return dict(value)


def _headers(value: Any) -> dict[str, str]:
    headers = _string_map(value, "headers")
    for name in headers:
        if name.lower() in RESERVED_HEADERS:
            raise _Invalid(f"The header {name} is reserved and cannot be set.", "headers")
    return headers
