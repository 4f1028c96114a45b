"""Pytest fixtures for the stubs and the adapters pointed at them.

Import them into a conftest (``from tests.stubs.fixtures import *``) or a test module.
Function-scoped fixtures give each test fresh servers; the ``*_session`` ones keep one
server for the whole run (for worker processes that need a fixed address) and are
``reset()`` by the function-scoped ``*_shared`` wrappers before each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orderflow.email.local import LocalEmailSender
from orderflow.email.sendgrid_sender import SendGridEmailSender
from orderflow.payments.local import LocalPaymentProvider
from orderflow.payments.stripe_provider import StripePaymentProvider
from orderflow.sms.local import LocalSmsSender
from orderflow.sms.twilio_sender import TwilioSmsSender
from tests.stubs import ADAPTER_TEST_TIMEOUT, EMAIL_FROM, STRIPE_WEBHOOK_SECRET
from tests.stubs.sendgrid_server import DEFAULT_API_KEY as SENDGRID_STUB_API_KEY
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import DEFAULT_API_KEY as STRIPE_STUB_API_KEY
from tests.stubs.stripe_server import StripeStub
from tests.stubs.twilio_server import DEFAULT_ACCOUNT_SID as TWILIO_STUB_ACCOUNT_SID
from tests.stubs.twilio_server import DEFAULT_AUTH_TOKEN as TWILIO_STUB_AUTH_TOKEN
from tests.stubs.twilio_server import DEFAULT_FROM as TWILIO_STUB_FROM
from tests.stubs.twilio_server import TwilioStub

__all__ = [
    "ADAPTER_TEST_TIMEOUT",
    "EMAIL_FROM",
    "SENDGRID_STUB_API_KEY",
    "STRIPE_STUB_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "TWILIO_STUB_ACCOUNT_SID",
    "TWILIO_STUB_AUTH_TOKEN",
    "TWILIO_STUB_FROM",
    "local_email_sender",
    "local_payment_provider",
    "local_sms_sender",
    "sendgrid_sender",
    "sendgrid_stub",
    "sendgrid_stub_session",
    "sendgrid_stub_shared",
    "stripe_provider",
    "stripe_stub",
    "stripe_stub_session",
    "stripe_stub_shared",
    "twilio_sender",
    "twilio_stub",
    "twilio_stub_session",
    "twilio_stub_shared",
]


@pytest.fixture
def stripe_stub() -> Iterator[StripeStub]:
    with StripeStub(api_key=STRIPE_STUB_API_KEY) as stub:
        yield stub


@pytest.fixture
def sendgrid_stub() -> Iterator[SendGridStub]:
    with SendGridStub(api_key=SENDGRID_STUB_API_KEY) as stub:
        yield stub


@pytest.fixture(scope="session")
def stripe_stub_session() -> Iterator[StripeStub]:
    with StripeStub(api_key=STRIPE_STUB_API_KEY) as stub:
        yield stub


@pytest.fixture(scope="session")
def sendgrid_stub_session() -> Iterator[SendGridStub]:
    with SendGridStub(api_key=SENDGRID_STUB_API_KEY) as stub:
        yield stub


@pytest.fixture
def stripe_stub_shared(stripe_stub_session: StripeStub) -> StripeStub:
    """The session's Stripe stub, emptied (objects, recordings, faults) for this test."""
    stripe_stub_session.reset()
    return stripe_stub_session


@pytest.fixture
def sendgrid_stub_shared(sendgrid_stub_session: SendGridStub) -> SendGridStub:
    """The session's SendGrid stub, emptied for this test."""
    sendgrid_stub_session.reset()
    return sendgrid_stub_session


@pytest.fixture
def stripe_provider(stripe_stub: StripeStub) -> Iterator[StripePaymentProvider]:
    provider = StripePaymentProvider(
        STRIPE_STUB_API_KEY, api_base=stripe_stub.url, timeout=ADAPTER_TEST_TIMEOUT
    )
    yield provider
    provider.close()


@pytest.fixture
def local_payment_provider() -> LocalPaymentProvider:
    return LocalPaymentProvider()


@pytest.fixture
def sendgrid_sender(sendgrid_stub: SendGridStub) -> SendGridEmailSender:
    return SendGridEmailSender(
        SENDGRID_STUB_API_KEY, EMAIL_FROM, host=sendgrid_stub.url, timeout=ADAPTER_TEST_TIMEOUT
    )


@pytest.fixture
def local_email_sender(tmp_path: Path) -> LocalEmailSender:
    return LocalEmailSender(tmp_path / "emails", EMAIL_FROM)


@pytest.fixture
def twilio_stub() -> Iterator[TwilioStub]:
    with TwilioStub(TWILIO_STUB_ACCOUNT_SID, TWILIO_STUB_AUTH_TOKEN) as stub:
        yield stub


@pytest.fixture(scope="session")
def twilio_stub_session() -> Iterator[TwilioStub]:
    with TwilioStub(TWILIO_STUB_ACCOUNT_SID, TWILIO_STUB_AUTH_TOKEN) as stub:
        yield stub


@pytest.fixture
def twilio_stub_shared(twilio_stub_session: TwilioStub) -> TwilioStub:
    """The session's Twilio stub, emptied for this test."""
    twilio_stub_session.reset()
    return twilio_stub_session


@pytest.fixture
def twilio_sender(twilio_stub: TwilioStub) -> TwilioSmsSender:
    return TwilioSmsSender(
        TWILIO_STUB_ACCOUNT_SID,
        TWILIO_STUB_AUTH_TOKEN,
        TWILIO_STUB_FROM,
        api_base=twilio_stub.url,
        timeout=ADAPTER_TEST_TIMEOUT,
    )


@pytest.fixture
def local_sms_sender(tmp_path: Path) -> LocalSmsSender:
    return LocalSmsSender(tmp_path / "sms", TWILIO_STUB_FROM)
