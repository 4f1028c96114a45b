"""POST /webhooks/stripe: only correctly signed, fresh events change anything."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select, text

from orderflow.db import Database
from orderflow.models import OrderEvent, Product, User, WebhookEvent
from orderflow.orders import service as orders
from orderflow.orders.repository import OrderRepository
from tests.conftest import place_command
from tests.stubs import STRIPE_WEBHOOK_SECRET
from tests.stubs.stripe_server import fake_payment_intent, sign_payload, signed_event
from tests.system import wait_until


def _post(api: httpx.Client, payload: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return api.post("/webhooks/stripe", content=payload, headers=headers)


def _stored(database: Database) -> int:
    with database.unit_of_work() as session:
        result = session.scalar(select(func.count()).select_from(WebhookEvent)) or 0
        session.commit()
        return result


def _event(**kwargs: object) -> tuple[bytes, str]:
    intent = fake_payment_intent("pi_unknown", amount=1000, order_id="ord_nope")
    return signed_event("payment_intent.succeeded", intent, STRIPE_WEBHOOK_SECRET, **kwargs)  # type: ignore[arg-type]


def test_unknown_intents_are_acknowledged_and_duplicates_ignored(
    api: httpx.Client, database: Database
) -> None:
    payload, signature = _event(event_id="evt_1")
    first = _post(api, payload, signature)
    assert first.status_code == 200
    assert first.json() == {"received": "evt_1", "outcome": "ignored"}
    assert _post(api, payload, signature).json()["outcome"] == "duplicate"
    assert _stored(database) == 1


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda p, s: (p, None), id="no signature"),
        pytest.param(lambda p, s: (p, s.replace("v1=", "v1=0")), id="wrong signature"),
        pytest.param(lambda p, s: (p, sign_payload(p, "whsec_wrong")), id="wrong secret"),
        pytest.param(lambda p, s: (p + b" ", s), id="tampered payload"),
        pytest.param(
            lambda p, s: (p, sign_payload(p, STRIPE_WEBHOOK_SECRET, int(time.time()) - 301)),
            id="stale timestamp",
        ),
        pytest.param(
            lambda p, s: (p, sign_payload(p, STRIPE_WEBHOOK_SECRET, int(time.time()) + 600)),
            id="future timestamp",
        ),
        pytest.param(
            lambda p, s: (b"not json", sign_payload(b"not json", STRIPE_WEBHOOK_SECRET)),
            id="signed garbage",
        ),
        pytest.param(
            lambda p, s: (
                b'{"id": "evt_x"}',
                sign_payload(b'{"id": "evt_x"}', STRIPE_WEBHOOK_SECRET),
            ),
            id="signed non-event",
        ),
    ],
)
def test_unverifiable_webhooks_are_400_and_change_nothing(
    api: httpx.Client,
    database: Database,
    forge: Callable[[bytes, str], tuple[bytes, str | None]],
) -> None:
    payload, signature = forge(*_event())
    answer = _post(api, payload, signature)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert _stored(database) == 0
    with database.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(OrderEvent)) == 0
        session.commit()


def test_a_webhook_waiting_on_a_locked_order_does_not_stop_the_api(
    api: httpx.Client,
    clean_database: Database,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
) -> None:
    """The event is applied in a worker thread: while it waits for the order's row lock
    (held here, as a worker's step would), the event loop answers everyone else."""
    product = make_product(stock=2)
    with clean_database.unit_of_work() as session:
        order_id = orders.place_order(session, place_command(make_user().id, (product.id, 1))).id
        session.commit()
    intent = fake_payment_intent("pi_waiting", amount=1000, order_id=order_id)
    payload, signature = signed_event("payment_intent.succeeded", intent, STRIPE_WEBHOOK_SECRET)
    answers: list[httpx.Response] = []
    with clean_database.unit_of_work() as session:
        OrderRepository(session).lock_for_update(order_id)
        webhook = threading.Thread(target=lambda: answers.append(_post(api, payload, signature)))
        webhook.start()
        wait_until(lambda: _someone_waits_for_a_lock(clean_database), 10)
        for _ in range(3):
            assert api.get("/healthz", timeout=5).status_code == 200
        assert webhook.is_alive()  # still waiting for the lock
    webhook.join(10)
    assert answers[0].status_code == 200, answers[0].text


def _someone_waits_for_a_lock(database: Database) -> bool:
    """Some session waits for a row lock (the webhook's)."""
    with database.unit_of_work() as session:
        waiting = session.scalar(_WAITING_FOR_A_LOCK)
    return bool(waiting)


_WAITING_FOR_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
)
