"""Wire-level stand-ins for the outside world, for tests only (never product code).

* :class:`tests.stubs.stripe_server.StripeStub`: Stripe's v1 REST API (PaymentIntents,
  refunds, idempotency, errors, test cards) for the official ``stripe`` SDK;
* :class:`tests.stubs.sendgrid_server.SendGridStub`: SendGrid's v3 mail send;
* :class:`tests.stubs.twilio_server.TwilioStub`: Twilio's Messages API (send, list);
* :mod:`tests.stubs.fixtures`: pytest fixtures around them (import them in a conftest).

All are real HTTP servers on 127.0.0.1 in a background thread, record every request
and can be told to answer 5xx/429 or hang (:mod:`tests.stubs.base`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.stubs.sendgrid_server import SendGridStub
    from tests.stubs.stripe_server import StripeStub

#: Client timeout for adapters under test: short, so "hang" tests stay fast.
ADAPTER_TEST_TIMEOUT = 1.0
#: The webhook signing secret tests configure (``ORDERFLOW_STRIPE_WEBHOOK_SECRET``).
STRIPE_WEBHOOK_SECRET = "whsec_orderflow_stub_webhook_secret"
#: The sender address tests configure (``ORDERFLOW_EMAIL_FROM``).
EMAIL_FROM = "orders@orderflow.test"


def stub_provider_env(stripe: StripeStub, sendgrid: SendGridStub) -> dict[str, str]:
    """``ORDERFLOW_*`` variables that point a process (API, worker) at the stubs."""
    return {
        "ORDERFLOW_PAYMENT_PROVIDER": "stripe",
        "ORDERFLOW_STRIPE_API_KEY": stripe.api_key,
        "ORDERFLOW_STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "ORDERFLOW_STRIPE_API_BASE": stripe.url,
        "ORDERFLOW_EMAIL_PROVIDER": "sendgrid",
        "ORDERFLOW_SENDGRID_API_KEY": sendgrid.api_key,
        "ORDERFLOW_SENDGRID_HOST": sendgrid.url,
        "ORDERFLOW_EMAIL_FROM": EMAIL_FROM,
    }
