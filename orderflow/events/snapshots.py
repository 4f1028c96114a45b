"""The subject of an event as the API shows it: an order exactly as ``GET /orders/{id}``
renders it (``api.schemas.orders.OrderOut``; a test holds the two together)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from orderflow.models import Order


def render_order(order: Mapping[str, Any], items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``order`` has the columns of ``orders``; ``items`` the lines in the API's shape."""
    body = {
        "id": order["id"],
        "customer_id": order["customer_id"],
        "status": order["status"],
        "payment_status": order["payment_status"],
        "shipping_status": order["shipping_status"],
        "currency": order["currency"],
        "subtotal": order["subtotal_amount"],
        "total": order["total_amount"],
        "items": [dict(item) for item in items],
        "shipping_address": order["shipping_address"],
        "invoice_number": order["invoice_number"],
        "payment_intent_id": order["payment_intent_id"],
        "failure_reason": order["failure_reason"],
        "captured_amount": order["captured_amount"],
        "refunded_amount": order["refunded_amount"],
        "refundable_amount": order["captured_amount"]
        - order["refunded_amount"]
        - order["refund_pending_amount"],
        "cart_id": order["cart_id"],
        # A link for the customer's browser (3-D Secure with the local provider), made per
        # request by the API; the feed is not where a customer looks for it.
        "next_action_url": None,
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }
    rendered: dict[str, Any] = to_jsonable_python(body)
    return rendered


def render_order_object(order: Order) -> dict[str, Any]:
    """The same for an ``Order`` in hand (the intake's, built from what it wrote)."""
    columns = {name: getattr(order, name) for name in _COLUMNS}
    items = [
        {
            "product_id": line.product_id,
            "sku": line.sku,
            "name": line.name,
            "quantity": line.quantity,
            "unit_price": line.unit_price_amount,
            "subtotal": line.subtotal_amount,
        }
        for line in order.lines
    ]
    return render_order(columns, items)


def read_orders(session: Session, order_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The orders as the API shows them now, in the session's transaction: one statement."""
    rows = session.execute(_READ_ORDERS, {"ids": order_ids}).mappings()
    return {row["id"]: render_order(dict(row), row["items"]) for row in rows}


_COLUMNS = ("id", "customer_id", "status", "payment_status", "shipping_status", "currency",
            "subtotal_amount", "total_amount", "shipping_address", "invoice_number",
            "payment_intent_id", "failure_reason", "captured_amount", "refunded_amount",
            "refund_pending_amount", "cart_id", "created_at", "updated_at")  # fmt: skip
_READ_ORDERS = text(
    f"""
    SELECT {", ".join(f"o.{name}" for name in _COLUMNS)},
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'product_id', l.product_id, 'sku', l.sku, 'name', l.name,
                       'quantity', l.quantity, 'unit_price', l.unit_price_amount,
                       'subtotal', l.subtotal_amount) ORDER BY l.line_no), '[]'::jsonb)
              FROM order_lines l WHERE l.order_id = o.id) AS items
    FROM orders o WHERE o.id IN :ids
    """
).bindparams(bindparam("ids", expanding=True))


def read_shipments(session: Session, shipment_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Shipments as ``GET /shipments/{id}`` shows them now (``api.schemas.shipments``)."""
    rows = session.execute(_READ_SHIPMENTS, {"ids": shipment_ids}).mappings()
    shown = {}
    for row in rows:
        body = dict(row["body"])
        # Times leave PostgreSQL as text; shown as the API shows datetimes.
        for name in ("created_at", "updated_at"):
            body[name] = datetime.fromisoformat(body[name])
        for event in body["events"]:
            event["occurred_at"] = datetime.fromisoformat(event["occurred_at"])
        shown[str(row["id"])] = to_jsonable_python(body)
    return shown


_UTC_TEXT = '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''
_READ_SHIPMENTS = text(
    f"""
    SELECT s.id, jsonb_build_object(
        'id', s.id, 'order_id', s.order_id, 'status', s.status, 'carrier', s.carrier,
        'service', s.service, 'tracking_number', s.tracking_number,
        'tracking_url', s.tracking_url, 'label_url', s.label_url,
        'label_status', s.label_status,
        'lines', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                     'product_id', l.product_id, 'sku', l.sku, 'quantity', l.quantity)
                     ORDER BY l.id), '[]'::jsonb)
                  FROM shipment_lines l WHERE l.shipment_id = s.id),
        'events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'status', e.status,
                      'occurred_at', to_char(e.occurred_at AT TIME ZONE 'UTC', {_UTC_TEXT}),
                      'location', e.location, 'description', e.description)
                      ORDER BY e.occurred_at, e.id), '[]'::jsonb)
                   FROM shipment_events e WHERE e.shipment_id = s.id),
        'created_at', to_char(s.created_at AT TIME ZONE 'UTC', {_UTC_TEXT}),
        'updated_at', to_char(s.updated_at AT TIME ZONE 'UTC', {_UTC_TEXT})
    ) AS body
    FROM shipments s WHERE s.id IN :ids
    """
).bindparams(bindparam("ids", expanding=True))


def read_returns(session: Session, return_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Returns as ``GET /returns/{id}`` shows them now (``api.schemas.returns``)."""
    rows = session.execute(_READ_RETURNS, {"ids": return_ids}).mappings()
    shown = {}
    for row in rows:
        body = dict(row["body"])
        for name in ("created_at", "updated_at", "received_at"):
            if body[name] is not None:
                body[name] = datetime.fromisoformat(body[name])
        shown[str(row["id"])] = to_jsonable_python(body)
    return shown


_READ_RETURNS = text(
    f"""
    SELECT r.id, jsonb_build_object(
        'id', r.id, 'order_id', r.order_id, 'status', r.status, 'currency', r.currency,
        'lines', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                     'product_id', l.product_id, 'sku', l.sku, 'quantity', l.quantity,
                     'reason', l.reason, 'received_quantity', l.received_quantity,
                     'restock', l.restock) ORDER BY l.id), '[]'::jsonb)
                  FROM return_lines l WHERE l.return_id = r.id),
        'refund_id', r.refund_id, 'refund_amount', r.refund_amount, 'note', r.note,
        'requested_by', r.requested_by,
        'received_at', to_char(r.received_at AT TIME ZONE 'UTC', {_UTC_TEXT}),
        'created_at', to_char(r.created_at AT TIME ZONE 'UTC', {_UTC_TEXT}),
        'updated_at', to_char(r.updated_at AT TIME ZONE 'UTC', {_UTC_TEXT})
    ) AS body
    FROM returns r WHERE r.id IN :ids
    """
).bindparams(bindparam("ids", expanding=True))
