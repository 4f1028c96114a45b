"""POST /webhooks/stripe with a correctly signed body we cannot use: 400 problem+json that
changes nothing, never a 500 (a 5xx makes Stripe retry for days). The signature is right in
every case here; what is wrong is the JSON (``api.webhook_payloads``) or the event in it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.webhook_payloads import MAX_DEPTH
from orderflow.db import Database
from orderflow.models import Order, OrderEvent, Product, WebhookEvent
from tests.conftest import order_body
from tests.stubs import STRIPE_WEBHOOK_SECRET
from tests.stubs.stripe_server import build_event, fake_payment_intent, sign_payload

PROBLEM_JSON = "application/problem+json"


def _post(api: httpx.Client, raw: bytes) -> httpx.Response:
    return api.post(
        "/webhooks/stripe",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(raw, STRIPE_WEBHOOK_SECRET),
        },
    )


def _nested(depth: int, *, kind: str = "array") -> str:
    """``depth`` levels of ``[…]`` or ``{"a": …}`` around ``0``."""
    if kind == "array":
        return "[" * depth + "0" + "]" * depth
    return '{"a": ' * depth + "0" + "}" * depth


@pytest.fixture
def pending_order(
    customer: httpx.Client, make_product: Callable[..., Product], clean_database: Database
) -> str:
    """A pending order for 1000 usd with no payment yet (no worker runs in these tests)."""
    placed = customer.post("/orders", json=order_body((make_product(price=1000).id, 1)))
    assert placed.status_code == 201, placed.text
    return str(placed.json()["id"])


def _event(order_id: str, **object_changes: Any) -> dict[str, Any]:
    intent = fake_payment_intent("pi_payloads", amount=1000, order_id=order_id)
    intent.update(object_changes)
    return build_event("payment_intent.succeeded", intent, event_id="evt_payloads")


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    target = event
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return event


def _state(database: Database, order_id: str) -> tuple[Any, ...]:
    with database.unit_of_work() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return (
            order.status,
            order.payment_status,
            session.scalar(select(func.count()).select_from(WebhookEvent)),
            session.scalar(select(func.count()).select_from(OrderEvent)),
        )


def _bodies(order_id: str) -> dict[str, bytes]:
    """Each signed body that must be refused, by name."""
    event = _event(order_id)
    deep_metadata = json.dumps(event).replace(
        '"metadata": {', f'"metadata": {{"deep": {_nested(10_000, kind="object")}, ', 1
    )
    bodies: dict[str, Any] = {
        "an empty array": "[]",
        "a string": '"str"',
        "a number": "1",
        "null": "null",
        "true": "true",
        "an array holding the event": json.dumps([event]),
        "10,000-deep arrays": _nested(10_000),
        "10,000-deep objects": _nested(10_000, kind="object"),
        "an event with 10,000-deep metadata": deep_metadata,
        "not UTF-8": b'{"id": "evt_\xff"}',
        "a 5,000-digit number": json.dumps(event).replace(
            '"amount": 1000', '"amount": 1' + "0" * 4999
        ),
        "an empty object": {},
        "no data": _without(event, "data"),
        "no data.object": _without(event, "data", "object"),
        "data.object a string": {**event, "data": {"object": "x"}},
        "data.object an array": {**event, "data": {"object": [["id", "pi_x"]]}},
        "data an array": {**event, "data": []},
        "no id": _without(event, "id"),
        "no type": _without(event, "type"),
        "an intent without an amount": _without(event, "data", "object", "amount"),
        "an intent without a currency": _without(event, "data", "object", "currency"),
        "an intent without an id": _without(event, "data", "object", "id"),
        "an amount as text": _event(order_id, amount="1000"),
        "an amount past BIGINT": _event(order_id, amount=2**63),
        "metadata not an object": _event(order_id, metadata="ord"),
        "a refund without its intent": build_event(
            "charge.refunded", {"id": "ch_1", "amount_refunded": 1000, "currency": "usd"}
        ),
    }
    return {
        name: body
        if isinstance(body, bytes)
        else (body if isinstance(body, str) else json.dumps(body)).encode()
        for name, body in bodies.items()
    }


BODY_NAMES = list(_bodies("ord_x"))


@pytest.mark.parametrize("name", BODY_NAMES)
def test_a_signed_body_we_cannot_use_is_400_and_changes_nothing(
    name: str, api: httpx.Client, pending_order: str, clean_database: Database
) -> None:
    before = _state(clean_database, pending_order)
    answer = _post(api, _bodies(pending_order)[name])
    assert answer.status_code == 400, answer.text[:300]
    assert answer.headers["content-type"] == PROBLEM_JSON
    problem = answer.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == 400
    assert problem["detail"].startswith("invalid webhook")
    assert _state(clean_database, pending_order) == before


def test_the_problem_says_what_is_wrong(api: httpx.Client, pending_order: str) -> None:
    details = {
        name: _post(api, _bodies(pending_order)[name]).json()["detail"]
        for name in ("an empty array", "10,000-deep arrays", "an intent without an amount")
    }
    assert "a JSON object was expected, not an array" in details["an empty array"]
    assert f"nested deeper than {MAX_DEPTH} levels" in details["10,000-deep arrays"]
    assert "data.object.amount" in details["an intent without an amount"]


def test_nesting_up_to_the_limit_is_accepted(api: httpx.Client) -> None:
    """The limit leaves room for real events: an event whose extra field takes the nesting
    to exactly ``MAX_DEPTH`` levels is taken (and an unknown intent ignored); one more
    level is refused."""
    around = 3  # the event, its data, the intent object
    for extra_levels, status in ((MAX_DEPTH - around, 200), (MAX_DEPTH - around + 1, 400)):
        event = build_event(
            "payment_intent.succeeded",
            fake_payment_intent("pi_unknown", amount=1000, order_id="ord_nope"),
            event_id=f"evt_depth_{extra_levels}",
        )
        raw = json.dumps(event).replace(
            '"object": "payment_intent"', f'"extra": {_nested(extra_levels)}', 1
        )
        answer = _post(api, raw.encode())
        assert answer.status_code == status, (extra_levels, answer.text[:300])


def test_brackets_inside_strings_do_not_count(api: httpx.Client) -> None:
    intent = fake_payment_intent("pi_unknown", amount=1000, order_id="ord_nope")
    intent["description"] = "[" * 10_000 + '\\"{' * 100
    raw = json.dumps(build_event("payment_intent.succeeded", intent, event_id="evt_str")).encode()
    answer = _post(api, raw)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json() == {"received": "evt_str", "outcome": "ignored"}
