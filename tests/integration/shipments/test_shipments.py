"""Shipments through the real API: partial and full, over-shipping, Idempotency-Key, who may
see and do what, cancelling a shipment and an order with shipments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from orderflow.db import Database
from orderflow.models import Product, Shipment, ShipmentLine
from tests.integration.shipments.conftest import ConfirmedOrder

pytestmark = pytest.mark.workers


def _ship(
    admin: httpx.Client, order_id: str, *lines: tuple[str, int], **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = dict(extra)
    if lines:
        body["lines"] = [{"product_id": p, "quantity": q} for p, q in lines]
    return admin.post(f"/orders/{order_id}/shipments", json=body)


def _event(
    admin: httpx.Client, shipment_id: str, status: str, at: str, **extra: Any
) -> httpx.Response:
    return admin.post(
        f"/shipments/{shipment_id}/events", json={"status": status, "occurred_at": at, **extra}
    )


def _order(admin: httpx.Client, order_id: str) -> dict[str, Any]:
    return admin.get(f"/orders/{order_id}").json()


def test_partial_then_full_shipments_drive_the_order_to_delivered(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    mug, tee = make_product(), make_product()
    order = confirmed_order((mug, 3), (tee, 1))
    assert order["shipping_status"] == "processing"

    first = _ship(admin, order["id"], (mug.id, 2), carrier="usps", tracking_number="TRK1")
    assert first.status_code == 201, first.text
    shipment = first.json()
    assert first.headers["location"] == f"/api/v1/shipments/{shipment['id']}"
    assert shipment["id"].startswith("shp_")
    assert (shipment["status"], shipment["carrier"], shipment["tracking_number"]) == (
        "label_created",
        "usps",
        "TRK1",
    )
    assert shipment["lines"] == [{"product_id": mug.id, "sku": mug.sku, "quantity": 2}]
    assert _order(admin, order["id"])["shipping_status"] == "processing"

    assert _event(admin, shipment["id"], "in_transit", "2026-01-02T10:00:00Z").status_code == 201
    after = _order(admin, order["id"])
    assert (after["status"], after["shipping_status"]) == ("confirmed", "partially_shipped")

    rest = _ship(admin, order["id"])  # lines omitted: everything left (1 mug, 1 tee)
    assert rest.status_code == 201, rest.text
    assert sorted(
        (line["product_id"], line["quantity"]) for line in rest.json()["lines"]
    ) == sorted([(mug.id, 1), (tee.id, 1)])
    assert rest.json()["status"] == "pending"
    assert _ship(admin, order["id"]).status_code == 409  # nothing left

    assert _event(admin, rest.json()["id"], "in_transit", "2026-01-02T11:00:00Z").status_code == 201
    after = _order(admin, order["id"])
    assert (after["status"], after["shipping_status"]) == ("shipped", "shipped")

    assert _event(admin, shipment["id"], "delivered", "2026-01-03T10:00:00Z").status_code == 201
    after = _order(admin, order["id"])
    assert (after["status"], after["shipping_status"]) == ("shipped", "partially_delivered")
    assert _event(admin, rest.json()["id"], "delivered", "2026-01-03T12:00:00Z").status_code == 201
    after = customer.get(f"/orders/{order['id']}").json()
    assert (after["status"], after["shipping_status"]) == ("delivered", "delivered")

    moves = [
        (e["data"]["from"], e["data"]["to"])
        for e in admin.get(f"/orders/{order['id']}/events", params={"limit": 100}).json()["items"]
        if e["type"] == "status_changed"
    ]
    assert moves == [("pending", "confirmed"), ("confirmed", "shipped"), ("shipped", "delivered")]
    listed = customer.get(f"/orders/{order['id']}/shipments").json()
    assert [s["id"] for s in listed["items"]] == [shipment["id"], rest.json()["id"]]
    assert listed["total"] == 2
    assert [e["status"] for e in customer.get(f"/shipments/{shipment['id']}").json()["events"]] == [
        "in_transit",
        "delivered",
    ]


def test_over_shipping_is_409_and_writes_nothing(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    make_product: Callable[..., Product],
    database: Database,
) -> None:
    mug, tee = make_product(), make_product()
    order = confirmed_order((mug, 2), (tee, 1))
    answer = _ship(admin, order["id"], (tee.id, 1), (mug.id, 3))
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["product_id"] == mug.id
    assert _ship(admin, order["id"], ("prod_unknown", 1)).status_code == 422
    assert _ship(admin, order["id"], (mug.id, 1), (mug.id, 1)).status_code == 422
    assert _ship(admin, order["id"], (mug.id, 0)).status_code == 422
    assert (
        _ship(admin, order["id"], (mug.id, 1), buy_label=True, tracking_number="X").status_code
        == 422
    )
    with database.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Shipment)) == 0
        assert session.scalar(select(func.count()).select_from(ShipmentLine)) == 0
    assert admin.get(f"/orders/{order['id']}/shipments").json()["total"] == 0


def test_only_confirmed_orders_ship(
    admin: httpx.Client, customer: httpx.Client, make_product: Callable[..., Product]
) -> None:
    from tests.conftest import order_body

    mug = make_product()
    # Waits for the customer's 3-D Secure: pending however quick a worker of the session is.
    body = order_body((mug.id, 1), payment_method="pm_card_authenticationRequired")
    pending = customer.post("/orders", json=body).json()
    assert _ship(admin, pending["id"]).status_code == 409
    assert _ship(admin, "ord_missing").status_code == 404


def test_idempotency_key_replays_the_first_answer(
    confirmed_order: ConfirmedOrder, admin: httpx.Client, make_product: Callable[..., Product]
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 3))
    headers = {"Idempotency-Key": "ship-1"}
    body = {"lines": [{"product_id": mug.id, "quantity": 1}]}
    first = admin.post(f"/orders/{order['id']}/shipments", json=body, headers=headers)
    again = admin.post(f"/orders/{order['id']}/shipments", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    body["lines"][0]["quantity"] = 2
    other = admin.post(f"/orders/{order['id']}/shipments", json=body, headers=headers)
    assert other.status_code == 422
    assert admin.get(f"/orders/{order['id']}/shipments").json()["total"] == 1
    too_long = admin.post(
        f"/orders/{order['id']}/shipments", json=body, headers={"Idempotency-Key": "k" * 256}
    )
    assert too_long.status_code == 400


def test_who_may_see_and_change_shipments(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_user: Callable[..., Any],
    login_as: Callable[..., httpx.Client],
    make_product: Callable[..., Product],
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 1))
    assert _ship(customer, order["id"]).status_code == 403
    shipment = _ship(admin, order["id"]).json()
    stranger = login_as(make_user())
    assert stranger.get(f"/shipments/{shipment['id']}").status_code == 404
    assert stranger.get(f"/orders/{order['id']}/shipments").status_code == 404
    assert customer.get(f"/shipments/{shipment['id']}").status_code == 200
    assert _event(customer, shipment["id"], "in_transit", "2026-01-01T00:00:00Z").status_code == 403
    assert customer.post(f"/shipments/{shipment['id']}/cancel").status_code == 403
    assert admin.get("/shipments/shp_missing").status_code == 404
    assert (
        httpx.get(f"{str(admin.base_url).rstrip('/')}/shipments/{shipment['id']}").status_code
        == 401
    )


def test_cancel_only_before_in_transit_and_lines_ship_again(
    confirmed_order: ConfirmedOrder, admin: httpx.Client, make_product: Callable[..., Product]
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 2))
    first = _ship(admin, order["id"]).json()
    assert _ship(admin, order["id"]).status_code == 409
    cancelled = admin.post(f"/shipments/{first['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert admin.post(f"/shipments/{first['id']}/cancel").status_code == 200  # repeatable
    assert _event(admin, first["id"], "in_transit", "2026-01-01T00:00:00Z").status_code == 201
    assert admin.get(f"/shipments/{first['id']}").json()["status"] == "cancelled"

    second = _ship(admin, order["id"]).json()  # the cancelled one's lines ship again
    assert _event(admin, second["id"], "in_transit", "2026-01-01T00:00:00Z").status_code == 201
    refused = admin.post(f"/shipments/{second['id']}/cancel")
    assert refused.status_code == 409
    assert admin.get(f"/shipments/{second['id']}").json()["status"] == "in_transit"
    assert _order(admin, order["id"])["status"] == "shipped"


def test_an_order_with_a_shipment_under_way_cannot_be_cancelled(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    mug, tee = make_product(), make_product()
    order = confirmed_order((mug, 1), (tee, 1))
    moving = _ship(admin, order["id"], (mug.id, 1)).json()
    _event(admin, moving["id"], "in_transit", "2026-01-01T00:00:00Z")
    assert _order(admin, order["id"])["status"] == "confirmed"  # only part is under way
    refused = customer.delete(f"/orders/{order['id']}")
    assert refused.status_code == 409
    assert _order(admin, order["id"])["status"] == "confirmed"


def test_cancelling_an_order_cancels_its_shipments_not_under_way(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    mug = make_product()
    order = confirmed_order((mug, 1))
    waiting = _ship(admin, order["id"]).json()
    assert customer.delete(f"/orders/{order['id']}").status_code == 204
    assert admin.get(f"/shipments/{waiting['id']}").json()["status"] == "cancelled"
    after = _order(admin, order["id"])
    assert (after["status"], after["shipping_status"]) == ("cancelled", "not_shipped")


def test_shipment_changes_are_business_events_showing_the_shipment_as_get_does(
    confirmed_order: ConfirmedOrder,
    admin: httpx.Client,
    customer: httpx.Client,
    make_product: Callable[..., Product],
) -> None:
    from tests.system import wait_until

    mug = make_product()
    order = confirmed_order((mug, 2))
    first = _ship(admin, order["id"], (mug.id, 1)).json()
    admin.post(f"/shipments/{first['id']}/cancel")
    second = _ship(admin, order["id"]).json()
    _event(admin, second["id"], "in_transit", "2026-01-02T10:00:00.5Z")
    _event(admin, second["id"], "delivered", "2026-01-03T10:00:00Z")

    def events_of(subject: str) -> list[dict[str, Any]]:
        items = admin.get("/events", params={"types": "shipment.*", "limit": 100}).json()["items"]
        return [e for e in items if e["subject"]["id"] == subject]

    wait_until(lambda: len(events_of(second["id"])) == 3, 30)
    assert [(e["type"], e["sequence"]) for e in events_of(first["id"])] == [
        ("shipment.created", 1),
        ("shipment.updated", 2),
    ]
    latest = events_of(second["id"])
    assert [e["type"] for e in latest] == [
        "shipment.created",
        "shipment.updated",
        "shipment.delivered",
    ]
    assert latest[-1]["subject"] == {"type": "shipment", "id": second["id"]}
    assert latest[-1]["data"] == customer.get(f"/shipments/{second['id']}").json()
    assert events_of(first["id"])[-1]["data"]["status"] == "cancelled"


def test_a_parcel_delivered_while_another_has_not_left_keeps_the_order_confirmed(
    confirmed_order: ConfirmedOrder, admin: httpx.Client, make_product: Callable[..., Product]
) -> None:
    """``partially_delivered`` is not "every unit under way": the order ships (status and
    e-mail) only once the last parcel leaves."""
    mug = make_product()
    order = confirmed_order((mug, 2))
    first = _ship(admin, order["id"], (mug.id, 1)).json()
    assert _event(admin, first["id"], "in_transit", "2026-01-02T10:00:00Z").status_code == 201
    assert _event(admin, first["id"], "delivered", "2026-01-03T10:00:00Z").status_code == 201
    after = _order(admin, order["id"])
    assert (after["status"], after["shipping_status"]) == ("confirmed", "partially_delivered")

    rest = _ship(admin, order["id"]).json()
    assert _event(admin, rest["id"], "in_transit", "2026-01-03T11:00:00Z").status_code == 201
    after = _order(admin, order["id"])
    assert (after["status"], after["shipping_status"]) == ("shipped", "partially_delivered")
    assert _event(admin, rest["id"], "delivered", "2026-01-04T11:00:00Z").status_code == 201
    after = _order(admin, order["id"])
    assert (after["status"], after["shipping_status"]) == ("delivered", "delivered")
    moves = [
        (e["data"]["from"], e["data"]["to"])
        for e in admin.get(f"/orders/{order['id']}/events", params={"limit": 100}).json()["items"]
        if e["type"] == "status_changed"
    ]
    assert moves == [("pending", "confirmed"), ("confirmed", "shipped"), ("shipped", "delivered")]
