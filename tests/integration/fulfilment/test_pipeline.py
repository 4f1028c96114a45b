"""The fulfilment pipeline with real worker processes, on the local providers and on the real
Stripe/SendGrid adapters talking to their wire-level stubs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from orderflow.catalogue.service import update_product
from orderflow.db import Database
from orderflow.email import email_sender_from_settings
from orderflow.email.local import LocalEmailSender
from orderflow.fulfilment import charging, invoicing, notifications, refunds, stock
from orderflow.idempotency import email_message_key
from orderflow.models import (
    EmailRecord,
    Invoice,
    OrderEvent,
    Payment,
    Product,
    Refund,
    StockReservation,
)
from orderflow.orders.repository import OrderRepository
from orderflow.payments import IntentStatus, payment_provider_from_settings
from orderflow.payments.local import LocalPaymentProvider
from orderflow.settings import Settings
from orderflow.steps import EmailKind
from tests.conftest import order_body, system_env, wait_for_status
from tests.stubs import STRIPE_WEBHOOK_SECRET, stub_provider_env
from tests.stubs.sendgrid_server import SendGridStub
from tests.stubs.stripe_server import StripeStub, fake_payment_intent, signed_event
from tests.system import wait_until

pytestmark = pytest.mark.workers

AT_REST = {"confirmed", "failed", "cancelled"}


@dataclass
class Edge:
    """What reached the outside world, counted where it arrived."""

    kind: str
    settings: Settings
    database: Database
    stripe: StripeStub | None = None
    sendgrid: SendGridStub | None = None

    def charges(self, order_id: str) -> int:
        if self.stripe is not None:
            return len(self.stripe.succeeded_charges(order_id))
        return _count(self.database, Payment, order_id, kind="charge", status="succeeded")

    def refunds(self, order_id: str) -> int:
        if self.stripe is not None:
            return len(self.stripe.refunds(order_id=order_id))
        return _count(self.database, Refund, order_id, status="succeeded")

    def emails(self, order_id: str, kind: str) -> int:
        key = email_message_key(order_id, kind)
        if self.sendgrid is not None:
            return len(self.sendgrid.messages(key))
        sender = LocalEmailSender(self.settings.emails_dir, self.settings.email_from)
        return int(sender.read(key) is not None)

    def provider_settings(self) -> Settings:
        """Settings equal to the workers', for running steps by hand in this process."""
        env = system_env(self.settings)
        if self.stripe is not None and self.sendgrid is not None:
            env.update(stub_provider_env(self.stripe, self.sendgrid))
        return Settings(**{k.removeprefix("ORDERFLOW_").lower(): v for k, v in env.items()})


def _count(database: Database, model: Any, order_id: str, **where: Any) -> int:
    with database.unit_of_work() as session:
        query = select(func.count()).select_from(model).where(model.order_id == order_id)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        result = session.scalar(query) or 0
        session.commit()
        return result


@pytest.fixture(params=["local", "stubs"])
def edge(request: pytest.FixtureRequest, settings: Settings, database: Database) -> Edge:
    if request.param == "local":
        request.getfixturevalue("local_pipeline")
        return Edge("local", settings, database)
    request.getfixturevalue("stub_pipeline")
    return Edge(
        "stubs",
        settings,
        database,
        stripe=request.getfixturevalue("stripe_stub_shared"),
        sendgrid=request.getfixturevalue("sendgrid_stub_shared"),
    )


def _place(client: httpx.Client, product: Product, qty: int = 1, pm: str = "pm_card_visa") -> str:
    answer = client.post("/orders", json=order_body((product.id, qty), payment_method=pm))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _stock(database: Database, product_id: str) -> int:
    with database.unit_of_work() as session:
        result = int(session.get(Product, product_id).stock)  # type: ignore[union-attr]
        session.commit()
        return result


def _events(client: httpx.Client, order_id: str) -> list[str]:
    page = client.get(f"/orders/{order_id}/events", params={"limit": 100}).json()
    return [event["type"] for event in page["items"]]


def _wait_email(edge: Edge, order_id: str, kind: str) -> None:
    wait_until(lambda: _count(edge.database, EmailRecord, order_id, kind=kind, status="sent"), 30)


def test_happy_path_confirms_with_invoice_and_one_email(
    edge: Edge, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product(price=5025, stock=5)
    order_id = _place(customer, product, 2)
    order = wait_for_status(customer, order_id, AT_REST)
    assert (order["status"], order["payment_status"]) == ("confirmed", "paid")
    assert order["payment_intent_id"]
    _wait_email(edge, order_id, "confirmation")
    order = customer.get(f"/orders/{order_id}").json()
    assert order["invoice_number"].startswith("INV-")
    invoice = customer.get(f"/orders/{order_id}/invoice")
    assert invoice.headers["content-type"] == "application/pdf"
    assert invoice.content.startswith(b"%PDF")
    assert _stock(edge.database, product.id) == 3
    assert edge.charges(order_id) == 1
    assert edge.emails(order_id, "confirmation") == 1
    assert _events(customer, order_id) == [
        "order_placed",
        "stock_reserved",
        "payment_succeeded",
        "status_changed",
        "invoice_generated",
        "email_sent",
    ]


@pytest.mark.parametrize(
    "method", ["pm_card_chargeDeclined", "pm_card_chargeDeclinedInsufficientFunds"]
)
def test_decline_fails_the_order_and_gives_stock_back(
    edge: Edge, customer: httpx.Client, make_product: Callable[..., Product], method: str
) -> None:
    product = make_product(stock=4)
    order_id = _place(customer, product, 3, method)
    order = wait_for_status(customer, order_id, AT_REST)
    assert (order["status"], order["payment_status"]) == ("failed", "failed")
    assert order["failure_reason"] == "payment_declined"
    assert _stock(edge.database, product.id) == 4
    assert edge.charges(order_id) == 0
    _wait_email(edge, order_id, "failed")
    assert edge.emails(order_id, "failed") == 1
    assert customer.get(f"/orders/{order_id}/invoice").status_code == 404


@contextmanager
def _sold_elsewhere_meanwhile(database: Database, product_id: str, left: int) -> Iterator[None]:
    """The product's row is held (``FOR NO KEY UPDATE``: the intake's reads and foreign-key
    checks pass, the reservation's ``UPDATE`` waits) while the block places an order; then an
    admin's change leaves ``left`` in stock. The reservation sees the change, however quick
    the workers are."""
    with database.unit_of_work() as session:
        session.execute(
            select(Product.id).where(Product.id == product_id).with_for_update(key_share=True)
        )
        yield
        update_product(session, product_id, {"stock": left})
        session.commit()


def test_short_stock_fails_the_order(
    edge: Edge, customer: httpx.Client, admin: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product(stock=2)
    with _sold_elsewhere_meanwhile(edge.database, product.id, 1):
        order_id = _place(customer, product, 2)
    order = wait_for_status(customer, order_id, AT_REST)
    assert (order["status"], order["failure_reason"]) == ("failed", "insufficient_stock")
    assert _stock(edge.database, product.id) == 1
    assert edge.charges(order_id) == 0


def test_a_short_later_line_gives_back_the_lines_taken_before_it(
    edge: Edge, customer: httpx.Client, admin: httpx.Client, make_product: Callable[..., Product]
) -> None:
    first, second = sorted((make_product(stock=5), make_product(stock=5)), key=lambda p: p.id)
    with _sold_elsewhere_meanwhile(edge.database, second.id, 1):
        answer = customer.post("/orders", json=order_body((first.id, 2), (second.id, 2)))
        assert answer.status_code == 201, answer.text
    order = wait_for_status(customer, answer.json()["id"], AT_REST)
    assert (order["status"], order["failure_reason"]) == ("failed", "insufficient_stock")
    # The first line was taken before the second came up short: it went back, exactly.
    assert (_stock(edge.database, first.id), _stock(edge.database, second.id)) == (5, 1)
    assert edge.charges(order["id"]) == 0


def _post_webhook(api: httpx.Client, payload: bytes, signature: str) -> httpx.Response:
    return api.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


def _succeeded_event(
    edge: Edge, order: dict[str, Any], event_id: str | None = None
) -> tuple[bytes, str]:
    intent_id = order["payment_intent_id"]
    if edge.stripe is not None:
        if edge.stripe.payment_intent(intent_id)["status"] == "requires_action":
            edge.stripe.complete_action(intent_id)
        return edge.stripe.intent_event(
            "payment_intent.succeeded", intent_id, STRIPE_WEBHOOK_SECRET, event_id=event_id
        )
    local = LocalPaymentProvider(store_dir=edge.settings.state_dir / "payments")
    if local.retrieve(intent_id).status is IntentStatus.REQUIRES_ACTION:
        local.complete_action(intent_id)  # the customer finished 3-D Secure
    intent = fake_payment_intent(intent_id, amount=order["total"], order_id=order["id"])
    return signed_event(
        "payment_intent.succeeded", intent, STRIPE_WEBHOOK_SECRET, event_id=event_id
    )


def _wait_for_action(customer: httpx.Client, order_id: str) -> dict[str, Any]:
    def waiting() -> bool:
        return "payment_requires_action" in _events(customer, order_id)

    wait_until(waiting, 30)
    return customer.get(f"/orders/{order_id}").json()


def test_requires_action_waits_for_the_webhook(
    edge: Edge,
    customer: httpx.Client,
    api: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    product = make_product(stock=3)
    order_id = _place(customer, product, 1, "pm_card_authenticationRequired")
    order = _wait_for_action(customer, order_id)
    assert (order["status"], order["payment_status"]) == ("pending", "processing")
    assert _stock(edge.database, product.id) == 2

    payload, signature = _succeeded_event(edge, order, "evt_action_done")
    for _ in range(3):  # duplicates are acknowledged and ignored
        assert _post_webhook(api, payload, signature).status_code == 200
    order = wait_for_status(customer, order_id, AT_REST)
    assert order["status"] == "confirmed"
    assert _events(customer, order_id).count("payment_succeeded") == 1
    _wait_email(edge, order_id, "confirmation")


def test_duplicate_and_reordered_webhooks_apply_once(
    edge: Edge,
    customer: httpx.Client,
    api: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    product = make_product(stock=3)
    order_id = _place(customer, product, 1, "pm_card_authenticationRequired")
    order = _wait_for_action(customer, order_id)
    succeeded = _succeeded_event(edge, order, "evt_ok")
    failed_intent = fake_payment_intent(
        order["payment_intent_id"],
        amount=order["total"],
        status="requires_payment_method",
        order_id=order_id,
    )
    late_failure = signed_event(
        "payment_intent.payment_failed", failed_intent, STRIPE_WEBHOOK_SECRET, event_id="evt_late"
    )
    for payload, signature in (succeeded, succeeded, late_failure, succeeded, late_failure):
        assert _post_webhook(api, payload, signature).status_code == 200
    order = wait_for_status(customer, order_id, AT_REST)
    assert order["status"] == "confirmed"
    events = _events(customer, order_id)
    assert events.count("payment_succeeded") == 1
    assert "payment_failed" not in events


def test_thirty_buyers_for_ten_units(
    edge: Edge,
    make_user: Callable[..., Any],
    login_as: Callable[..., httpx.Client],
    make_product: Callable[..., Product],
) -> None:
    """Exactly ten confirmed, never oversold. The other twenty either fail at reservation or,
    when the workers were quicker than their request, are refused at intake (409): which of
    the two depends on timing, not on correctness."""
    product = make_product(stock=10)
    buyers = [login_as(make_user()) for _ in range(30)]

    def place(client: httpx.Client) -> str | None:
        answer = client.post("/orders", json=order_body((product.id, 1)))
        if answer.status_code == 409:
            assert answer.json()["type"].endswith("/insufficient-stock"), answer.text
            return None
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    with ThreadPoolExecutor(30) as pool:
        placed = list(pool.map(place, buyers))
    accepted = [(c, o) for c, o in zip(buyers, placed, strict=True) if o is not None]
    finals = [wait_for_status(c, o, AT_REST, timeout=60) for c, o in accepted]
    statuses = sorted(order["status"] for order in finals)
    assert statuses.count("confirmed") == 10
    assert statuses.count("failed") == len(accepted) - 10
    assert {o["failure_reason"] for o in finals if o["status"] == "failed"} <= {
        "insufficient_stock"
    }
    assert _stock(edge.database, product.id) == 0
    assert sum(edge.charges(o) for _, o in accepted) == 10


def test_cancel_after_confirm_refunds_once_and_restores_stock(
    edge: Edge, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product(stock=5, price=1999)
    order_id = _place(customer, product, 2)
    assert wait_for_status(customer, order_id, AT_REST)["status"] == "confirmed"
    for _ in range(3):
        assert customer.delete(f"/orders/{order_id}").status_code == 204
    assert _stock(edge.database, product.id) == 5

    def refunded() -> bool:
        return customer.get(f"/orders/{order_id}").json()["payment_status"] == "refunded"

    wait_until(refunded, 30)
    _wait_email(edge, order_id, "cancelled")
    assert edge.refunds(order_id) == 1
    if edge.stripe is not None:
        assert edge.stripe.captured_amount(order_id) == 0
        assert edge.stripe.count("POST", "/v1/refunds", replayed=False) == 1
    events = _events(customer, order_id)
    assert events.count("payment_refunded") == 1
    assert events.count("stock_released") == 1


def _snapshot(edge: Edge, order_id: str, product_id: str) -> dict[str, int]:
    db = edge.database
    return {
        "events": _count(db, OrderEvent, order_id),
        "payments": _count(db, Payment, order_id),
        "invoices": _count(db, Invoice, order_id),
        "emails": _count(db, EmailRecord, order_id),
        "reservations": _count(db, StockReservation, order_id),
        "stock": _stock(db, product_id),
        "charges": edge.charges(order_id),
        "refunds": edge.refunds(order_id),
        "confirmation": edge.emails(order_id, "confirmation"),
    }


def test_every_step_run_twice_by_hand_has_no_second_effect(
    edge: Edge, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product(stock=5)
    confirmed = _place(customer, product, 1)
    cancelled = _place(customer, product, 1)
    for order_id in (confirmed, cancelled):
        wait_for_status(customer, order_id, {"confirmed"})
        _wait_email(edge, order_id, "confirmation")
    customer.delete(f"/orders/{cancelled}")
    wait_until(
        lambda: customer.get(f"/orders/{cancelled}").json()["payment_status"] == "refunded", 30
    )
    _wait_email(edge, cancelled, "cancelled")
    with edge.database.unit_of_work() as session:
        (refund_id,) = [r.id for r in OrderRepository(session).refunds_of(cancelled)]
    _wait_email(edge, cancelled, f"refunded:{refund_id}")  # sent after the refund, on its own
    before = {o: _snapshot(edge, o, product.id) for o in (confirmed, cancelled)}

    settings = edge.provider_settings()
    provider = payment_provider_from_settings(settings)
    sender = email_sender_from_settings(settings)
    db = edge.database
    for _ in range(2):
        for order_id in (confirmed, cancelled):
            with db.unit_of_work() as session:
                stock.reserve_stock(session, order_id)
                session.commit()
            charging.charge_payment(db, provider, order_id)
            with db.unit_of_work() as session:
                invoicing.generate_invoice(session, order_id)
                session.commit()
            for kind in EmailKind:
                if kind not in notifications.PER_OCCURRENCE:
                    notifications.send_email(db, sender, order_id, kind)
            with db.unit_of_work() as session:
                refund_ids = [r.id for r in OrderRepository(session).refunds_of(order_id)]
            for refund_id in refund_ids:  # a refunded e-mail is one per refund
                notifications.send_email(db, sender, order_id, EmailKind.REFUNDED, refund_id)
            refunds.refund_payment(db, provider, order_id)
    assert {o: _snapshot(edge, o, product.id) for o in (confirmed, cancelled)} == before
