"""The order state machine and the fulfilment services as a hypothesis state machine, against
the real PostgreSQL test database.

Each example places orders and then drives every step by hand, in any order and as often as
it likes: reserve, charge (succeeding, declined, needing 3-D Secure), a worker that dies
between the provider's answer and recording it (and records late), the customer finishing
or failing 3-D Secure, webhooks (delivered late, twice, out of order, racing the worker),
fail, cancel (owner, admin, a stranger), status changes (allowed or not), invoice, e-mails,
refunds (partial, by an admin, above what is left or not), changes of an order (lines
lowered, removed or raised, the address), credit notes. Nothing runs on its own: no workers,
and the outbox is ignored.

After every step the promises that hold at every instant are checked; at the end of every
example everything owed is delivered (outstanding webhooks, then the sweeper's list of stalled
work, run in-process) and the promises that hold only at rest are checked too.

Which audit checks hold at every instant, and which only once the pipeline has caught up:

* instantaneous: ``stock_non_negative``, ``stock_conserved`` and ``stock_matches_ledger``
  (the ledger is written by triggers in the same transaction), ``reservation_matches_lines``
  and ``reservation_all_or_none`` (a reservation takes every line or none, at once),
  ``one_effect_per_kind``, ``paid_order_has_one_capture`` and
  ``captured_money_adds_up`` (a capture confirms the order in the same transaction),
  ``refund_within_capture``, ``order_total_is_sum_of_lines``,
  ``confirmed_order_holds_its_stock`` and ``ended_order_released_its_stock`` (stock moves
  with the status), ``invoice_numbers_gapless`` (a number is taken in the invoice's
  transaction), ``only_allowed_transitions``;
* eventual: ``one_invoice_per_paid_order`` (a confirmed order waits for its invoice step;
  its other half, only a paid order has an invoice, holds at every instant and is checked
  here on its own),
  ``confirmation_email_sent`` and ``status_email_sent`` (e-mails are their own step),
  ``ended_order_refunded`` (the refund is its own step).

Checked here besides the audit, after every step: stock conserved per product (initial =
in stock + held by unreleased reservations); at most one charge, refund and invoice row per
order; the database never claims money the provider does not have (a recorded capture or
refund exists at the provider, for the same amount); at the provider, at most one captured
intent per order and never more refunded than captured; an e-mail only for a status the
order has been in; every order's event log only grows (append-only); money in step after
payment: succeeded refunds recorded never exceed what the provider gave back, which never
exceeds the refunds asked for (succeeded + pending), per order; a changed order's lines,
reservations and total agree.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from orderflow.audit import CHECK_NAMES, audit
from orderflow.carts import service as carts
from orderflow.db import Database
from orderflow.email import LocalEmailSender
from orderflow.errors import (
    CartCompleted,
    Forbidden,
    InsufficientStock,
    NotFound,
    RefundExceedsRefundable,
    TransitionNotAllowed,
    Unprocessable,
)
from orderflow.fulfilment import moves, returning
from orderflow.fulfilment.changes import OrderChange, OrderNotChangeable, change_order
from orderflow.fulfilment.charging import begin_charge, charge_payment, record_charge_result
from orderflow.fulfilment.crediting import issue_credit_note
from orderflow.fulfilment.invoicing import generate_invoice
from orderflow.fulfilment.moves import fail_order
from orderflow.fulfilment.notifications import EMAIL_STATUSES, PER_OCCURRENCE, send_email
from orderflow.fulfilment.refund_requests import request_refund
from orderflow.fulfilment.refunds import refund_payment
from orderflow.fulfilment.stock import reserve_stock
from orderflow.fulfilment.sweeper import find_stalled_work
from orderflow.fulfilment.webhooks import ProviderEvent, handle_payment_event
from orderflow.models import (
    Base,
    Cart,
    EmailRecord,
    Invoice,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Product,
    Refund,
    StockReservation,
    User,
)
from orderflow.money import Money
from orderflow.orders import service as orders
from orderflow.orders.repository import OrderRepository
from orderflow.orders.state import is_allowed
from orderflow.payments import IntentStatus, LocalPaymentProvider, PaymentResult, RefundResult
from orderflow.returns.models import Return, ReturnLine
from orderflow.returns.state import units_held
from orderflow.statuses import (
    CartStatus,
    OrderStatus,
    PaymentRecordStatus,
    RefundStatus,
    ReturnStatus,
)
from orderflow.steps import EmailKind, Step
from tests.conftest import place_command

INSTANTANEOUS = frozenset(
    {
        "stock_non_negative",
        "stock_conserved",
        "stock_matches_ledger",
        "reservation_matches_lines",
        "reservation_all_or_none",
        "one_effect_per_kind",
        "paid_order_has_one_capture",
        "captured_money_adds_up",
        "refund_within_capture",
        "refund_counters_match_refunds",
        "captured_amount_is_the_charge",
        "order_total_is_sum_of_lines",
        "confirmed_order_holds_its_stock",
        "ended_order_released_its_stock",
        "invoice_numbers_gapless",
        "only_allowed_transitions",
        "fact_has_event",
        "event_sequence_gapless",
        "subscribed_event_has_delivery",
        "delivery_succeeded_once",
        "shipped_within_ordered",
        "shipment_lines_of_their_order",
        "one_label_per_shipment",
        "shipment_moves_forward",
        "shipment_updates_applied_in_date_order",
        "shipping_status_matches_shipments",
        "refunds_within_charge",
        "credit_note_numbers_gapless",
        "credit_note_matches_refund",
        "returned_within_shipped",
        "return_lines_of_their_order",
        "restock_once",
        "return_refund_matches",
        "return_moves_allowed",
    }
)
EVENTUAL = frozenset(
    {
        "one_invoice_per_paid_order",
        "confirmation_email_sent",
        "status_email_sent",
        "ended_order_refunded",
        # A succeeded refund of an invoiced order waits for its credit note step.
        "credit_note_for_every_refund_after_invoice",
    }
)

#: Visa twice: more orders get far enough to be shipped, delivered, cancelled when paid.
PAYMENT_METHODS = [
    "pm_card_visa",
    "pm_card_visa",
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclinedInsufficientFunds",
    "pm_card_authenticationRequired",
]
#: Order-side tables emptied before every example; the users made once per test stay.
_KEEP = {"users", "auth_sessions", "refresh_tokens"}
_EXAMPLE_TABLES = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name not in _KEEP)
#: Events that record an effect, each at most once per order (e-mails once per kind).
ONCE_PER_ORDER = [
    "order_placed",
    "stock_reserved",
    "stock_released",
    "payment_succeeded",
    "payment_refunded",
    "invoice_generated",
    "email_sent",
]
#: An order as a customer sends it: who, {product index: quantity}, how they pay.
ORDERS = st.tuples(
    st.sampled_from(["alice", "bob"]),
    st.dictionaries(st.integers(0, 2), st.integers(1, 3), min_size=1, max_size=3),
    st.sampled_from(PAYMENT_METHODS),
)


def test_every_audit_check_is_classified() -> None:
    """A new audit check must be placed in one list or the other (it is checked then)."""
    assert set(CHECK_NAMES) == INSTANTANEOUS | EVENTUAL
    assert not INSTANTANEOUS & EVENTUAL


# --- the provider, with the webhooks it would send -------------------------------------------


class WebhookingProvider:
    """The local provider, plus the events Stripe would post about each change it makes: a
    new intent's outcome, a finished or failed 3-D Secure, a refund. Replays of an idempotent
    call change nothing and post nothing."""

    def __init__(self) -> None:
        self.local = LocalPaymentProvider()
        self.events: list[ProviderEvent] = []
        self._seen: dict[str, IntentStatus] = {}
        self._ids = itertools.count(1)

    def charge(
        self, *, order_id: str, amount: Money, payment_method: str, idempotency_key: str
    ) -> PaymentResult:
        result = self.local.charge(
            order_id=order_id,
            amount=amount,
            payment_method=payment_method,
            idempotency_key=idempotency_key,
        )
        self._observe(self.local.retrieve(result.intent_id))
        return result

    def refund(
        self,
        *,
        order_id: str,
        payment_intent_id: str,
        amount: Money,
        idempotency_key: str,
        refund_id: str | None = None,
    ) -> RefundResult:
        known = {r.refund_id for r in self.local.refunds(payment_intent_id)}
        result = self.local.refund(
            order_id=order_id,
            payment_intent_id=payment_intent_id,
            amount=amount,
            idempotency_key=idempotency_key,
            refund_id=refund_id,
        )
        if result.refund_id not in known:
            self._post(
                "charge.refunded",
                {
                    "object": "charge",
                    "payment_intent": payment_intent_id,
                    "amount_refunded": result.amount.amount,
                    "currency": result.amount.currency,
                    "metadata": {"order_id": order_id},
                    "refunds": {
                        "data": [
                            {
                                "id": result.refund_id,
                                "amount": result.amount.amount,
                                "currency": result.amount.currency,
                                "status": result.status,
                                "metadata": {"order_id": order_id, "refund_id": refund_id},
                            }
                        ]
                    },
                },
            )
        return result

    def retrieve(self, payment_intent_id: str) -> PaymentResult:
        return self.local.retrieve(payment_intent_id)

    def complete_action(self, intent_id: str, *, succeed: bool) -> None:
        self._observe(self.local.complete_action(intent_id, succeed=succeed))

    def _observe(self, intent: PaymentResult) -> None:
        if self._seen.get(intent.intent_id) is intent.status:
            return
        self._seen[intent.intent_id] = intent.status
        kind = {
            IntentStatus.SUCCEEDED: "payment_intent.succeeded",
            IntentStatus.DECLINED: "payment_intent.payment_failed",
            IntentStatus.REQUIRES_ACTION: "payment_intent.requires_action",
        }.get(intent.status)
        if kind is None:
            return
        error = (
            {"code": "card_declined", "decline_code": intent.decline_code}
            if intent.status is IntentStatus.DECLINED
            else None
        )
        self._post(
            kind,
            {
                "id": intent.intent_id,
                "object": "payment_intent",
                "amount": intent.amount.amount,
                "currency": intent.amount.currency,
                "status": intent.provider_status,
                "metadata": {"order_id": intent.order_id},
                "last_payment_error": error,
            },
        )

    def _post(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append(ProviderEvent(f"evt_test_{next(self._ids)}", kind, payload))


# --- the machine -----------------------------------------------------------------------------


@dataclass
class World:
    """What every example shares: the database, the people, where e-mails go."""

    database: Database
    owners: dict[str, User]
    admin: User
    stranger: User
    make_product: Callable[..., Product]
    emails_dir: Path
    examples: int = 0
    steps: int = 0
    #: How orders came to rest ("status/charge status"), over all examples.
    rested: Counter[str] = field(default_factory=Counter)


@dataclass
class Placed:
    id: str
    owner: User
    lines: dict[str, int] = field(default_factory=dict)


@dataclass
class Filled:
    """A cart the machine filled: what it holds, and the order it became if any."""

    id: str
    owner: User
    lines: dict[str, int]
    order_id: str | None = None


@dataclass
class Asked:
    """A return the machine asked for, of one line, as the machine believes it stands (the
    refund step moves it on to ``refunded`` on its own)."""

    id: str
    order_id: str
    product_id: str
    quantity: int
    status: ReturnStatus = ReturnStatus.REQUESTED
    received: int | None = None

    @property
    def held(self) -> int:
        return units_held(self.status, self.quantity, self.received)


class OrderMachine(RuleBasedStateMachine):
    world: World

    placed = Bundle("placed")
    filled = Bundle("filled")
    returned = Bundle("returned")

    def __init__(self) -> None:
        super().__init__()
        world = type(self).world
        world.examples += 1
        self.db = world.database
        self.provider = WebhookingProvider()
        self.sender = LocalEmailSender(world.emails_dir, "orders@example.com")
        self.initial_stock: dict[str, int] = {}
        self.orders: dict[str, Placed] = {}
        self.unrecorded: dict[str, PaymentResult] = {}
        self.delivered: set[str] = set()
        self.timelines: dict[str, list[str]] = {}
        self.returns: dict[str, Asked] = {}
        with self.db.unit_of_work() as session:
            session.execute(text(f"TRUNCATE {_EXAMPLE_TABLES} RESTART IDENTITY CASCADE"))
            session.commit()

    # -- set-up and intake ---------------------------------------------------------------

    @initialize(
        target=placed,
        stocks=st.lists(st.integers(2, 12), min_size=3, max_size=3),
        prices=st.lists(st.integers(50, 5000), min_size=3, max_size=3),
        first_orders=st.lists(ORDERS, min_size=1, max_size=3),
    )
    def open_shop(
        self,
        stocks: list[int],
        prices: list[int],
        first_orders: list[tuple[str, dict[int, int], str]],
    ) -> Any:
        """Stock three products, then the first orders come in."""
        for stock, price in zip(stocks, prices, strict=True):
            product = type(self).world.make_product(price=price, stock=stock)
            self.initial_stock[product.id] = stock
        return multiple(*[p for args in first_orders for p in self.place(*args).values])

    @rule(target=placed, order=ORDERS)
    def place_order(self, order: tuple[str, dict[int, int], str]) -> Any:
        return self.place(*order)

    def place(self, owner: str, wanted: dict[int, int], payment_method: str) -> Any:
        user = type(self).world.owners[owner]
        products = list(self.initial_stock)
        lines = {products[index]: quantity for index, quantity in wanted.items()}
        command = place_command(user.id, *lines.items(), payment_method=payment_method)
        in_stock = self._stock()
        short = any(in_stock[pid] < qty for pid, qty in lines.items())
        try:
            with self.db.unit_of_work() as session:
                order_id = orders.place_order(session, command).id
                session.commit()
        except InsufficientStock:
            assert short, "intake refused an order whose stock was there"
            return multiple()
        assert not short, "intake accepted a line whose stock was already short"
        self.orders[order_id] = Placed(order_id, user, lines)
        return multiple(self.orders[order_id])

    # -- carts: filled, changed, checked out (as often as it likes) -----------------------

    @rule(target=filled, order=ORDERS)
    def fill_cart(self, order: tuple[str, dict[int, int], str]) -> Filled:
        owner, wanted, _ = order
        user = type(self).world.owners[owner]
        products = list(self.initial_stock)
        lines = {products[index]: quantity for index, quantity in wanted.items()}
        with self.db.unit_of_work() as session:
            items = [carts.ItemRequest(pid, qty) for pid, qty in lines.items()]
            cart_id = carts.create_cart(session, user.id, None, items, 1).state.cart.id
            session.commit()
        return Filled(cart_id, user, lines)

    @rule(cart=filled, index=st.integers(0, 2), quantity=st.integers(0, 3))
    def change_cart(self, cart: Filled, index: int, quantity: int) -> None:
        product_id = list(self.initial_stock)[index]
        refused_for = None
        try:
            with self.db.unit_of_work() as session:
                item = carts.ItemRequest(product_id, quantity)
                carts.put_item(session, cart.id, cart.owner.id, item, 1)
                session.commit()
        except CartCompleted as refused:
            refused_for = refused.extra["order_id"]
        if refused_for is not None:
            assert refused_for == cart.order_id, "a cart refused changes it could take"
            return
        assert cart.order_id is None, "a completed cart changed"
        cart.lines.pop(product_id, None)
        if quantity:
            cart.lines[product_id] = quantity

    @rule(target=placed, cart=filled, payment_method=st.sampled_from(PAYMENT_METHODS))
    def check_out(self, cart: Filled, payment_method: str) -> Any:
        command = place_command(cart.owner.id, payment_method=payment_method)
        command = replace(command, cart_id=cart.id)
        in_stock = self._stock()
        short = any(in_stock[pid] < qty for pid, qty in cart.lines.items())
        refused_for, refused_short = None, False
        try:
            with self.db.unit_of_work() as session:
                order = orders.place_order(session, command)
                session.commit()
        except CartCompleted as refused:
            refused_for = refused.extra["order_id"]
        except (InsufficientStock, Unprocessable):  # short, or the cart was emptied
            refused_short = True
        if refused_for is not None:
            assert refused_for == cart.order_id, "an open cart refused as completed"
            return multiple()
        if refused_short:
            assert cart.order_id is None
            assert short or not cart.lines, "a checkout refused a cart it could order"
            return multiple()
        assert cart.order_id is None, "a cart became a second order"
        assert not short, "a checkout accepted a line whose stock was already short"
        assert {line.product_id: line.quantity for line in order.lines} == cart.lines
        cart.order_id = order.id
        self.orders[order.id] = Placed(order.id, cart.owner, dict(cart.lines))
        return multiple(self.orders[order.id])

    # -- the pipeline's steps, each as often as it likes ---------------------------------

    @rule(order=placed)
    def reserve(self, order: Placed) -> None:
        with self.db.unit_of_work() as session:
            reserve_stock(session, order.id)
            session.commit()

    @rule(order=placed)
    def charge(self, order: Placed) -> None:
        """The worker's whole charge step (a retry replays the provider's first answer)."""
        charge_payment(self.db, self.provider, order.id)

    @rule(order=placed)
    def charge_then_die(self, order: Placed) -> None:
        """The provider answers, the worker dies before recording it."""
        with self.db.unit_of_work() as session:
            request = begin_charge(session, order.id)
            session.commit()
        if request is None:
            return
        if request.known_intent_id is not None:
            result = self.provider.retrieve(request.known_intent_id)
        else:
            result = self.provider.charge(
                order_id=order.id,
                amount=request.amount,
                payment_method=request.payment_method,
                idempotency_key=request.idempotency_key,
            )
        self.unrecorded[order.id] = result

    @rule(order=placed)
    def record_late(self, order: Placed) -> None:
        """A slow worker records what the provider told it, whatever happened since."""
        result = self.unrecorded.get(order.id)
        if result is not None:
            with self.db.unit_of_work() as session:
                record_charge_result(session, result, order_id=order.id)
                session.commit()

    @rule(order=placed, succeed=st.booleans())
    def customer_authenticates(self, order: Placed, succeed: bool) -> None:
        for intent in self.provider.local.intents(order.id):
            if intent.status is IntentStatus.REQUIRES_ACTION:
                self.provider.complete_action(intent.intent_id, succeed=succeed)

    @rule(data=st.data())
    def webhook(self, data: st.DataObject) -> None:
        """Any event the provider sent, in any order, again and again."""
        if not self.provider.events:
            return
        event = data.draw(st.sampled_from(self.provider.events), label="event")
        self._deliver(event)

    @rule(order=placed)
    def fail(self, order: Placed) -> None:
        """The system gives up on an order (a reconciler, an operator): only while pending."""
        status = self._status(order)
        try:
            with self.db.unit_of_work() as session:
                repository = OrderRepository(session)
                fail_order(repository, repository.lock_for_update(order.id), "given_up")
                session.commit()
        except TransitionNotAllowed:
            assert status != OrderStatus.PENDING
        else:
            assert status == OrderStatus.PENDING

    @rule(order=placed, who=st.sampled_from(["owner", "admin", "stranger"]))
    def cancel(self, order: Placed, who: str) -> None:
        status = self._status(order)
        viewer = self._viewer(order, who)
        try:
            with self.db.unit_of_work() as session:
                moves.cancel_order(session, order.id, viewer)
                session.commit()
        except NotFound:
            assert who == "stranger", "the owner or an admin was told the order does not exist"
            return
        except TransitionNotAllowed:
            assert status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.FAILED)
            return
        assert who != "stranger", "a stranger cancelled someone else's order"
        assert status in (OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.CANCELLED)
        assert self._status(order) == OrderStatus.CANCELLED

    @rule(data=st.data(), who=st.sampled_from(["owner", "admin"]))
    def cancel_a_paid_order(self, data: st.DataObject, who: str) -> None:
        """Cancel an order that was paid (confirmed, invoiced or not: refunded; shipped or
        delivered: refused), more often than a random pick of order and moment would."""
        paid_statuses = [OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DELIVERED]
        with self.db.unit_of_work() as session:
            paid = set(session.scalars(select(Order.id).where(Order.status.in_(paid_statuses))))
            session.commit()
        candidates = [order for order_id, order in self.orders.items() if order_id in paid]
        if candidates:
            self.cancel(data.draw(st.sampled_from(candidates), label="order"), who)

    @rule(
        order=placed,
        to=st.sampled_from(list(OrderStatus)),
        who=st.sampled_from(["owner", "admin"]),
    )
    def change_status(self, order: Placed, to: OrderStatus, who: str) -> None:
        status = self._status(order)
        viewer = self._viewer(order, who)
        if to is OrderStatus.CANCELLED:
            allowed = status in (OrderStatus.PENDING, OrderStatus.CONFIRMED, to)
        else:
            allowed = is_allowed(status, to, viewer.role)
        try:
            with self.db.unit_of_work() as session:
                moves.change_status(session, order.id, to, viewer)
                session.commit()
        except Forbidden:
            assert who == "owner", "an admin was refused a status change"
            return
        except TransitionNotAllowed:
            assert not allowed, f"{who} could not move a {status} order to {to}"
        else:
            assert allowed, f"{who} moved a {status} order to {to}"
            assert self._status(order) == to

    @rule(order=placed)
    def advance(self, order: Placed) -> None:
        """An admin ships a confirmed order, delivers a shipped one."""
        status = self._status(order)
        to = {OrderStatus.CONFIRMED: OrderStatus.SHIPPED}.get(status, OrderStatus.DELIVERED)
        self.change_status(order, to, "admin")

    @rule(order=placed, steps=st.integers(1, 5))
    def progress(self, order: Placed, steps: int) -> None:
        """The next few steps a healthy pipeline, customer and admin would take, so that
        examples also reach the far end of the life cycle (and break it there)."""
        for _ in range(steps):
            status = self._status(order)
            with self.db.unit_of_work() as session:
                reserved = session.scalar(
                    select(func.count()).where(StockReservation.order_id == order.id)
                )
                invoiced = session.scalar(select(func.count()).where(Invoice.order_id == order.id))
                charge = session.scalar(
                    select(Payment.status).where(
                        Payment.order_id == order.id, Payment.kind == "charge"
                    )
                )
                session.commit()
            if status is OrderStatus.PENDING and not reserved:
                self.reserve(order)
            elif status is OrderStatus.PENDING and charge == "requires_action":
                self.customer_authenticates(order, succeed=True)
                for event in list(self.provider.events):
                    if event.id not in self.delivered:
                        self._deliver(event)
            elif status is OrderStatus.PENDING:
                self.charge(order)
            elif status is OrderStatus.CONFIRMED and not invoiced:
                self.invoice(order)
            elif status in (OrderStatus.CONFIRMED, OrderStatus.SHIPPED):
                self.advance(order)
            else:
                return

    @rule(order=placed)
    def invoice(self, order: Placed) -> None:
        with self.db.unit_of_work() as session:
            generate_invoice(session, order.id)
            session.commit()

    @rule(order=placed, kind=st.sampled_from([k for k in EmailKind if k not in PER_OCCURRENCE]))
    def email(self, order: Placed, kind: EmailKind) -> None:
        send_email(self.db, self.sender, order.id, kind)

    @rule(order=placed)
    def refund(self, order: Placed) -> None:
        refund_payment(self.db, self.provider, order.id)

    # -- after the sale: partial refunds, changes, credit notes --------------------------

    @rule(order=placed, share=st.floats(0.05, 1.2))
    def refund_partly(self, order: Placed, share: float) -> None:
        """An admin refunds part of the capture (or more than is left: 409, nothing written)."""
        with self.db.unit_of_work() as session:
            found = OrderRepository(session).get(order.id)
            assert found is not None
            captured, left, currency = (
                found.captured_amount,
                found.refundable.amount,
                found.currency,
            )
            session.commit()
        amount = max(1, int(captured * share))
        try:
            with self.db.unit_of_work() as session:
                request_refund(session, order.id, Money(amount, currency), "partly", "admin")
                session.commit()
        except RefundExceedsRefundable:
            assert amount > left, f"refused {amount} with {left} left to refund"
        else:
            assert amount <= left, f"refunded {amount} with {left} left to refund"

    @rule(order=placed, data=st.data(), who=st.sampled_from(["owner", "admin"]))
    def change_lines(self, order: Placed, data: st.DataObject, who: str) -> None:
        """Lower, remove or (refused) raise one line of the order."""
        with self.db.unit_of_work() as session:
            found = OrderRepository(session).get(order.id)
            assert found is not None
            status, total = found.status, found.total_amount
            lines = {line.product_id: line.quantity for line in found.lines}
            charge = OrderRepository(session).charge_of(order.id)
            session.commit()
        product_id = data.draw(st.sampled_from(sorted(lines)), label="line")
        quantity = data.draw(st.integers(0, lines[product_id] + 1), label="quantity")
        settled = charge is None or charge.status == PaymentRecordStatus.SUCCEEDED
        changeable = status in (OrderStatus.PENDING, OrderStatus.CONFIRMED)
        cancels = quantity == 0 and len(lines) == 1  # through the cancel path, as DELETE
        allowed = changeable and (quantity == lines[product_id] or settled or cancels)
        allowed = allowed and quantity <= lines[product_id]
        change = OrderChange(items=[orders.LineRequest(product_id, quantity)])
        try:
            with self.db.unit_of_work() as session:
                changed = change_order(session, self._viewer(order, who), order.id, change)
                after = changed.status, changed.total_amount
                session.commit()
        except OrderNotChangeable:
            assert not allowed, f"refused {product_id}: {lines[product_id]} -> {quantity}"
            return
        assert allowed, f"{status} order changed {product_id}: {lines[product_id]} -> {quantity}"
        if cancels:
            assert after[0] == OrderStatus.CANCELLED
        elif changeable and quantity < lines[product_id]:
            with self.db.unit_of_work() as session:
                unit = session.scalar(
                    select(OrderLine.unit_price_amount).where(OrderLine.order_id == order.id)
                    .where(OrderLine.product_id == product_id)
                )  # fmt: skip
                session.commit()
            if unit is not None:
                assert after[1] == total - unit * (lines[product_id] - quantity)

    @rule(
        order=placed, who=st.sampled_from(["owner", "admin"]), line1=st.sampled_from(["1 A", "2 B"])
    )
    def change_address(self, order: Placed, who: str, line1: str) -> None:
        status = self._status(order)
        address = {**place_command(order.owner.id).shipping_address, "line1": line1}
        try:
            with self.db.unit_of_work() as session:
                change_order(
                    session,
                    self._viewer(order, who),
                    order.id,
                    OrderChange(shipping_address=address),
                )
                session.commit()
        except OrderNotChangeable:
            assert status not in (OrderStatus.PENDING, OrderStatus.CONFIRMED)
        else:
            assert status in (OrderStatus.PENDING, OrderStatus.CONFIRMED)

    @rule(order=placed)
    def credit(self, order: Placed) -> None:
        """The credit note step for each refund of the order, as often as it likes."""
        with self.db.unit_of_work() as session:
            refund_ids = [r.id for r in OrderRepository(session).refunds_of(order.id)]
            session.commit()
        for refund_id in refund_ids:
            self._run(Step.ISSUE_CREDIT_NOTE, order.id, {"refund_id": refund_id})

    @rule(order=placed)
    def email_refunds(self, order: Placed) -> None:
        with self.db.unit_of_work() as session:
            refund_ids = [r.id for r in OrderRepository(session).refunds_of(order.id)]
            session.commit()
        for refund_id in refund_ids:
            send_email(self.db, self.sender, order.id, EmailKind.REFUNDED, refund_id)

    # -- returns (issue 18): asked for, approved, rejected, received; their refunds go
    # through the refund rule and the webhooks like any other ---------------------------

    @rule(
        target=returned,
        data=st.data(),
        who=st.sampled_from(["owner", "owner", "admin", "stranger"]),
        quantity=st.integers(1, 3),
    )
    def ask_return(self, data: st.DataObject, who: str, quantity: int) -> Any:
        """Ask to return units of one line, mostly of orders out with their customer."""
        out = [OrderStatus.SHIPPED, OrderStatus.DELIVERED]
        with self.db.unit_of_work() as session:
            shipped = set(session.scalars(select(Order.id).where(Order.status.in_(out))))
        pool = [o for oid, o in self.orders.items() if oid in shipped] or list(self.orders.values())
        if not pool:
            return multiple()
        order = data.draw(st.sampled_from(pool), label="order")
        product_id = data.draw(st.sampled_from(sorted(order.lines)), label="product")
        return self._ask(order, product_id, who, quantity)

    @rule(target=returned, data=st.data(), quantity=st.integers(1, 2))
    def ship_then_ask_return(self, data: st.DataObject, quantity: int) -> Any:
        """The whole way: an order driven to the customer (as ``progress`` does), then its
        owner asks to return some of it; more examples reach returns this way."""
        if not self.orders:
            return multiple()
        order = data.draw(st.sampled_from(list(self.orders.values())), label="order")
        self.progress(order, 6)
        product_id = data.draw(st.sampled_from(sorted(order.lines)), label="product")
        asked = self._ask(order, product_id, "owner", quantity)
        if self.returns and data.draw(st.booleans(), label="received at once"):
            latest = self.returns[max(self.returns)]  # ids sort by creation
            restock = data.draw(st.booleans(), label="restock")
            self.receive_return(latest, latest.quantity, restock, approve_first=True)
        return asked

    def _ask(self, order: Placed, product_id: str, who: str, quantity: int) -> Any:
        out = [OrderStatus.SHIPPED, OrderStatus.DELIVERED]
        status = self._status(order)
        held = sum(r.held for r in self.returns.values()
                   if (r.order_id, r.product_id) == (order.id, product_id))  # fmt: skip
        fits = status in out and quantity <= order.lines[product_id] - held
        try:
            with self.db.unit_of_work() as session:
                asked = returning.request_return(
                    session,
                    self._viewer(order, who),
                    order.id,
                    [returning.RequestedLine(product_id, quantity)],
                    window_days=30,
                )
                return_id = asked.id
                session.commit()
        except NotFound:
            assert who == "stranger", "the owner or an admin was told the order does not exist"
            return multiple()
        except (returning.ReturnExceedsShipped, TransitionNotAllowed):
            assert not fits or who == "stranger", f"{quantity} of {product_id} refused"
            return multiple()
        assert who != "stranger", "a stranger asked to return someone else's order"
        assert fits, f"{quantity} of {product_id} returned past what was shipped ({held} held)"
        self.returns[return_id] = Asked(return_id, order.id, product_id, quantity)
        return multiple(self.returns[return_id])

    @rule(asked=returned, approve=st.booleans())
    def decide_return(self, asked: Asked, approve: bool) -> None:
        status = self._return_status(asked)
        admin = orders.Viewer(type(self).world.admin.id, is_admin=True)
        target = ReturnStatus.APPROVED if approve else ReturnStatus.REJECTED
        allowed = status in (ReturnStatus.REQUESTED, target) or (
            status is ReturnStatus.APPROVED and target is ReturnStatus.REJECTED
        )
        try:
            with self.db.unit_of_work() as session:
                if approve:
                    returning.approve_return(session, admin, asked.id)
                else:
                    returning.reject_return(session, admin, asked.id, "hypothesis says no")
                session.commit()
        except TransitionNotAllowed:
            assert not allowed, f"a {status} return could not become {target}"
            return
        assert allowed, f"a {status} return became {target}"
        asked.status = target

    @rule(
        asked=returned,
        received=st.integers(0, 3),
        restock=st.booleans(),
        approve_first=st.booleans(),
    )
    def receive_return(
        self, asked: Asked, received: int, restock: bool, approve_first: bool
    ) -> None:
        """The parcel arrives: some or all of it, sellable or not; a second receipt, or one
        of a return not approved, changes nothing. The admin may approve it on arrival."""
        if approve_first:
            self.decide_return(asked, approve=True)
        status = self._return_status(asked)
        quantity = min(received, asked.quantity)
        admin = orders.Viewer(type(self).world.admin.id, is_admin=True)
        stock = self._stock()
        try:
            with self.db.unit_of_work() as session:
                returning.receive_return(
                    session,
                    admin,
                    asked.id,
                    [returning.ReceivedLine(asked.product_id, quantity, restock)],
                )
                session.commit()
        except TransitionNotAllowed:
            assert status is not ReturnStatus.APPROVED, "an approved return was not received"
            assert self._stock() == stock
            return
        except Unprocessable:
            assert status is ReturnStatus.APPROVED
            assert quantity == 0
            return
        assert status is ReturnStatus.APPROVED, f"a {status} return was received"
        asked.status, asked.received = ReturnStatus.RECEIVED, quantity
        back = quantity if restock else 0
        assert self._stock()[asked.product_id] == stock[asked.product_id] + back

    def _return_status(self, asked: Asked) -> ReturnStatus:
        with self.db.unit_of_work() as session:
            found = session.get(Return, asked.id)
            assert found is not None
            return ReturnStatus(found.status)

    # -- what holds after every step ----------------------------------------------------

    @invariant()
    def promises_hold_at_every_instant(self) -> None:
        type(self).world.steps += 1
        with self.db.unit_of_work() as session:
            broken = [v for v in audit(session) if v.check in INSTANTANEOUS]
            assert broken == [], "\n".join(map(str, broken))
            self._stock_is_conserved(session)
            self._one_of_each_per_order(session)
            self._each_effect_recorded_once(session)
            self._only_paid_orders_are_invoiced(session)
            self._database_agrees_with_the_provider(session)
            self._emails_follow_statuses(session)
            self._timelines_only_grow(session)
            self._one_order_per_cart(session)
            self._refunds_agree_with_the_provider(session)
            session.commit()
        self._provider_never_overcharges()

    def _stock_is_conserved(self, session: Session) -> None:
        held = dict(
            session.execute(
                select(StockReservation.product_id, func.sum(StockReservation.quantity))
                .where(StockReservation.released_at.is_(None))
                .group_by(StockReservation.product_id)
            ).all()
        )
        # Units returned and put back on the shelf came back once, on top of the start.
        restocked = dict(
            session.execute(
                select(ReturnLine.product_id, func.sum(ReturnLine.received_quantity))
                .where(ReturnLine.restocked_at.is_not(None))
                .group_by(ReturnLine.product_id)
            ).all()
        )
        for product_id, stock in session.execute(select(Product.id, Product.stock)).all():
            assert stock >= 0, f"{product_id} has {stock} in stock"
            back = restocked.get(product_id, 0)
            assert stock + held.get(product_id, 0) - back == self.initial_stock[product_id], (
                f"{product_id}: {stock} in stock + {held.get(product_id, 0)} held - {back} "
                f"restocked != {self.initial_stock[product_id]} at the start"
            )

    def _one_order_per_cart(self, session: Session) -> None:
        """A completed cart names the one order that carries its id; an open one has none."""
        orders_of = dict(
            session.execute(
                select(Order.cart_id, func.count()).where(Order.cart_id.is_not(None))
                .group_by(Order.cart_id)
            ).all()
        )  # fmt: skip
        for cart in session.scalars(select(Cart)):
            expected = 1 if cart.status == CartStatus.COMPLETED else 0
            assert orders_of.get(cart.id, 0) == expected, f"cart {cart.id}: {orders_of}"
            if cart.order_id is not None:
                placed = session.get(Order, cart.order_id)
                assert placed is not None
                assert placed.cart_id == cart.id

    def _one_of_each_per_order(self, session: Session) -> None:
        for model, columns in (
            (Payment, (Payment.order_id, Payment.kind)),
            (Invoice, (Invoice.order_id,)),
            (EmailRecord, (EmailRecord.order_id, EmailRecord.kind)),
            (StockReservation, (StockReservation.order_id, StockReservation.product_id)),
        ):
            doubled = session.execute(
                select(*columns).group_by(*columns).having(func.count() > 1)
            ).all()
            assert doubled == [], f"more than one {model.__tablename__} row for {doubled}"

    def _only_paid_orders_are_invoiced(self, session: Session) -> None:
        unpaid = session.execute(
            select(Invoice.order_id, Payment.status)
            .outerjoin(Payment, (Payment.order_id == Invoice.order_id) & (Payment.kind == "charge"))
            .where(Payment.status.is_distinct_from("succeeded"))
        ).all()
        assert unpaid == [], f"invoiced without a capture: {unpaid}"

    def _each_effect_recorded_once(self, session: Session) -> None:
        """The timeline names each effect once, whatever was retried or redelivered."""
        kind = OrderEvent.data["kind"].astext
        # E-mails once per refund or change, refunds once per refund row; stock given back
        # by a change is a release of its own (the full release stays once).
        subject = func.coalesce(OrderEvent.data["for"].astext, OrderEvent.data["refund_id"].astext)
        doubled = session.execute(
            select(OrderEvent.order_id, OrderEvent.type, kind, subject)
            .where(OrderEvent.type.in_(ONCE_PER_ORDER))
            .where(OrderEvent.data["reason"].astext.is_distinct_from("order_changed"))
            .group_by(OrderEvent.order_id, OrderEvent.type, kind, subject)
            .having(func.count() > 1)
        ).all()
        assert doubled == [], f"effects recorded twice: {doubled}"

    def _database_agrees_with_the_provider(self, session: Session) -> None:
        """Never record money the provider did not take or give back."""
        for order_id, kind, amount, provider_id in session.execute(
            select(Payment.order_id, Payment.kind, Payment.amount, Payment.provider_id).where(
                Payment.status == "succeeded"
            )
        ).all():
            if kind == "charge":
                intent = self.provider.local.retrieve(provider_id)
                assert intent.status is IntentStatus.SUCCEEDED, f"{order_id}: {intent}"
                assert intent.amount.amount == amount
            else:
                charge_intent = session.scalar(
                    select(Payment.provider_id).where(
                        Payment.order_id == order_id, Payment.kind == "charge"
                    )
                )
                refunded = self._refunded(charge_intent)
                assert refunded == amount, f"{order_id}: refunded {refunded}, recorded {amount}"

    def _refunds_agree_with_the_provider(self, session: Session) -> None:
        """Per order: refunds recorded succeeded <= what the provider gave back <= refunds
        asked for (succeeded + pending), and the order's counters are the refunds' sums."""
        rows = session.execute(
            select(Order.id, Order.captured_amount, Order.refunded_amount,
                   Order.refund_pending_amount, Payment.provider_id)
            .outerjoin(Payment, (Payment.order_id == Order.id) & (Payment.kind == "charge")
                       & (Payment.status == "succeeded"))
        ).all()  # fmt: skip
        for order_id, captured, refunded, pending, intent_id in rows:
            given = self._refunded(intent_id) if intent_id else 0
            assert refunded <= given <= refunded + pending <= captured, (
                f"{order_id}: recorded {refunded} + pending {pending} of {captured}, "
                f"the provider gave back {given}"
            )
            sums = dict(
                session.execute(
                    select(Refund.status, func.sum(Refund.amount))
                    .where(Refund.order_id == order_id)
                    .group_by(Refund.status)
                ).all()
            )
            assert sums.get(RefundStatus.SUCCEEDED, 0) == refunded, order_id
            assert sums.get(RefundStatus.PENDING, 0) == pending, order_id

    def _emails_follow_statuses(self, session: Session) -> None:
        """An e-mail only for a status the order has been in."""
        history: dict[str, set[str]] = {}
        for order_id, target in session.execute(
            select(OrderEvent.order_id, OrderEvent.data["to"].astext).where(
                OrderEvent.type == "status_changed"
            )
        ).all():
            history.setdefault(order_id, {OrderStatus.PENDING.value}).add(target)
        for order_id, kind in session.execute(select(EmailRecord.order_id, EmailRecord.kind)):
            if ":" in kind:  # once per refund or change: not about a status
                continue
            been = history.get(order_id, {OrderStatus.PENDING.value})
            assert been & set(EMAIL_STATUSES[EmailKind(kind)]), f"{kind} e-mail for {order_id}"

    def _timelines_only_grow(self, session: Session) -> None:
        timelines: dict[str, list[str]] = {}
        for order_id, event_id in session.execute(
            select(OrderEvent.order_id, OrderEvent.id).order_by(
                OrderEvent.created_at, OrderEvent.id
            )
        ):
            timelines.setdefault(order_id, []).append(event_id)
        for order_id, before in self.timelines.items():
            now = timelines.get(order_id, [])
            assert now[: len(before)] == before, f"the timeline of {order_id} was rewritten"
        self.timelines = timelines

    def _provider_never_overcharges(self) -> None:
        with self.db.unit_of_work() as session:
            rows = dict(
                session.execute(
                    select(Refund.order_id, func.count()).group_by(Refund.order_id)
                ).all()
            )
        for order_id in self.orders:
            intents = self.provider.local.intents(order_id)
            captured = [i for i in intents if i.status is IntentStatus.SUCCEEDED]
            assert len(captured) <= 1, f"{order_id} was charged {len(captured)} times"
            for intent in captured:
                refunds = self.provider.local.refunds(intent.intent_id)
                asked = rows.get(order_id, 0)  # a return's receipt asks for a refund too
                assert len(refunds) <= max(asked, 1), f"{order_id}: {len(refunds)} refunds"
                assert sum(r.amount.amount for r in refunds) <= intent.amount.amount

    # -- at rest -------------------------------------------------------------------------

    def teardown(self) -> None:
        """Deliver what is owed (every webhook not yet delivered, then the sweeper's stalled
        work, until it stops changing), then every promise holds."""
        for event in list(self.provider.events):
            if event.id not in self.delivered:
                self._deliver(event)
        last: list[tuple[str, str, str]] | None = None
        for _ in range(8):
            with self.db.unit_of_work() as session:
                work = find_stalled_work(session, stalled_for=-3600)
                session.commit()
            listed = sorted((w.step.value, w.order_id, str(w.kwargs)) for w in work)
            if listed == last:
                break
            last = listed
            for item in work:
                self._run(item.step, item.order_id, item.kwargs)
            for event in list(self.provider.events):
                if event.id not in self.delivered:
                    self._deliver(event)
        self.promises_hold_at_every_instant()
        with self.db.unit_of_work() as session:
            broken = audit(session)
            assert broken == [], "at rest:\n" + "\n".join(map(str, broken))
            self._everything_at_rest(session)
            session.commit()

    def _everything_at_rest(self, session: Session) -> None:
        rows = session.execute(
            select(
                Order.id, Order.status, Order.total_amount, Order.reduced_amount, Payment.status
            ).outerjoin(Payment, (Payment.order_id == Order.id) & (Payment.kind == "charge"))
        ).all()
        for order_id, status, total, reduced, charge in rows:
            type(self).world.rested[f"{status}/{charge}"] += 1
            if status == OrderStatus.PENDING.value:
                assert charge == "requires_action", f"{order_id} is stuck pending ({charge})"
            kept = sum(
                i.amount.amount
                - sum(r.amount.amount for r in self.provider.local.refunds(i.intent_id))
                for i in self.provider.local.intents(order_id)
                if i.status is IntentStatus.SUCCEEDED
            )
            given_back = sum(
                session.scalars(
                    select(Refund.amount).where(
                        Refund.order_id == order_id, Refund.status == RefundStatus.SUCCEEDED
                    )
                )
            )  # partial refunds, changes' and returns' refunds: the order carries on
            # What was captured (the total before any change took some off), less refunds.
            captured = total + reduced
            owed = captured - given_back if status in ("confirmed", "shipped", "delivered") else 0
            assert kept == owed, f"{order_id} is {status}: the provider kept {kept}, not {owed}"

    # -- helpers -------------------------------------------------------------------------

    def _deliver(self, event: ProviderEvent) -> None:
        with self.db.unit_of_work() as session:
            outcome = handle_payment_event(session, event)
            session.commit()
        first = event.id not in self.delivered
        assert (outcome == "duplicate") is not first, f"{event.id} answered {outcome}"
        self.delivered.add(event.id)

    def _run(self, step: Step, order_id: str, kwargs: dict[str, Any]) -> None:
        if step is Step.RESERVE_STOCK:
            with self.db.unit_of_work() as session:
                reserve_stock(session, order_id)
                session.commit()
        elif step is Step.CHARGE_PAYMENT:
            charge_payment(self.db, self.provider, order_id)
        elif step is Step.GENERATE_INVOICE:
            with self.db.unit_of_work() as session:
                generate_invoice(session, order_id)
                session.commit()
        elif step is Step.SEND_EMAIL:
            occurrence = kwargs.get("refund_id") or kwargs.get("change_id")
            send_email(self.db, self.sender, order_id, EmailKind(kwargs["kind"]), occurrence)
        elif step is Step.ISSUE_CREDIT_NOTE:
            with self.db.unit_of_work() as session:
                issue_credit_note(session, order_id, kwargs["refund_id"])
                session.commit()
        elif step is Step.REFUND_PAYMENT:
            refund_payment(self.db, self.provider, order_id, kwargs.get("refund_id"))
        else:  # pragma: no cover - a new step must be taught to the test
            raise AssertionError(f"unknown step {step}")

    def _refunded(self, intent_id: str) -> int:
        return sum(refund.amount.amount for refund in self.provider.local.refunds(intent_id))

    def _status(self, order: Placed) -> OrderStatus:
        with self.db.unit_of_work() as session:
            result = OrderStatus(session.scalar(select(Order.status).where(Order.id == order.id)))
            session.commit()
            return result

    def _viewer(self, order: Placed, who: str) -> orders.Viewer:
        world = type(self).world
        if who == "admin":
            return orders.Viewer(world.admin.id, is_admin=True)
        if who == "stranger":
            return orders.Viewer(world.stranger.id, is_admin=False)
        return orders.Viewer(order.owner.id, is_admin=False)

    def _stock(self) -> dict[str, int]:
        with self.db.unit_of_work() as session:
            result = dict(session.execute(select(Product.id, Product.stock)).all())
            session.commit()
            return result


@pytest.mark.usefixtures("clean_database")
def test_orders_keep_every_promise_whatever_the_order_of_steps(
    database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    tmp_path: Path,
) -> None:
    OrderMachine.world = World(
        database=database,
        owners={"alice": make_user(), "bob": make_user()},
        admin=make_user(role="admin"),
        stranger=make_user(),
        make_product=make_product,
        emails_dir=tmp_path / "emails",
    )
    run_state_machine_as_test(
        OrderMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    world = OrderMachine.world
    print(f"\n{world.examples} examples, {world.steps} steps, orders at rest: {world.rested}")
    assert world.examples >= 40
    assert world.steps >= 40 * 10


def test_an_order_invoiced_then_cancelled_passes_the_audit(
    database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    tmp_path: Path,
) -> None:
    """The invoice of an order cancelled after it was issued stays (numbers are gapless);
    the audit once called that a violation. Its refund gets a credit note instead."""
    owner, product = make_user(), make_product(price=1000, stock=5)
    provider, sender = LocalPaymentProvider(), LocalEmailSender(tmp_path, "orders@example.com")
    with database.unit_of_work() as session:
        order_id = orders.place_order(session, place_command(owner.id, (product.id, 1))).id
        session.commit()
    with database.unit_of_work() as session:
        reserve_stock(session, order_id)
        session.commit()
    charge_payment(database, provider, order_id)
    with database.unit_of_work() as session:
        generate_invoice(session, order_id)
        session.commit()
    send_email(database, sender, order_id, EmailKind.CONFIRMATION)
    with database.unit_of_work() as session:
        moves.cancel_order(session, order_id, orders.Viewer(owner.id, is_admin=False))
        session.commit()
    refund_payment(database, provider, order_id)
    send_email(database, sender, order_id, EmailKind.CANCELLED)
    with database.unit_of_work() as session:  # the refund after the invoice: its credit note
        (refund,) = OrderRepository(session).refunds_of(order_id)
        note = issue_credit_note(session, order_id, refund.id)
        assert note is not None
        assert (note.amount, note.invoice_number) == (1000, f"INV-{note.year}-000001")
        session.commit()
    with database.unit_of_work() as session:
        assert session.scalar(select(Order.payment_status).where(Order.id == order_id)) == (
            "refunded"
        )
        assert [str(v) for v in audit(session)] == []
        session.commit()
