"""Refunds as rows of their own: partial, never above what is left of the capture under any
concurrency, each sent to the provider once with a key derived from its id, reconciled by
the provider's webhooks. Through the real API and workers, on the local provider and on the
Stripe adapter against its stand-in."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from orderflow.db import Database
from orderflow.models import Product
from orderflow.orders.repository import OrderRepository
from tests.conftest import order_body, wait_for_status
from tests.stubs import STRIPE_WEBHOOK_SECRET
from tests.stubs.stripe_server import StripeStub, signed_event
from tests.system import wait_until

pytestmark = pytest.mark.workers


@pytest.fixture(params=["local", "stubs"])
def stripe(request: pytest.FixtureRequest) -> StripeStub | None:
    """The pipeline on the local provider (None) or on the Stripe adapter and its stand-in."""
    if request.param == "local":
        request.getfixturevalue("local_pipeline")
        return None
    request.getfixturevalue("stub_pipeline")
    stub: StripeStub = request.getfixturevalue("stripe_stub_shared")
    return stub


def _confirmed_order(customer: httpx.Client, product: Product, quantity: int = 1) -> str:
    answer = customer.post("/orders", json=order_body((product.id, quantity)))
    assert answer.status_code == 201, answer.text
    order_id = str(answer.json()["id"])
    assert wait_for_status(customer, order_id, {"confirmed", "failed"})["status"] == "confirmed"
    return order_id


def _refund(admin: httpx.Client, order_id: str, amount: int, **headers: str) -> httpx.Response:
    return admin.post(
        f"/orders/{order_id}/refunds", json={"amount": amount, "reason": "damaged"}, headers=headers
    )


def _settled(admin: httpx.Client, order_id: str) -> dict[str, Any]:
    """The order once none of its refunds is pending any more."""

    def settled() -> bool:
        refunds = admin.get(f"/orders/{order_id}/refunds").json()
        return all(refund["status"] != "pending" for refund in refunds)

    wait_until(settled, 30)
    return dict(admin.get(f"/orders/{order_id}").json())


def test_partial_refunds_up_to_the_capture_then_409(
    stripe: StripeStub | None,
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    order_id = _confirmed_order(customer, make_product(price=2500, stock=5), 2)
    first = _refund(admin, order_id, 1500)
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["amount"]) == ("pending", 1500)
    order = _settled(admin, order_id)
    assert (order["payment_status"], order["captured_amount"]) == ("partially_refunded", 5000)
    assert (order["refunded_amount"], order["refundable_amount"]) == (1500, 3500)

    assert _refund(admin, order_id, 3500).status_code == 201
    order = _settled(admin, order_id)
    assert (order["payment_status"], order["refundable_amount"]) == ("refunded", 0)
    refused = _refund(admin, order_id, 1)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/refund-exceeds-refundable")
    if stripe is not None:  # what the provider really gave back, once per refund
        assert stripe.captured_amount(order_id) == 0
        assert len(stripe.refunds(order_id=order_id)) == 2
    assert [event["type"] for event in _events(admin, order_id)].count("payment_refunded") == 2


def test_concurrent_refunds_never_exceed_the_capture(
    local_pipeline: Any,
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    order_id = _confirmed_order(customer, make_product(price=3000, stock=5))
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: _refund(admin, order_id, 1000), range(10)))
    assert sorted(answer.status_code for answer in answers) == [201] * 3 + [409] * 7
    order = _settled(admin, order_id)
    assert (order["refunded_amount"], order["payment_status"]) == (3000, "refunded")


def test_an_idempotency_key_replays_the_refund(
    local_pipeline: Any,
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    order_id = _confirmed_order(customer, make_product(price=4000, stock=5))
    first = _refund(admin, order_id, 1000, **{"Idempotency-Key": "refund-once"})
    again = _refund(admin, order_id, 1000, **{"Idempotency-Key": "refund-once"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert len(admin.get(f"/orders/{order_id}/refunds").json()) == 1


def test_cancelling_a_paid_order_refunds_what_is_left(
    stripe: StripeStub | None,
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    order_id = _confirmed_order(customer, make_product(price=2000, stock=5))
    assert _refund(admin, order_id, 500).status_code == 201
    _settled(admin, order_id)
    assert customer.delete(f"/orders/{order_id}").status_code == 204
    order = _settled(admin, order_id)
    assert (order["status"], order["payment_status"]) == ("cancelled", "refunded")
    refunds = admin.get(f"/orders/{order_id}/refunds").json()
    assert [refund["amount"] for refund in refunds] == [500, 1500]


def test_a_refund_reported_failed_after_success_is_refundable_again(
    local_pipeline: Any,
    customer: httpx.Client,
    admin: httpx.Client,
    api: httpx.Client,
    database: Database,
    make_product: Callable[..., Product],
) -> None:
    order_id = _confirmed_order(customer, make_product(price=3000, stock=5))
    refund_id = _refund(admin, order_id, 1000).json()["id"]
    _settled(admin, order_id)
    with database.unit_of_work() as session:
        repository = OrderRepository(session)
        refund = repository.refund(refund_id)
        charge = repository.charge_of(order_id)
    assert refund is not None
    assert refund.provider_id
    assert charge is not None
    failed = {
        "id": refund.provider_id,
        "object": "refund",
        "amount": 1000,
        "currency": "usd",
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
        "payment_intent": charge.provider_id,
        "metadata": {"order_id": order_id, "refund_id": refund_id},
    }
    payload, signature = signed_event("refund.failed", failed, STRIPE_WEBHOOK_SECRET)
    answer = api.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    assert answer.json()["outcome"] == "applied"
    order = admin.get(f"/orders/{order_id}").json()
    assert (order["payment_status"], order["refundable_amount"]) == ("paid", 3000)
    statuses = [r["status"] for r in admin.get(f"/orders/{order_id}/refunds").json()]
    assert statuses == ["failed"]


def test_only_admins_refund_and_only_the_owner_sees_refunds(
    local_pipeline: Any,
    customer: httpx.Client,
    admin: httpx.Client,
    login_as: Callable[..., httpx.Client],
    make_user: Callable[..., Any],
    make_product: Callable[..., Product],
) -> None:
    order_id = _confirmed_order(customer, make_product(price=1000, stock=5))
    assert _refund(customer, order_id, 100).status_code == 403
    assert customer.get(f"/orders/{order_id}/refunds").status_code == 200
    stranger = login_as(make_user())
    assert stranger.get(f"/orders/{order_id}/refunds").status_code == 404


def _events(client: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/orders/{order_id}/events", params={"limit": 100}).json()["items"])


def test_a_refund_tells_integrators_the_order_changed(
    local_pipeline: Any,
    customer: httpx.Client,
    admin: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    """``order.updated`` when the refund is asked for (what is refundable shrinks) and when it
    succeeds (refunded amount and payment status), each showing the order as GET did then."""
    order_id = _confirmed_order(customer, make_product(price=2500, stock=5), 2)
    assert _refund(admin, order_id, 1000).status_code == 201
    order = _settled(admin, order_id)

    def updates() -> list[dict[str, Any]]:
        feed = admin.get("/events", params={"types": "order.updated", "limit": 100}).json()
        return [e for e in feed["items"] if e["subject"]["id"] == order_id]

    wait_until(lambda: len(updates()) == 2, 10)
    asked, succeeded = updates()
    assert asked["sequence"] < succeeded["sequence"]
    assert (asked["data"]["refundable_amount"], asked["data"]["payment_status"]) == (4000, "paid")
    assert succeeded["data"] == order
    assert (order["payment_status"], order["refunded_amount"]) == ("partially_refunded", 1000)
    timeline = [e for e in _events(admin, order_id) if e["type"] == "order_updated"]
    assert [e["id"] for e in timeline] == [asked["id"], succeeded["id"]]
    assert timeline[0]["data"]["changed"] == ["refundable_amount"]
    assert timeline[1]["data"]["changed"] == [
        "payment_status",
        "refundable_amount",
        "refunded_amount",
    ]
