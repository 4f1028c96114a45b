"""The local customer-action page: an order waiting for 3-D Secure under the local payment
provider names the page in ``next_action_url``; its Complete and Fail buttons move the local
intent and post a signed Stripe webhook through the real ``POST /webhooks/stripe`` route
(real worker processes run the rest of the pipeline)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.routers import local_payments
from orderflow.db import Database
from orderflow.models import Product, WebhookEvent
from orderflow.money import Money
from orderflow.payments import IntentStatus
from orderflow.payments.local import LocalPaymentProvider
from orderflow.payments.local_action import event_for, settle, signed_event, stripe_signature
from orderflow.settings import Settings
from tests.conftest import order_body, wait_for_status
from tests.system import SystemProcesses, wait_until

AT_REST = {"confirmed", "failed", "cancelled"}
SECRET = "whsec_local_test_secret"


def _place_3ds(customer: httpx.Client, product: Product) -> str:
    body = order_body((product.id, 2), payment_method="pm_card_authenticationRequired")
    answer = customer.post("/orders", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["next_action_url"] is None  # not charged yet
    return str(answer.json()["id"])


def _wait_for_next_action(customer: httpx.Client, order_id: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def waiting() -> bool:
        seen.update(customer.get(f"/orders/{order_id}").json())
        return seen.get("next_action_url") is not None

    wait_until(waiting, 30)
    return seen


@pytest.mark.workers
def test_complete_on_the_local_page_confirms_the_order(
    local_pipeline: SystemProcesses,
    api_url: str,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
    settings: Settings,
) -> None:
    product = make_product(price=2500, stock=5)
    order_id = _place_3ds(customer, product)
    order = _wait_for_next_action(customer, order_id)
    intent_id = order["payment_intent_id"]
    assert order["next_action_url"] == f"{api_url}/api/v1/local-payments/{intent_id}"
    # The list shows it too.
    listed = customer.get("/orders").json()["items"]
    assert [o["next_action_url"] for o in listed] == [order["next_action_url"]]

    with httpx.Client(timeout=30) as browser:
        page = browser.get(order["next_action_url"])
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert order_id in page.text
        assert "5000 USD" in page.text
        assert "/complete" in page.text
        assert "/fail" in page.text

        done = browser.post(f"{order['next_action_url']}/complete")
        assert done.status_code == 303
        assert done.headers["location"] == f"{order['next_action_url']}?webhook=applied"
        order = wait_for_status(customer, order_id, AT_REST)
        assert order["status"] == "confirmed"
        assert order["payment_status"] == "paid"
        assert order["next_action_url"] is None
        # The provider agrees, and the event went through the webhook route (stored by id).
        provider = LocalPaymentProvider(settings.state_dir / "payments")
        assert provider.retrieve(intent_id).status is IntentStatus.SUCCEEDED
        with clean_database.unit_of_work() as session:
            stored = session.scalars(select(WebhookEvent).where(WebhookEvent.order_id == order_id))
            assert [event.type for event in stored] == ["payment_intent.succeeded"]

        resent = browser.post(f"{api_url}/api/v1/local-payments/{intent_id}/complete")
        assert resent.headers["location"].endswith("?webhook=duplicate")
        shown = browser.get(resent.headers["location"])
        assert "Nothing left to do" in shown.text
        assert "duplicate" in shown.text
        # Failing what was paid is refused.
        refused = browser.post(f"{api_url}/api/v1/local-payments/{intent_id}/fail")
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"


@pytest.mark.workers
def test_fail_on_the_local_page_fails_the_order_and_gives_the_stock_back(
    local_pipeline: SystemProcesses,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    clean_database: Database,
) -> None:
    product = make_product(price=2500, stock=5)
    order_id = _place_3ds(customer, product)
    url = _wait_for_next_action(customer, order_id)["next_action_url"]
    answer = httpx.post(f"{url}/fail", timeout=30)
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("?webhook=applied")
    order = wait_for_status(customer, order_id, AT_REST)
    assert (order["status"], order["failure_reason"]) == ("failed", "payment_declined")
    with clean_database.unit_of_work() as session:
        assert session.get(Product, product.id).stock == 5  # type: ignore[union-attr]


def test_unknown_and_malformed_intents(api: httpx.Client) -> None:
    unknown = api.get("/local-payments/pi_local_000000000000000000000000")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert api.post("/local-payments/pi_local_000000000000000000000000/complete").status_code == (
        404
    )
    assert api.get("/local-payments/pi_123").status_code == 422
    assert api.get("/local-payments/../../etc/passwd").status_code == 404


@pytest.fixture
def waiting_intent(settings: Settings) -> str:
    """An intent of the local provider (in the tests' state dir) waiting for the customer."""
    provider = LocalPaymentProvider(settings.state_dir / "payments")
    result = provider.charge(
        order_id="ord_nowhere",
        amount=Money(1500, "usd"),
        payment_method="pm_card_authenticationRequired",
        idempotency_key=f"local-page-test-{time.time_ns()}",
    )
    assert result.status is IntentStatus.REQUIRES_ACTION
    return result.intent_id


@pytest.fixture
def app_without_secret(settings: Settings, clean_database: Database) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"stripe_webhook_secret": None}))
    with TestClient(app, base_url="http://testserver/api/v1/") as client:
        yield client


def test_without_a_webhook_secret_the_page_says_so(
    app_without_secret: TestClient, waiting_intent: str, settings: Settings
) -> None:
    page = app_without_secret.get(f"local-payments/{waiting_intent}")
    assert page.status_code == 200
    assert "ORDERFLOW_STRIPE_WEBHOOK_SECRET" in page.text
    assert "/complete" not in page.text
    refused = app_without_secret.post(
        f"local-payments/{waiting_intent}/complete", follow_redirects=False
    )
    assert refused.status_code == 409
    assert "ORDERFLOW_STRIPE_WEBHOOK_SECRET" in refused.json()["detail"]
    # Nothing moved.
    provider = LocalPaymentProvider(settings.state_dir / "payments")
    assert provider.retrieve(waiting_intent).status is IntentStatus.REQUIRES_ACTION


def test_a_webhook_the_route_refuses_is_reported(
    settings: Settings,
    clean_database: Database,
    waiting_intent: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Signed with a secret the webhook route does not know: the route refuses it (400)
    and the page answers 502 naming that, instead of claiming success."""
    monkeypatch.setattr(
        local_payments, "signed_event", lambda intent, _: signed_event(intent, "whsec_wrong")
    )
    with TestClient(create_app(settings), base_url="http://testserver/api/v1/") as client:
        answer = client.post(f"local-payments/{waiting_intent}/complete", follow_redirects=False)
    assert answer.status_code == 502
    assert answer.json()["type"] == "/problems/local-webhook-refused"
    assert "answered 400" in answer.json()["detail"]


def test_the_routes_exist_only_with_the_local_provider() -> None:
    local = create_app(Settings.model_construct(environment="test")).openapi()
    assert "/api/v1/local-payments/{intent_id}" in local["paths"]
    stripe_app = create_app(
        Settings.model_construct(environment="test", payment_provider="stripe")
    ).openapi()
    assert not [path for path in stripe_app["paths"] if "local-payments" in path]


# --- the event and its signature, without a server ------------------------------------------


def test_the_event_is_signed_as_stripe_signs_and_carries_the_intent(tmp_path: Path) -> None:
    provider = LocalPaymentProvider(tmp_path)
    result = provider.charge(
        order_id="ord_abc",
        amount=Money(1234, "eur"),
        payment_method="pm_card_authenticationRequired",
        idempotency_key="k1",
    )
    intent = settle(provider, result.intent_id, succeed=True)
    assert provider.retrieve(result.intent_id).status is IntentStatus.SUCCEEDED
    event, payload, signature = signed_event(intent, SECRET)
    verified = stripe.Webhook.construct_event(payload, signature, SECRET, tolerance=300)
    assert verified["type"] == "payment_intent.succeeded"
    assert verified["id"] == event["id"]
    sent = json.loads(payload)["data"]["object"]
    assert (sent["id"], sent["amount"], sent["currency"]) == (result.intent_id, 1234, "eur")
    assert sent["metadata"] == {"order_id": "ord_abc"}
    assert sent["status"] == "succeeded"
    # Same outcome, same event id (a re-send is a duplicate); a settled intent stays settled.
    assert event_for(settle(provider, result.intent_id, succeed=True))["id"] == event["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, signature, "whsec_other", tolerance=300)
    assert stripe_signature(b"{}", SECRET, 1700000000).startswith("t=1700000000,v1=")


def test_a_failed_authentication_is_a_payment_failed_event(tmp_path: Path) -> None:
    provider = LocalPaymentProvider(tmp_path)
    result = provider.charge(
        order_id="ord_abc",
        amount=Money(1234, "eur"),
        payment_method="pm_card_authenticationRequired",
        idempotency_key="k2",
    )
    intent = settle(provider, result.intent_id, succeed=False)
    event = event_for(intent)
    assert event["type"] == "payment_intent.payment_failed"
    assert event["data"]["object"]["last_payment_error"]["code"] == (
        "payment_intent_authentication_failure"
    )
    assert provider.retrieve(result.intent_id).status is IntentStatus.DECLINED
    with pytest.raises(Exception, match="nothing for the customer"):
        settle(provider, result.intent_id, succeed=True)
