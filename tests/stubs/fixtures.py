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
from tests.stubs import ADAPTER_TEST_TIMEOUT, EMAIL_FROM, STRIPE_WEBHOOK_SECRET
from tests.stubs.sendgrid_server import DEFAULT_API_KEY as SENDGRID_STUB_API_KEY
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.shippo_server import ShippoStub
from tests.stubs.stripe_server import DEFAULT_API_KEY as STRIPE_STUB_API_KEY
from tests.stubs.stripe_server import StripeStub

__all__ = [
    "ADAPTER_TEST_TIMEOUT",
    "EMAIL_FROM",
    "SENDGRID_STUB_API_KEY",
    "STRIPE_STUB_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "local_email_sender",
    "local_payment_provider",
    "sendgrid_sender",
    "sendgrid_stub",
    "sendgrid_stub_session",
    "sendgrid_stub_shared",
    "shippo_stub",
    "stripe_provider",
    "stripe_stub",
    "stripe_stub_session",
    "stripe_stub_shared",
]


@pytest.fixture
def stripe_stub() -> Iterator[StripeStub]:
    with StripeStub(api_key=STRIPE_STUB_API_KEY) as stub:
        yield stub


@pytest.fixture
def sendgrid_stub() -> Iterator[SendGridStub]:
    with SendGridStub(api_key=SENDGRID_STUB_API_KEY) as stub:
        yield stub


@pytest.fixture
def shippo_stub() -> Iterator[ShippoStub]:
    with ShippoStub() as stub:
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
