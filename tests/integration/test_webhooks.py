"""POST /webhooks/stripe: only correctly signed, fresh events change anything."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.models import OrderEvent, WebhookEvent
from tests.stubs import STRIPE_WEBHOOK_SECRET
from tests.stubs.stripe_server import fake_payment_intent, sign_payload, signed_event


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
