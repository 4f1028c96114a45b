"""Business events: written in the transaction of the change (none for a rolled-back one),
gapless per-subject sequences, ``data`` as GET shows the subject, the timeline and the feed
in agreement; the feed's paging, filters and access; retention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from orderflow.audit import audit
from orderflow.db import Database
from orderflow.events import feed
from orderflow.events.types import EventType, fact_of, matches
from orderflow.fulfilment import moves
from orderflow.models import Product, User
from orderflow.orders import service as orders
from orderflow.orders.state import OrderStatus
from tests.conftest import order_body, place_command
from tests.system import wait_until

ADMIN = orders.Viewer(user_id="usr_admin", is_admin=True)


def _feed_of(client: httpx.Client, count: int, **params: Any) -> list[dict[str, Any]]:
    """The feed once it holds ``count`` events. The feed serves an event once every
    transaction older than its own has ended, in the whole PostgreSQL cluster: on a server
    shared with other test runs that may take a moment."""
    seen: list[dict[str, Any]] = []

    def complete() -> bool:
        seen[:] = _feed(client, **params)
        return len(seen) >= count

    wait_until(complete, 30)
    return seen


def _feed(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every event of the feed (as far as it is visible now), paging with the cursor."""
    items: list[dict[str, Any]] = []
    after = None
    while True:
        query = {**params, **({"after": after} if after else {})}
        page = client.get("/events", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        after = body["next_cursor"]
        if not body["has_more"]:
            return items


def test_placing_an_order_writes_order_placed_as_get_shows_it(
    admin: httpx.Client, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    placed = customer.post("/orders", json=order_body((make_product().id, 2))).json()
    (event,) = _feed_of(admin, 1)
    assert event["type"] == "order.placed"
    assert event["subject"] == {"type": "order", "id": placed["id"]}
    assert event["sequence"] == 1
    assert event["id"].startswith("evt_")
    assert event["data"] == placed == customer.get(f"/orders/{placed['id']}").json()
    assert admin.get(f"/events/{event['id']}").json() == event
    timeline = customer.get(f"/orders/{placed['id']}/events").json()["items"]
    assert [entry["id"] for entry in timeline] == [event["id"]]


def test_each_change_is_one_event_with_the_next_sequence(
    admin: httpx.Client, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    order_id = customer.post("/orders", json=order_body((make_product().id, 1))).json()["id"]
    assert customer.delete(f"/orders/{order_id}").status_code == 204
    assert customer.delete(f"/orders/{order_id}").status_code == 204  # changes nothing
    events = _feed_of(admin, 2)
    assert [(e["type"], e["sequence"]) for e in events] == [
        ("order.placed", 1),
        ("order.cancelled", 2),
    ]
    assert events[1]["data"] == customer.get(f"/orders/{order_id}").json()
    assert events[1]["data"]["status"] == "cancelled"


def test_a_rolled_back_change_leaves_no_event(
    clean_database: Database, make_user: Callable[..., User], make_product: Callable[..., Product]
) -> None:
    customer, product = make_user(), make_product()

    def fail_after(change: Callable[[Session], object]) -> None:
        with clean_database.unit_of_work() as session:
            change(session)
            raise RuntimeError("the change fails after its event was noted")

    with pytest.raises(RuntimeError):
        fail_after(lambda s: orders.place_order(s, place_command(customer.id, (product.id, 1))))
    with clean_database.unit_of_work() as session:
        order = orders.place_order(session, place_command(customer.id, (product.id, 1)))
        session.commit()
    with pytest.raises(RuntimeError):
        fail_after(lambda s: moves.cancel_order(s, order.id, ADMIN))
    with clean_database.unit_of_work() as session:
        moves.cancel_order(session, order.id, ADMIN)
        session.commit()
    with clean_database.unit_of_work() as session:
        events = session.execute(text("SELECT type, sequence FROM events ORDER BY position"))
        # The rolled-back cancel took no sequence number: the committed one is 2.
        assert [tuple(row) for row in events] == [("order.placed", 1), ("order.cancelled", 2)]


def test_the_timeline_and_the_feed_agree(
    admin: httpx.Client, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product()
    ids = [customer.post("/orders", json=order_body((product.id, 1))).json()["id"] for _ in "ab"]
    customer.delete(f"/orders/{ids[0]}")
    feed_ids = {e["id"]: e["type"] for e in _feed_of(admin, 3)}
    timeline = [
        entry
        for order_id in ids
        for entry in admin.get(f"/orders/{order_id}/events").json()["items"]
    ]
    expected = {}
    for entry in timeline:
        fact = fact_of("ord_x", entry["type"], entry["data"])
        if fact is not None:
            expected[entry["id"]] = fact.type.value
    assert feed_ids == expected


def test_paging_filters_and_cursor_reuse(
    admin: httpx.Client, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    product = make_product()
    ids = [
        customer.post("/orders", json=order_body((product.id, 1))).json()["id"] for _ in range(5)
    ]
    for order_id in ids[:2]:
        customer.delete(f"/orders/{order_id}")
    _feed_of(admin, 7)
    first = admin.get("/events", params={"limit": 3}).json()
    assert len(first["items"]) == 3
    assert first["has_more"] is True
    rest = admin.get("/events", params={"limit": 100, "after": first["next_cursor"]}).json()
    assert rest["has_more"] is False
    assert len(rest["items"]) == 4
    all_ids = [e["id"] for e in first["items"] + rest["items"]]
    assert len(set(all_ids)) == 7
    # The last cursor may be reused later: it continues after what was seen.
    again = admin.get("/events", params={"after": rest["next_cursor"]}).json()
    assert again == {"items": [], "next_cursor": rest["next_cursor"], "has_more": False}
    customer.delete(f"/orders/{ids[2]}")
    later: dict[str, Any] = {}

    def arrived() -> bool:
        later.update(admin.get("/events", params={"after": rest["next_cursor"]}).json())
        return bool(later["items"])

    wait_until(arrived, 30)
    assert [e["type"] for e in later["items"]] == ["order.cancelled"]

    assert {e["type"] for e in _feed(admin, types="order.cancelled")} == {"order.cancelled"}
    assert len(_feed(admin, types="order.*")) == 8
    assert len(_feed(admin, types="order.placed,order.cancelled")) == 8
    assert _feed(admin, types="payment.*,invoice.generated") == []
    assert len(_feed(admin, types="*")) == 8


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "LTE6LTE"}, "after"),
        ({"types": "order.exploded"}, "types"),
        ({"types": "orders.*"}, "types"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
    ],
)
def test_bad_feed_parameters_are_422(
    admin: httpx.Client, params: dict[str, Any], field: str
) -> None:
    answer = admin.get("/events", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in answer.json()["detail"] or field in str(answer.json()["errors"])


def test_only_admins_read_the_feed(api: httpx.Client, customer: httpx.Client) -> None:
    assert customer.get("/events").status_code == 403
    assert customer.get("/events/evt_x").status_code == 403
    assert api.get("/events").status_code == 401


def test_an_unknown_event_is_404(admin: httpx.Client) -> None:
    assert admin.get("/events/evt_missing").status_code == 404


def test_old_events_are_purged_in_batches(
    clean_database: Database, make_user: Callable[..., User], make_product: Callable[..., Product]
) -> None:
    customer, product = make_user(), make_product()
    for _ in range(5):
        with clean_database.unit_of_work() as session:
            orders.place_order(session, place_command(customer.id, (product.id, 1)))
            session.commit()
    with clean_database.unit_of_work() as session:
        session.execute(
            text(
                "UPDATE events SET created_at = now() - interval '31 days' "
                "WHERE id IN (SELECT id FROM events ORDER BY position LIMIT 3)"
            )
        )
        session.commit()
    with clean_database.unit_of_work() as session:
        assert feed.purge_older_than(session, days=30, batch=2) == 2
        assert feed.purge_older_than(session, days=30, batch=2) == 1
        assert feed.purge_older_than(session, days=30, batch=2) == 0
        assert session.scalar(text("SELECT count(*) FROM events")) == 2


def test_type_patterns() -> None:
    assert matches("order.placed", ["order.*"])
    assert matches("order.placed", ["*"])
    assert not matches("payment.failed", ["order.*", "refund.succeeded"])
    assert {t.value.split(".")[0] for t in EventType} == {
        "order", "payment", "invoice", "refund", "shipment", "return"
    }  # fmt: skip
    assert OrderStatus.CANCELLED.value == "cancelled"


def test_the_audit_checks_promise_8(
    clean_database: Database, make_user: Callable[..., User], make_product: Callable[..., Product]
) -> None:
    customer, product = make_user(), make_product()
    with clean_database.unit_of_work() as session:
        order = orders.place_order(session, place_command(customer.id, (product.id, 1)))
        session.commit()
    with clean_database.unit_of_work() as session:
        moves.cancel_order(session, order.id, ADMIN)
        session.commit()
    with clean_database.unit_of_work() as session:
        before = {violation.check for violation in audit(session)}
        session.execute(text("DELETE FROM events WHERE sequence = 2"))
        after = {violation.check for violation in audit(session)}
        session.rollback()
    # (no worker ran: the cancellation e-mail is owed, an eventual check)
    assert before == {"status_email_sent"}
    assert after - before == {"fact_has_event", "event_sequence_gapless"}
