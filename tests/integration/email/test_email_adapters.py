"""Both email senders through the same cases: the local ``.eml`` writer (into tmp_path) and
the SendGrid sender driven through the official SDK against the SendGrid stub.

Network faults only exist for SendGrid and are tested against the stub at the end.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient

from orderflow.email import (
    EmailMessage,
    EmailProviderMisconfigured,
    EmailProviderUnavailable,
    EmailRejected,
    EmailSender,
    LocalEmailSender,
    email_sender_from_settings,
)
from orderflow.email.sender import message_id_header
from orderflow.email.sendgrid_sender import SendGridEmailSender
from orderflow.settings import Settings
from tests.stubs import ADAPTER_TEST_TIMEOUT, EMAIL_FROM
from tests.stubs.sendgrid_server import DEFAULT_API_KEY as SENDGRID_STUB_API_KEY
from tests.stubs.sendgrid_server import SendGridStub

# Until tests/conftest.py imports them for every suite.


@dataclass(frozen=True, slots=True)
class Delivered:
    to: str
    subject: str
    text: str | None
    html: str | None
    message_id_header: str | None


@dataclass
class EmailBackend:
    """A sender plus a way to see what it delivered: the stub's inbox or the folder."""

    name: str
    sender: EmailSender
    stub: SendGridStub | None = None
    local: LocalEmailSender | None = None

    def delivered(self, message_key: str) -> list[Delivered]:
        """What recipients would see for one key, one entry per distinct Message-ID."""
        if self.stub is not None:
            by_message_id = {
                m.headers.get("Message-ID"): Delivered(
                    m.to[0], m.subject, m.text, m.html, m.headers.get("Message-ID")
                )
                for m in self.stub.messages(message_key)
            }
            return list(by_message_id.values())
        assert self.local is not None
        mime = self.local.read(message_key)
        if mime is None:
            return []
        text_part = mime.get_body(("plain",))
        html_part = mime.get_body(("html",))
        return [
            Delivered(
                str(mime["To"]),
                str(mime["Subject"]),
                text_part.get_content() if text_part is not None else None,
                html_part.get_content() if html_part is not None else None,
                str(mime["Message-ID"]),
            )
        ]

    def posts(self) -> int:
        """Deliveries made: posts accepted by the stub, or files in the folder."""
        if self.stub is not None:
            return len(self.stub.messages())
        assert self.local is not None
        return len(self.local.sent_files())


@pytest.fixture(params=["local", "sendgrid"])
def emails(request: pytest.FixtureRequest) -> EmailBackend:
    if request.param == "local":
        local: LocalEmailSender = request.getfixturevalue("local_email_sender")
        return EmailBackend("local", local, local=local)
    sender: SendGridEmailSender = request.getfixturevalue("sendgrid_sender")
    stub: SendGridStub = request.getfixturevalue("sendgrid_stub")
    return EmailBackend("sendgrid", sender, stub=stub)


def confirmation(order_id: str = "ord_1", *, html: str | None = "<p>Thanks!</p>") -> EmailMessage:
    return EmailMessage(
        to="jane@example.com",
        subject=f"Order {order_id} confirmed",
        text="Thanks for your order.\nIt is on its way.",
        html=html,
        message_key=f"{order_id}:confirmation",
    )


# -- behaviour shared by both senders ---------------------------------------------------


def test_sender_satisfies_the_protocol(emails: EmailBackend) -> None:
    assert isinstance(emails.sender, EmailSender)


def test_send_delivers_text_and_html(emails: EmailBackend) -> None:
    message = confirmation()

    provider_id = emails.sender.send(message)

    assert provider_id
    (delivered,) = emails.delivered(message.message_key)
    assert delivered.to == "jane@example.com"
    assert delivered.subject == "Order ord_1 confirmed"
    assert delivered.text is not None
    assert delivered.text.strip() == message.text
    assert delivered.html is not None
    assert delivered.html.strip() == "<p>Thanks!</p>"
    assert delivered.message_id_header == message_id_header(message.message_key, EMAIL_FROM)


def test_text_only_message(emails: EmailBackend) -> None:
    message = confirmation(html=None)

    emails.sender.send(message)

    (delivered,) = emails.delivered(message.message_key)
    assert delivered.html is None
    assert delivered.text is not None


def test_one_message_per_key_whatever_the_retries(emails: EmailBackend) -> None:
    message = confirmation()

    emails.sender.send(message)
    emails.sender.send(message)

    # Locally the file is overwritten; through SendGrid (no idempotency key) two posts
    # carry one Message-ID, which is one message to the recipient.
    assert len(emails.delivered(message.message_key)) == 1


def test_a_sent_message_is_found_by_its_key(emails: EmailBackend) -> None:
    message = confirmation()
    assert emails.sender.find_sent(message) is None

    provider_id = emails.sender.send(message)

    assert emails.sender.find_sent(message) == provider_id
    assert emails.sender.find_sent(confirmation("ord_2")) is None
    assert emails.posts() == 1  # looking sends nothing


def test_without_activity_access_a_lookup_finds_nothing(sendgrid_stub: SendGridStub) -> None:
    """A key without Email Activity access is refused (401/403): cannot tell, so None."""
    message = confirmation()
    SendGridEmailSender(SENDGRID_STUB_API_KEY, EMAIL_FROM, host=sendgrid_stub.url).send(message)
    no_access = SendGridEmailSender("SG.no-activity", EMAIL_FROM, host=sendgrid_stub.url)

    assert no_access.find_sent(message) is None
    sendgrid_stub.fail_next(1, 500)
    assert (
        SendGridEmailSender(SENDGRID_STUB_API_KEY, EMAIL_FROM, host=sendgrid_stub.url).find_sent(
            message
        )
        is None
    )


def test_distinct_keys_are_distinct_messages(emails: EmailBackend) -> None:
    emails.sender.send(confirmation("ord_1"))
    emails.sender.send(confirmation("ord_2"))

    assert emails.posts() == 2
    assert len(emails.delivered("ord_1:confirmation")) == 1
    assert len(emails.delivered("ord_2:confirmation")) == 1


# -- SendGrid only: the wire, and the faults --------------------------------------------


def test_wire_format_of_a_send(
    sendgrid_sender: SendGridEmailSender, sendgrid_stub: SendGridStub
) -> None:
    message = confirmation()

    provider_id = sendgrid_sender.send(message)

    (request,) = sendgrid_stub.requests
    assert (request.method, request.path, request.status) == ("POST", "/v3/mail/send", 202)
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    (sent,) = sendgrid_stub.messages()
    assert provider_id == sent.message_id
    assert sent.from_email == EMAIL_FROM
    assert sent.custom_args == {"message_key": "ord_1:confirmation"}
    assert sent.headers["X-Orderflow-Message-Key"] == "ord_1:confirmation"
    assert [c["type"] for c in sent.body["content"]] == ["text/plain", "text/html"]


def test_sends_reuse_one_kept_alive_connection(
    sendgrid_sender: SendGridEmailSender, sendgrid_stub: SendGridStub
) -> None:
    for number in range(5):
        sendgrid_sender.send(confirmation(f"ord_{number}"))

    assert len(sendgrid_stub.messages()) == 5
    assert sendgrid_stub.connections_opened == 1  # the SDK alone opens one a send


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_unavailable(
    sendgrid_sender: SendGridEmailSender, sendgrid_stub: SendGridStub, status: int
) -> None:
    sendgrid_stub.fail_next(1, status=status)

    with pytest.raises(EmailProviderUnavailable) as info:
        sendgrid_sender.send(confirmation())

    assert info.value.http_status == status
    assert sendgrid_stub.messages() == []
    sendgrid_sender.send(confirmation())
    assert len(sendgrid_stub.messages()) == 1


def test_rate_limit_is_unavailable_with_retry_after(
    sendgrid_sender: SendGridEmailSender, sendgrid_stub: SendGridStub
) -> None:
    sendgrid_stub.fail_next(1, status=429, retry_after=5)

    with pytest.raises(EmailProviderUnavailable) as info:
        sendgrid_sender.send(confirmation())

    assert info.value.http_status == 429
    assert info.value.retry_after == 5.0


def test_hang_past_timeout_is_unavailable(
    sendgrid_sender: SendGridEmailSender, sendgrid_stub: SendGridStub
) -> None:
    sendgrid_stub.hang_next(1, seconds=ADAPTER_TEST_TIMEOUT + 2)
    started = time.monotonic()

    with pytest.raises(EmailProviderUnavailable):
        sendgrid_sender.send(confirmation())

    assert time.monotonic() - started < ADAPTER_TEST_TIMEOUT + 1.5
    assert sendgrid_stub.messages() == []


def test_bad_request_is_permanent(
    sendgrid_sender: SendGridEmailSender, sendgrid_stub: SendGridStub
) -> None:
    sendgrid_stub.fail_next(1, status=400)

    with pytest.raises(EmailRejected) as info:
        sendgrid_sender.send(confirmation())

    assert not isinstance(info.value, EmailProviderUnavailable)
    assert info.value.http_status == 400


def test_wrong_api_key_is_permanent_and_secret_free(sendgrid_stub: SendGridStub) -> None:
    wrong_key = "SG.wrong-key.do-not-print-me"
    sender = SendGridEmailSender(wrong_key, EMAIL_FROM, host=sendgrid_stub.url, timeout=1)

    with pytest.raises(EmailProviderMisconfigured) as info:
        sender.send(confirmation())

    assert isinstance(info.value, EmailRejected)
    assert info.value.http_status == 401
    assert wrong_key not in str(info.value)
    assert wrong_key not in repr(sender)
    assert sendgrid_stub.messages() == []


def test_connection_refused_is_unavailable() -> None:
    with SendGridStub() as stub:
        address = stub.url
    sender = SendGridEmailSender(SENDGRID_STUB_API_KEY, EMAIL_FROM, host=address, timeout=1)

    with pytest.raises(EmailProviderUnavailable):
        sender.send(confirmation())


def test_sdk_debug_logs_do_not_leak_the_key(
    sendgrid_sender: SendGridEmailSender, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="python_http_client"):
        sendgrid_sender.send(confirmation())

    assert caplog.records  # the SDK did log the request...
    assert SENDGRID_STUB_API_KEY not in caplog.text  # ...but not the key
    assert "jane@example.com" not in caplog.text  # ...nor the payload


def test_stub_validates_the_v3_shape(sendgrid_stub: SendGridStub) -> None:
    client = SendGridAPIClient(SENDGRID_STUB_API_KEY, host=sendgrid_stub.url)
    body: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "jane@example.com"}]}],
        "from": {"email": EMAIL_FROM},
        "subject": "x",
        "content": [
            {"type": "text/html", "value": "<p>x</p>"},
            {"type": "text/plain", "value": "x"},
        ],
    }

    with pytest.raises(http_errors.BadRequestsError) as info:
        client.send(body)

    assert b"text/plain" in info.value.body
    body["content"] = body["content"][::-1]
    body["headers"] = {"Subject": "sneaky"}
    with pytest.raises(http_errors.BadRequestsError):
        client.send(body)
    del body["headers"]
    assert client.send(body).status_code == 202


def test_factory_builds_the_sendgrid_sender(sendgrid_stub: SendGridStub) -> None:
    settings = Settings(
        email_provider="sendgrid",
        sendgrid_api_key=SENDGRID_STUB_API_KEY,
        sendgrid_host=sendgrid_stub.url,
        email_from=EMAIL_FROM,
    )
    sender = email_sender_from_settings(settings, timeout=1)

    assert isinstance(sender, SendGridEmailSender)
    sender.send(confirmation())
    assert sendgrid_stub.messages()[0].from_email == EMAIL_FROM


def test_factory_defaults_to_local(tmp_path: Path) -> None:
    settings = Settings(email_provider="local", state_dir=tmp_path)
    sender = email_sender_from_settings(settings)

    assert isinstance(sender, LocalEmailSender)
    sender.send(confirmation())
    assert [p.parent for p in sender.sent_files()] == [settings.emails_dir]
