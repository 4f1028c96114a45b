"""Every Prometheus metric orderflow records, defined in one place.

Counters and histograms live here; the API serves them at ``/metrics`` together with the
gauges it computes from PostgreSQL and Redis at scrape time (``api/metrics.py``). Worker
processes record into the same definitions: with ``PROMETHEUS_MULTIPROC_DIR`` set, each
process writes its values to a file there and whoever serves ``/metrics`` for that directory
(a worker's metrics port, or the API on the same host) adds them up.

Orders placed and status changes are counted when their transaction commits, never before,
so a rolled-back request or a retried step counts nothing; at the same moment each is told
in one info line (logger ``orderflow.orders``): ``order ord_… pending → confirmed``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import structlog
from prometheus_client import Counter, Histogram, values
from sqlalchemy import event
from sqlalchemy.orm import Session

from orderflow.email import (
    EmailMessage,
    EmailProviderMisconfigured,
    EmailProviderUnavailable,
    EmailRejected,
)
from orderflow.money import Money, is_currency
from orderflow.payments import (
    PaymentIdempotencyConflict,
    PaymentNotFound,
    PaymentProvider,
    PaymentProviderMisconfigured,
    PaymentProviderUnavailable,
    PaymentRejected,
    PaymentResult,
    RefundResult,
)
from orderflow.shipping import (
    Label,
    LabelRequest,
    Quote,
    ShippingProvider,
    ShippingProviderUnavailable,
    ShippingRejected,
    TrackingReport,
)
from orderflow.sms import (
    SmsMessage,
    SmsProviderMisconfigured,
    SmsProviderUnavailable,
    SmsRejected,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _use_multiprocess_values_if_configured() -> None:
    """prometheus-client picks single- or multi-process values when it is first imported;
    under ``celery`` that happens before our code can set the directory (Flower's plugin
    imports it), so choose again here, before any metric below is built."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()


_use_multiprocess_values_if_configured()

#: Seconds; from a fast cached read to a provider call near its timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- HTTP (api/observability.py) ------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "orderflow_http_requests",
    "HTTP requests answered, by route template and status code",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "orderflow_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
RATE_LIMITED = Counter("orderflow_rate_limited", "Requests refused with 429, by limit", ["limit"])

# --- orders (counted on commit) -------------------------------------------------------------
ORDERS_PLACED = Counter(
    "orderflow_orders_placed", "Orders accepted and committed, by currency", ["currency"]
)
ORDER_TRANSITIONS = Counter(
    "orderflow_order_transitions",
    "Orders reaching a status (committed status changes), by previous and new status",
    ["from_status", "to_status"],
)

RETURN_TRANSITIONS = Counter(
    "orderflow_return_transitions",
    "Returns reaching a status (committed; requested returns from ''), by previous and new status",
    ["from_status", "to_status"],
)
SHIPMENT_TRANSITIONS = Counter(
    "orderflow_shipment_transitions",
    "Shipments reaching a status (committed; created shipments from ''), by previous and "
    "new status",
    ["from_status", "to_status"],
)

PAYMENT_ANOMALIES = Counter(
    "orderflow_payment_anomalies",
    "Payment reports that did not match the order's charge and changed nothing but the "
    "record (committed), by reason and by who reported them",
    ["reason", "reported_by"],
)

# --- pipeline tasks (workers/signals.py) ----------------------------------------------------
TASKS = Counter(
    "orderflow_tasks",
    "Pipeline task runs, by task and outcome (success, retry, failure, ...)",
    ["task", "outcome"],
)
TASK_LATENCY = Histogram(
    "orderflow_task_duration_seconds",
    "Time a task run took in the worker, by task and outcome",
    ["task", "outcome"],
    buckets=LATENCY_BUCKETS,
)
TASK_FAILURES = Counter(
    "orderflow_task_failures",
    "Task runs that failed for good (retries are counted in orderflow_tasks), by exception",
    ["task", "exception"],
)
OUTBOX_PUBLISHED = Counter(
    "orderflow_outbox_published", "Outbox messages the relay put on the broker", ["topic"]
)

# --- customer notices -----------------------------------------------------------------------
SMS_MESSAGES = Counter(
    "orderflow_sms",
    "Runs of the SMS step, by kind and outcome: sent, found (an earlier attempt had got "
    "through: not sent again), failed (refused for good), skipped (opted out since), "
    "unavailable (left to a retry)",
    ["kind", "outcome"],
)

# --- providers (wrappers below) -------------------------------------------------------------
PROVIDER_CALLS = Counter(
    "orderflow_provider_calls",
    "Calls to the payment, e-mail, shipping and SMS providers, by outcome (a result or an "
    "error kind)",
    ["provider", "operation", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "orderflow_provider_call_duration_seconds",
    "Time a provider call took, errors included",
    ["provider", "operation"],
    buckets=LATENCY_BUCKETS,
)

#: Error kinds, most specific first.
_ERROR_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (PaymentProviderMisconfigured, "misconfigured"),
    (PaymentIdempotencyConflict, "idempotency_conflict"),
    (PaymentNotFound, "not_found"),
    (PaymentRejected, "rejected"),
    (PaymentProviderUnavailable, "unavailable"),
    (EmailProviderMisconfigured, "misconfigured"),
    (EmailRejected, "rejected"),
    (EmailProviderUnavailable, "unavailable"),
    (ShippingRejected, "rejected"),
    (ShippingProviderUnavailable, "unavailable"),
    (SmsProviderMisconfigured, "misconfigured"),
    (SmsRejected, "rejected"),
    (SmsProviderUnavailable, "unavailable"),
)

T = TypeVar("T")
MessageT = TypeVar("MessageT")


def error_kind(error: BaseException) -> str:
    for kind, label in _ERROR_KINDS:
        if isinstance(error, kind):
            return label
    return "error"


def observe_call(
    provider: str, operation: str, call: Callable[[], T], outcome: Callable[[T], str]
) -> T:
    """Run one provider call, counting its outcome and timing it; errors are re-raised."""
    started = time.perf_counter()
    try:
        result = call()
    except Exception as error:
        PROVIDER_CALLS.labels(provider, operation, error_kind(error)).inc()
        raise
    finally:
        PROVIDER_LATENCY.labels(provider, operation).observe(time.perf_counter() - started)
    PROVIDER_CALLS.labels(provider, operation, outcome(result)).inc()
    return result


class InstrumentedPaymentProvider:
    """A payment provider that records every call; behaves exactly like the one it wraps."""

    def __init__(self, inner: PaymentProvider, name: str) -> None:
        self.inner, self.name = inner, name

    def charge(
        self, *, order_id: str, amount: Money, payment_method: str, idempotency_key: str
    ) -> PaymentResult:
        return observe_call(
            self.name,
            "charge",
            lambda: self.inner.charge(
                order_id=order_id,
                amount=amount,
                payment_method=payment_method,
                idempotency_key=idempotency_key,
            ),
            _payment_outcome,
        )

    def refund(
        self,
        *,
        order_id: str,
        payment_intent_id: str,
        amount: Money,
        idempotency_key: str,
        refund_id: str | None = None,
    ) -> RefundResult:
        return observe_call(
            self.name,
            "refund",
            lambda: self.inner.refund(
                order_id=order_id,
                payment_intent_id=payment_intent_id,
                amount=amount,
                idempotency_key=idempotency_key,
                refund_id=refund_id,
            ),
            lambda result: str(result.status),
        )

    def retrieve(self, payment_intent_id: str) -> PaymentResult:
        return observe_call(
            self.name, "retrieve", lambda: self.inner.retrieve(payment_intent_id), _payment_outcome
        )

    def __getattr__(self, name: str) -> Any:  # extras of an implementation (local, tests)
        return getattr(self.inner, name)


def _lookup_outcome(found: str | None) -> str:
    return "not_found" if found is None else "found"


class InstrumentedSender(Generic[MessageT]):
    """An e-mail or SMS sender that records every call; behaves exactly like the one it
    wraps (both senders are ``send`` and ``find_sent`` of a message)."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner, self.name = inner, name

    def send(self, message: MessageT) -> str:
        sent: str = observe_call(
            self.name, "send", lambda: self.inner.send(message), lambda _: "sent"
        )
        return sent

    def find_sent(self, message: MessageT) -> str | None:
        found: str | None = observe_call(
            self.name, "find_sent", lambda: self.inner.find_sent(message), _lookup_outcome
        )
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


InstrumentedEmailSender = InstrumentedSender[EmailMessage]
InstrumentedSmsSender = InstrumentedSender[SmsMessage]


class InstrumentedShippingProvider:
    """A shipping provider that records every call (``orderflow_provider_*``, with label
    purchases by outcome under ``operation="buy"``); behaves exactly like the one it wraps."""

    def __init__(self, inner: ShippingProvider, name: str) -> None:
        self.inner, self.name = inner, name

    def quote(self, request: LabelRequest) -> Quote:
        return observe_call(self.name, "quote", lambda: self.inner.quote(request), _ok)

    def buy(self, request: LabelRequest, quote: Quote) -> Label:
        return observe_call(self.name, "buy", lambda: self.inner.buy(request, quote), _ok)

    def void(self, label: Label | str) -> None:
        observe_call(self.name, "void", lambda: self.inner.void(label), _ok)

    def track(self, carrier: str, tracking_number: str) -> list[TrackingReport]:
        return observe_call(
            self.name, "track", lambda: self.inner.track(carrier, tracking_number), _ok
        )


def _ok(_: object) -> str:
    return "ok"


def _payment_outcome(result: PaymentResult) -> str:
    return result.status.value


# --- order counters, on commit --------------------------------------------------------------
_NOTED = "orderflow.metrics.order_events"
_COUNTED_EVENTS = ("order_placed", "status_changed", "payment_anomaly", "shipment_created",
                   "shipment_updated", "shipment_cancelled", "return_requested",
                   "return_approved", "return_rejected", "return_received",
                   "return_refunded")  # fmt: skip
order_log = structlog.get_logger("orderflow.orders")


def note_order_event(
    session: Session, order_id: str, type_: str, actor: str, data: dict[str, Any]
) -> None:
    """Remember an order event written in the session's transaction; counted at its commit."""
    if type_ in _COUNTED_EVENTS:
        session.info.setdefault(_NOTED, []).append((order_id, type_, actor, dict(data)))


# Registered at import, as the outbox's hand-over is: whoever writes an order event imports
# this module, so the counters can never be left out.
@event.listens_for(Session, "after_commit")
def _count_noted(session: Session) -> None:
    for order_id, type_, actor, data in session.info.pop(_NOTED, []):
        if type_ == "order_placed":
            ORDERS_PLACED.labels(str(data.get("currency", ""))).inc()
        elif type_ == "shipment_created":  # shipments are counted, not logged as orders
            SHIPMENT_TRANSITIONS.labels("", "pending").inc()
            continue
        elif type_ == "shipment_updated":
            SHIPMENT_TRANSITIONS.labels(str(data.get("from", "")), str(data.get("to", ""))).inc()
            continue
        elif type_ == "shipment_cancelled":
            SHIPMENT_TRANSITIONS.labels(str(data.get("from", "")), "cancelled").inc()
            continue
        elif type_.startswith("return_"):  # returns are counted, not logged as orders
            RETURN_TRANSITIONS.labels(
                str(data.get("from", "")), str(data.get("to", "requested"))
            ).inc()
            continue
        elif type_ == "payment_anomaly":  # logged as a warning where it is found
            PAYMENT_ANOMALIES.labels(str(data["reason"]), str(data["reported_by"])).inc()
            continue
        else:
            ORDER_TRANSITIONS.labels(str(data.get("from", "")), str(data.get("to", ""))).inc()
        _log_order_event(order_id, type_, actor, data)


def _log_order_event(order_id: str, type_: str, actor: str, data: dict[str, Any]) -> None:
    """One line per committed change, readable on its own in a console: the order, from →
    to, and why (the reason, else who moved it)."""
    if type_ == "order_placed":
        total, currency = data.get("total"), str(data.get("currency"))
        # After the commit nothing may raise: an amount in a currency this version does not
        # know (a row older than the ISO check) is shown as stored.
        shown = (
            Money(total, currency).format()
            if isinstance(total, int) and is_currency(currency)
            else f"{total} {currency}"
        )
        order_log.info(
            f"order {order_id} placed: pending, {data.get('lines')} line(s), {shown}",
            order_id=order_id,
            to_status="pending",
            actor=actor,
        )
        return
    before, after, reason = data.get("from"), data.get("to"), data.get("reason")
    order_log.info(
        f"order {order_id} {before} → {after} ({reason or f'by {actor}'})",
        order_id=order_id,
        from_status=before,
        to_status=after,
        reason=reason,
        actor=actor,
    )


@event.listens_for(Session, "after_rollback")
def _forget_noted(session: Session) -> None:
    session.info.pop(_NOTED, None)


# --- outgoing webhooks (issue 15) -----------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter(
    "orderflow_webhook_attempts_total",
    "Webhook delivery attempts, by the receiver's answer (2xx, 4xx, 5xx, error: none)",
    ["result"],
)
WEBHOOK_DELIVERIES = Counter(
    "orderflow_webhook_deliveries_total",
    "Webhook delivery attempts by the delivery's resulting status "
    "(succeeded, failed: retry scheduled, exhausted)",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "orderflow_webhook_attempt_seconds",
    "Time of one webhook POST, answer or timeout",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_DISPATCH_ROUNDS = Counter(
    "orderflow_webhook_dispatch_rounds_total",
    "Rounds of the webhook dispatchers (one transaction each: record what finished, claim "
    "what is due), by whether the round claimed anything",
    ["claimed"],
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "orderflow_webhook_endpoints_disabled_total",
    "Endpoints disabled by the system (410 Gone, or failing for days)",
)
