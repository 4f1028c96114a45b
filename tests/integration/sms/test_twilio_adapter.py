"""The Twilio SMS sender driven through the official ``twilio`` SDK against the wire-level
stand-in (``tests/stubs/twilio_server.py``): what goes over the wire, the error shapes, and
the faults: a 500, and the answer lost after Twilio accepted the text."""

from __future__ import annotations

import time

import pytest

from orderflow.settings import Settings
from orderflow.sms import (
    SmsMessage,
    SmsProviderMisconfigured,
    SmsProviderUnavailable,
    SmsRejected,
    sms_sender_from_settings,
)
from orderflow.sms.twilio_sender import TwilioSmsSender
from tests.stubs import ADAPTER_TEST_TIMEOUT
from tests.stubs.fixtures import (
    TWILIO_STUB_ACCOUNT_SID,
    TWILIO_STUB_AUTH_TOKEN,
    TWILIO_STUB_FROM,
)
from tests.stubs.twilio_server import TwilioStub

PHONE = "+14155550123"
MESSAGES_PATH = f"/2010-04-01/Accounts/{TWILIO_STUB_ACCOUNT_SID}/Messages.json"


def text(body: str = "orderflow: your order ord_1 has shipped.") -> SmsMessage:
    return SmsMessage(to=PHONE, body=body, message_key="ord_1:sms:shipped")


def test_a_text_goes_to_the_messages_endpoint_with_basic_auth(
    twilio_stub: TwilioStub, twilio_sender: TwilioSmsSender
) -> None:
    sid = twilio_sender.send(text())
    (sent,) = twilio_stub.texts(PHONE)
    assert sid == sent.sid
    assert sid.startswith("SM")
    assert (sent.from_, sent.body) == (TWILIO_STUB_FROM, "orderflow: your order ord_1 has shipped.")
    (request,) = twilio_stub.requests
    assert (request.method, request.path, request.status) == ("POST", MESSAGES_PATH, 201)
    assert request.note["authorized"] is True
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["user-agent"].startswith("twilio-python/")


def test_the_process_environment_does_not_redirect_the_client(
    twilio_stub: TwilioStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``TWILIO_EDGE`` / ``TWILIO_REGION`` would rewrite the host the SDK calls; our client
    reads only our settings."""
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "ACsomeoneelse")
    sender = TwilioSmsSender(
        TWILIO_STUB_ACCOUNT_SID,
        TWILIO_STUB_AUTH_TOKEN,
        TWILIO_STUB_FROM,
        api_base=twilio_stub.url,
        timeout=ADAPTER_TEST_TIMEOUT,
    )
    sender.send(text())
    assert twilio_stub.sent_to(PHONE) == 1


def test_the_configured_sender_is_the_twilio_one_pointed_at_the_base(
    twilio_stub: TwilioStub,
) -> None:
    settings = Settings(
        sms_provider="twilio",
        twilio_account_sid=TWILIO_STUB_ACCOUNT_SID,
        twilio_auth_token=TWILIO_STUB_AUTH_TOKEN,  # type: ignore[arg-type]
        twilio_from=TWILIO_STUB_FROM,
        twilio_api_base=twilio_stub.url,
    )
    sender = sms_sender_from_settings(settings, timeout=ADAPTER_TEST_TIMEOUT)
    assert isinstance(sender, TwilioSmsSender)
    assert TWILIO_STUB_AUTH_TOKEN not in repr(sender)
    sender.send(text())
    assert twilio_stub.sent_to(PHONE) == 1


def test_wrong_credentials_are_misconfiguration(twilio_stub: TwilioStub) -> None:
    sender = TwilioSmsSender(
        TWILIO_STUB_ACCOUNT_SID, "wrong-token", TWILIO_STUB_FROM, api_base=twilio_stub.url
    )
    with pytest.raises(SmsProviderMisconfigured) as raised:
        sender.send(text())
    assert (raised.value.http_status, raised.value.code) == (401, 20003)
    assert twilio_stub.sent_to(PHONE) == 0


@pytest.mark.parametrize(
    ("prepare", "code"),
    [
        (lambda stub: stub.unsubscribed.add(PHONE), 21610),  # the customer replied STOP
        (lambda stub: stub.from_numbers.clear(), 21606),  # a number the account does not own
    ],
)
def test_refusals_are_final(
    twilio_stub: TwilioStub, twilio_sender: TwilioSmsSender, prepare: object, code: int
) -> None:
    prepare(twilio_stub)  # type: ignore[operator]
    with pytest.raises(SmsRejected) as raised:
        twilio_sender.send(text())
    assert not isinstance(raised.value, SmsProviderUnavailable)
    assert (raised.value.http_status, raised.value.code) == (400, code)
    assert PHONE not in str(raised.value)  # errors name codes, never the number
    assert twilio_stub.sent_to(PHONE) == 0


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_throttling_are_transient_and_send_nothing(
    twilio_stub: TwilioStub, twilio_sender: TwilioSmsSender, status: int
) -> None:
    twilio_stub.fail_next(status=status)
    with pytest.raises(SmsProviderUnavailable) as raised:
        twilio_sender.send(text())
    assert raised.value.http_status == status
    assert twilio_stub.sent_to(PHONE) == 0
    assert twilio_sender.find_sent(text()) is None  # so a retry sends it
    twilio_sender.send(text())
    assert twilio_stub.sent_to(PHONE) == 1


def test_a_timeout_after_twilio_accepted_is_found_not_sent_again(
    twilio_stub: TwilioStub, twilio_sender: TwilioSmsSender
) -> None:
    """The lost answer: Twilio took the text, the client timed out. Twilio has no
    idempotency key, so a blind retry would text the customer twice (shown at the end); the
    caller asks ``find_sent`` first, which finds the text by its body."""
    twilio_stub.hang_next(seconds=ADAPTER_TEST_TIMEOUT * 3, after_processing=True)
    started = time.monotonic()
    with pytest.raises(SmsProviderUnavailable, match="could not reach Twilio"):
        twilio_sender.send(text())
    assert time.monotonic() - started < ADAPTER_TEST_TIMEOUT * 2.5  # our timeout, not theirs
    (accepted,) = twilio_stub.texts(PHONE)
    assert twilio_sender.find_sent(text()) == accepted.sid
    assert twilio_sender.find_sent(text("orderflow: your order ord_2 has shipped.")) is None
    lookup = next(r for r in twilio_stub.requests if r.method == "GET")
    assert lookup.query["To"] == PHONE
    assert lookup.query["From"] == TWILIO_STUB_FROM
    twilio_sender.send(text())  # what a retry without the look-up would do:
    assert twilio_stub.sent_to(PHONE) == 2


def test_a_lookup_that_fails_is_transient(
    twilio_stub: TwilioStub, twilio_sender: TwilioSmsSender
) -> None:
    twilio_stub.fail_next(status=500)
    with pytest.raises(SmsProviderUnavailable):
        twilio_sender.find_sent(text())
    twilio_stub.hang_next(seconds=ADAPTER_TEST_TIMEOUT * 3)
    with pytest.raises(SmsProviderUnavailable):
        twilio_sender.find_sent(text())
