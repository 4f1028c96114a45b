"""Payments are matched, never assumed: a signed report about a payment changes an order only
when it is about the order's own intent and, for a success, carries the amount and currency
the order was charged (``orderflow.fulfilment.charging``'s rule). Each attack of issue 13 is
played against the real API and workers, on the local provider and on the Stripe adapter
against its stand-in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.fulfilment import charging, stock
from orderflow.models import Order, OutboxMessage, Payment, Product, User
from orderflow.orders import service as orders
from orderflow.payments import LocalPaymentProvider
from orderflow.settings import Settings
from orderflow.steps import Step
from tests.conftest import order_body, place_command, wait_for_status
from tests.stubs import STRIPE_WEBHOOK_SECRET
from tests.stubs.stripe_server import StripeStub, fake_payment_intent, signed_event
from tests.system import wait_until

AT_REST = {"confirmed", "failed", "cancelled"}


def _post(api: httpx.Client, event_type: str, data_object: dict[str, Any]) -> dict[str, Any]:
    payload, signature = signed_event(event_type, data_object, STRIPE_WEBHOOK_SECRET)
    answer = api.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _timeline(client: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    return list(client.get(f"/orders/{order_id}/events", params={"limit": 100}).json()["items"])


def _types(client: httpx.Client, order_id: str) -> list[str]:
    return [event["type"] for event in _timeline(client, order_id)]


def _anomalies(client: httpx.Client, order_id: str) -> list[str]:
    return [
        event["data"]["reason"]
        for event in _timeline(client, order_id)
        if event["type"] == "payment_anomaly"
    ]


def _place(client: httpx.Client, product: Product, pm: str = "pm_card_visa") -> str:
    answer = client.post("/orders", json=order_body((product.id, 1), payment_method=pm))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _awaiting_action(client: httpx.Client, product: Product) -> dict[str, Any]:
    """An order whose charge is recorded and waits for the customer's 3-D Secure."""
    order_id = _place(client, product, "pm_card_authenticationRequired")
    wait_until(lambda: "payment_requires_action" in _types(client, order_id), 30)
    order = dict(client.get(f"/orders/{order_id}").json())
    assert order["payment_intent_id"]
    return order


def _succeeded(intent_id: str, amount: int, currency: str, order_id: str) -> dict[str, Any]:
    return fake_payment_intent(intent_id, amount=amount, currency=currency, order_id=order_id)


@pytest.fixture(params=["local", "stubs"])
def stripe(request: pytest.FixtureRequest) -> StripeStub | None:
    """The pipeline on the local provider (None) or on the Stripe adapter and its stand-in."""
    if request.param == "local":
        request.getfixturevalue("local_pipeline")
        return None
    request.getfixturevalue("stub_pipeline")
    stub: StripeStub = request.getfixturevalue("stripe_stub_shared")
    return stub


def _complete_action(stripe: StripeStub | None, state_dir: Path, intent_id: str) -> None:
    """The customer finishes 3-D Secure at the provider."""
    if stripe is not None:
        stripe.complete_action(intent_id)
    else:
        LocalPaymentProvider(store_dir=state_dir / "payments").complete_action(intent_id)


FORGERIES: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], str]]] = {
    # the order under attack -> (the intent signed for it, the anomaly recorded)
    "wrong amount": lambda o: (
        _succeeded(o["payment_intent_id"], 1, "usd", o["id"]),
        "payment_amount_mismatch",
    ),
    "wrong currency": lambda o: (
        _succeeded(o["payment_intent_id"], o["total"], "eur", o["id"]),
        "payment_amount_mismatch",
    ),
    "foreign intent naming the order": lambda o: (
        _succeeded("pi_3ForeignIntentNotOurs000", 1, "usd", o["id"]),
        "foreign_intent",
    ),
    "foreign intent for the full amount": lambda o: (
        _succeeded("pi_3ForeignIntentNotOurs001", o["total"], "usd", o["id"]),
        "foreign_intent",
    ),
}


@pytest.mark.workers
@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_success_changes_nothing_and_the_real_payment_still_lands(
    stripe: StripeStub | None,
    customer: httpx.Client,
    api: httpx.Client,
    make_product: Callable[..., Product],
    settings: Settings,
    forgery: str,
) -> None:
    order = _awaiting_action(customer, make_product(price=1234, stock=5))
    intent, reason = FORGERIES[forgery](order)

    assert _post(api, "payment_intent.succeeded", intent)["outcome"] == "anomaly"
    wait_until(lambda: reason in _anomalies(customer, order["id"]), 10)
    now = customer.get(f"/orders/{order['id']}").json()
    assert (now["status"], now["payment_status"]) == ("pending", "processing")
    assert "payment_succeeded" not in _types(customer, order["id"])

    # The customer really pays: the genuine report still confirms the order, once, in full.
    _complete_action(stripe, settings.state_dir, order["payment_intent_id"])
    genuine = _succeeded(order["payment_intent_id"], order["total"], "usd", order["id"])
    assert _post(api, "payment_intent.succeeded", genuine)["outcome"] == "applied"
    assert wait_for_status(customer, order["id"], AT_REST)["status"] == "confirmed"
    if stripe is not None:
        assert stripe.captured_amount(order["id"]) == 1234


@pytest.mark.workers
def test_the_intent_of_another_order_pays_neither(
    stripe: StripeStub | None,
    customer: httpx.Client,
    api: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    victim = _awaiting_action(customer, make_product(price=9900, stock=5))
    cheap = _awaiting_action(customer, make_product(price=100, stock=5))
    # The cheap order's own intent, its amount, and metadata naming the victim.
    intent = _succeeded(cheap["payment_intent_id"], cheap["total"], "usd", victim["id"])
    assert _post(api, "payment_intent.succeeded", intent)["outcome"] == "anomaly"
    for order in (victim, cheap):
        now = customer.get(f"/orders/{order['id']}").json()
        assert (now["status"], now["payment_status"]) == ("pending", "processing")
        assert "payment_succeeded" not in _types(customer, order["id"])
    assert _anomalies(customer, cheap["id"]) == ["foreign_intent"]


@pytest.mark.workers
def test_a_forged_refund_of_a_foreign_intent_changes_nothing(
    stripe: StripeStub | None,
    customer: httpx.Client,
    api: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    order_id = _place(customer, make_product(price=2000, stock=5))
    assert wait_for_status(customer, order_id, AT_REST)["status"] == "confirmed"
    charge = {
        "id": "ch_3Foreign",
        "object": "charge",
        "payment_intent": "pi_3ForeignIntentNotOurs002",
        "amount_refunded": 2000,
        "currency": "usd",
        "metadata": {"order_id": order_id},
        "refunds": {"data": [{"id": "re_3Foreign", "amount": 2000, "currency": "usd"}]},
    }
    assert _post(api, "charge.refunded", charge)["outcome"] == "anomaly"
    assert customer.get(f"/orders/{order_id}").json()["payment_status"] == "paid"
    assert _anomalies(customer, order_id) == ["foreign_intent"]


@pytest.fixture
def capturing_one_cent(stripe_stub_shared: StripeStub) -> Iterator[StripeStub]:
    stripe_stub_shared.capture_amount(1)
    yield stripe_stub_shared
    stripe_stub_shared.capture_amount(None)


@pytest.mark.workers
def test_a_wrong_capture_by_the_provider_is_refunded_and_fails_the_order(
    stub_pipeline: Any,
    capturing_one_cent: StripeStub,
    customer: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    order_id = _place(customer, make_product(price=1234, stock=5))
    order = wait_for_status(customer, order_id, AT_REST)
    assert (order["status"], order["failure_reason"]) == ("failed", "payment_amount_mismatch")
    wait_until(lambda: capturing_one_cent.captured_amount(order_id) == 0, 30)  # given back
    wait_until(
        lambda: customer.get(f"/orders/{order_id}").json()["payment_status"] == "refunded", 30
    )
    assert _anomalies(customer, order_id) == ["payment_amount_mismatch"]
    assert "payment_succeeded" not in _types(customer, order_id)
    with database.unit_of_work() as session:
        assert audit(session) == []
        session.commit()


@pytest.mark.workers
def test_a_wrong_amount_claim_has_the_provider_asked_by_id(
    stub_pipeline: Any,
    stripe_stub_shared: StripeStub,
    customer: httpx.Client,
    api: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    """The customer really paid, but the only report that arrives is garbled: the charge step
    asks Stripe for the recorded intent and confirms from its answer."""
    order = _awaiting_action(customer, make_product(price=1234, stock=5))
    intent_id = order["payment_intent_id"]
    stripe_stub_shared.complete_action(intent_id)
    garbled = _succeeded(intent_id, 1, "usd", order["id"])
    assert _post(api, "payment_intent.succeeded", garbled)["outcome"] == "anomaly"
    assert wait_for_status(customer, order["id"], AT_REST)["status"] == "confirmed"
    assert stripe_stub_shared.count("GET", f"/v1/payment_intents/{intent_id}") >= 1
    assert stripe_stub_shared.captured_amount(order["id"]) == 1234


def test_a_report_while_the_charge_is_in_flight_waits_for_our_own_key(
    api: httpx.Client,
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    tmp_path: Path,
) -> None:
    """No intent recorded yet (the worker is between its call and its record): a report
    naming the order is not applied; the charge step replays our key and records what the
    provider answers to it, never the reported intent."""
    db, owner = clean_database, make_user()
    product = make_product(price=9900, stock=3)
    with db.unit_of_work() as session:
        order_id = orders.place_order(session, place_command(owner.id, (product.id, 1))).id
        session.commit()
    with db.unit_of_work() as session:
        stock.reserve_stock(session, order_id)
        session.commit()
    with db.unit_of_work() as session:
        assert charging.begin_charge(session, order_id) is not None
        session.commit()

    foreign = _succeeded("pi_3ForeignIntentNotOurs003", 1, "usd", order_id)
    assert _post(api, "payment_intent.succeeded", foreign)["outcome"] == "verifying"
    with db.unit_of_work() as session:
        order = session.get(Order, order_id)
        assert order is not None
        assert order.status == "pending"
        scheduled = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.topic == Step.CHARGE_PAYMENT.value)
        )
        assert scheduled
        session.commit()

    provider = LocalPaymentProvider(store_dir=tmp_path / "payments")
    charging.charge_payment(db, provider, order_id)  # what the scheduled step does
    with db.unit_of_work() as session:
        order = session.get(Order, order_id)
        assert order is not None
        assert (order.status, order.payment_status) == ("confirmed", "paid")
        assert order.payment_intent_id != "pi_3ForeignIntentNotOurs003"
        charge = session.scalar(select(Payment).where(Payment.order_id == order_id))
        assert charge is not None
        assert (charge.amount, charge.currency) == (9900, "usd")
        session.commit()


def test_audit_finds_a_paid_order_captured_in_another_currency(
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    tmp_path: Path,
) -> None:
    db, owner = clean_database, make_user()
    with db.unit_of_work() as session:
        product = make_product(price=500, stock=3)
        order_id = orders.place_order(session, place_command(owner.id, (product.id, 1))).id
        session.commit()
    with db.unit_of_work() as session:
        stock.reserve_stock(session, order_id)
        session.commit()
    charging.charge_payment(db, LocalPaymentProvider(store_dir=tmp_path), order_id)
    with db.unit_of_work() as session:
        before = {(v.check, v.subject) for v in audit(session)}
        session.execute(update(Payment).where(Payment.order_id == order_id).values(currency="eur"))
        session.commit()
    with db.unit_of_work() as session:
        broken = {(v.check, v.subject) for v in audit(session)}
        session.commit()
    for check in ("captured_money_adds_up", "paid_order_has_one_capture"):
        assert (check, order_id) not in before
        assert (check, order_id) in broken
