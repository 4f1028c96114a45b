"""Wire-level stand-ins for the outside world, for tests only (never product code).

* :class:`tests.stubs.stripe_server.StripeStub`: Stripe's v1 REST API (PaymentIntents,
  refunds, idempotency, errors, test cards) for the official ``stripe`` SDK;
* :class:`tests.stubs.sendgrid_server.SendGridStub`: SendGrid's v3 mail send;
* :mod:`tests.stubs.fixtures`: pytest fixtures around both (import them in a conftest).

Both are real HTTP servers on 127.0.0.1 in a background thread, record every request
and can be told to answer 5xx/429 or hang (:mod:`tests.stubs.base`).
"""

#: Client timeout for adapters under test: short, so "hang" tests stay fast.
ADAPTER_TEST_TIMEOUT = 1.0
#: The webhook signing secret tests configure (``ORDERFLOW_STRIPE_WEBHOOK_SECRET``).
STRIPE_WEBHOOK_SECRET = "whsec_orderflow_stub_webhook_secret"
#: The sender address tests configure (``ORDERFLOW_EMAIL_FROM``).
EMAIL_FROM = "orders@orderflow.test"
