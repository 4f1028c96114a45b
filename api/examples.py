"""Example bodies for the OpenAPI document: what a request looks like and what the API
answers, consistent with each other (one customer, one product, one order)."""

from __future__ import annotations

from typing import Any

USER_ID = "usr_2b9f4c7d1e8a4f06b3c5d7e9"
PRODUCT_ID = "prod_7f3a1c9e5b2d4a68c0e1f2a3"
ORDER_ID = "ord_5c1e9a7b3d2f4e6a8b0c1d2e"
INTENT_ID = "pi_local_3f9c2a71b0d44e8c9a1f0b2c"
CREATED = "2026-03-14T09:26:53.589793Z"
UPDATED = "2026-03-14T09:26:54.104211Z"

ADDRESS = {
    "name": "Jane Doe",
    "line1": "123 Main St",
    "line2": None,
    "city": "New York",
    "state": "NY",
    "postal_code": "10001",
    "country": "US",
}

USER = {
    "id": USER_ID,
    "email": "jane@example.com",
    "name": "Jane",
    "role": "client",
    "phone": "+14155550123",
    "sms_opt_in": True,
}

TOKENS = {
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c3JfMmI5ZjRjN2QifQ.c2ln",
    "token_type": "bearer",
    "expires_in": 900,
    "refresh_token": "ofr_Zk3xq1V9b8Jm2Lw0Yt7Hc5Rn4Pd6Sa",
}

PRODUCT = {
    "id": PRODUCT_ID,
    "sku": "PEN-001",
    "name": "Fountain pen",
    "description": "Steel nib, refillable.",
    "price": 5025,
    "currency": "usd",
    "stock": 40,
    "active": True,
}

ORDER_REQUEST = {
    "items": [{"product_id": PRODUCT_ID, "quantity": 3}],
    "shipping_address": ADDRESS,
    "payment_method": "pm_card_visa",
}

ORDER = {
    "id": ORDER_ID,
    "customer_id": USER_ID,
    "status": "confirmed",
    "payment_status": "paid",
    "shipping_status": "processing",
    "currency": "usd",
    "subtotal": 15075,
    "total": 15075,
    "items": [
        {
            "product_id": PRODUCT_ID,
            "sku": "PEN-001",
            "name": "Fountain pen",
            "quantity": 3,
            "unit_price": 5025,
            "subtotal": 15075,
        }
    ],
    "shipping_address": ADDRESS,
    "invoice_number": "INV-2026-000001",
    "payment_intent_id": "pi_local_8d2e4f6a0b1c3d5e7f9a1b2c",
    "failure_reason": None,
    "next_action_url": None,
    "captured_amount": 15075,
    "refunded_amount": 0,
    "refundable_amount": 15075,
    "cart_id": None,
    "created_at": CREATED,
    "updated_at": UPDATED,
}

REFUND_REQUEST = {"amount": 5025, "reason": "one pen arrived broken"}
REFUND = {
    "id": "ref_01m8kz3q9c4x7h2v6b5n8t1r0d",
    "order_id": ORDER_ID,
    "amount": 5025,
    "currency": "usd",
    "status": "pending",
    "reason": "one pen arrived broken",
    "created_at": CREATED,
    "updated_at": CREATED,
}

ORDER_CHANGE_REQUEST = {"items": [{"product_id": PRODUCT_ID, "quantity": 2}]}
ADDRESS_CHANGE_REQUEST = {"shipping_address": {**ADDRESS, "line1": "500 Park Ave"}}
CHANGED_ORDER = {
    **ORDER,
    "payment_status": "partially_refunded",
    "subtotal": 10050,
    "total": 10050,
    "items": [{**ORDER["items"][0], "quantity": 2, "subtotal": 10050}],  # type: ignore[index]
    "refunded_amount": 5025,
    "refundable_amount": 10050,
}
CREDIT_NOTE = {
    "number": "CN-2026-000001",
    "order_id": ORDER_ID,
    "refund_id": "ref_01m8kz3q9c4x7h2v6b5n8t1r0d",
    "invoice_number": "INV-2026-000001",
    "amount": 5025,
    "currency": "usd",
    "issued_at": UPDATED,
    "url": f"/api/v1/orders/{ORDER_ID}/credit-notes/CN-2026-000001.pdf",
}

PENDING_ORDER = {
    **ORDER,
    "status": "pending",
    "payment_status": "unpaid",
    "shipping_status": "not_shipped",
    "invoice_number": None,
    "payment_intent_id": None,
    "updated_at": CREATED,
}

AWAITING_ORDER = {
    **PENDING_ORDER,
    "payment_status": "processing",
    "payment_intent_id": INTENT_ID,
    "next_action_url": f"http://127.0.0.1:8000/api/v1/local-payments/{INTENT_ID}",
}

EVENTS = [
    {
        "id": "evt_0a1b2c3d4e5f6a7b8c9d0e1f",
        "type": "order_placed",
        "data": {"total": 15075, "currency": "usd", "lines": 1, "cart_id": None},
        "actor": USER_ID,
        "created_at": CREATED,
    },
    {
        "id": "evt_1b2c3d4e5f6a7b8c9d0e1f2a",
        "type": "stock_reserved",
        "data": {"lines": [{"product_id": PRODUCT_ID, "quantity": 3}]},
        "actor": "system",
        "created_at": "2026-03-14T09:26:53.701200Z",
    },
    {
        "id": "evt_2c3d4e5f6a7b8c9d0e1f2a3b",
        "type": "payment_succeeded",
        "data": {
            "payment_intent_id": "pi_local_8d2e4f6a0b1c3d5e7f9a1b2c",
            "amount": 15075,
            "currency": "usd",
        },
        "actor": "system",
        "created_at": "2026-03-14T09:26:53.802300Z",
    },
    {
        "id": "evt_3d4e5f6a7b8c9d0e1f2a3b4c",
        "type": "status_changed",
        "data": {"from": "pending", "to": "confirmed", "reason": None},
        "actor": "system",
        "created_at": "2026-03-14T09:26:53.802400Z",
    },
]

STRIPE_EVENT = {
    "id": "evt_1PqR2sT3uV4wX5yZ",
    "object": "event",
    "api_version": "2024-06-20",
    "created": 1773480414,
    "type": "payment_intent.succeeded",
    "livemode": False,
    "data": {
        "object": {
            "id": "pi_3PqR2sT3uV4wX5yZ0a1b2c3d",
            "object": "payment_intent",
            "amount": 15075,
            "amount_received": 15075,
            "currency": "usd",
            "status": "succeeded",
            "metadata": {"order_id": ORDER_ID},
        }
    },
}


SHIPMENT_ID = "shp_01m8kxr853w5752qdcxd923w7g"

SHIPMENT_REQUEST = {
    "lines": [{"product_id": PRODUCT_ID, "quantity": 2}],
    "carrier": "usps",
    "tracking_number": "9400100000000000000000",
}

SHIPMENT = {
    "id": SHIPMENT_ID,
    "order_id": ORDER_ID,
    "status": "in_transit",
    "carrier": "usps",
    "service": None,
    "tracking_number": "9400100000000000000000",
    "tracking_url": None,
    "label_url": None,
    "label_status": "none",
    "lines": [{"product_id": PRODUCT_ID, "sku": "PEN-001", "quantity": 2}],
    "events": [
        {
            "status": "in_transit",
            "occurred_at": "2026-03-15T08:00:00Z",
            "location": "Memphis, TN",
            "description": "arrived at the hub",
        }
    ],
    "created_at": CREATED,
    "updated_at": UPDATED,
}

NEW_SHIPMENT = {**SHIPMENT, "status": "label_created", "events": [], "updated_at": CREATED}

TRACKING_EVENT = {
    "status": "in_transit",
    "occurred_at": "2026-03-15T08:00:00Z",
    "location": "Memphis, TN",
    "description": "arrived at the hub",
}

SHIPPO_TRACK_UPDATED = {
    "event": "track_updated",
    "test": False,
    "data": {
        "carrier": "usps",
        "tracking_number": "9400100000000000000000",
        "tracking_status": {"status": "TRANSIT", "status_date": "2026-03-15T08:00:00Z"},
    },
}


RETURN_ID = "ret_01m8m2c7k3p9x4v6b8n2t5r1qd"

RETURN_REQUEST = {"lines": [{"product_id": PRODUCT_ID, "quantity": 1, "reason": "nib bent"}]}

RETURN_LINE = {
    "product_id": PRODUCT_ID,
    "sku": "PEN-001",
    "quantity": 1,
    "reason": "nib bent",
    "received_quantity": None,
    "restock": None,
}

RETURN = {
    "id": RETURN_ID,
    "order_id": ORDER_ID,
    "status": "requested",
    "currency": "usd",
    "lines": [RETURN_LINE],
    "refund_id": None,
    "refund_amount": 0,
    "note": None,
    "requested_by": USER_ID,
    "received_at": None,
    "created_at": CREATED,
    "updated_at": CREATED,
}

RETURN_RECEIVE = {"lines": [{"product_id": PRODUCT_ID, "quantity": 1, "restock": True}]}

RECEIVED_RETURN = {
    **RETURN,
    "status": "received",
    "lines": [{**RETURN_LINE, "received_quantity": 1, "restock": True}],
    "refund_id": REFUND["id"],
    "refund_amount": 5025,
    "received_at": UPDATED,
    "updated_at": UPDATED,
}


def page(*items: dict[str, Any], limit: int = 20, offset: int = 0) -> dict[str, Any]:
    """A list answer holding ``items``."""
    return {"items": list(items), "total": len(items), "limit": limit, "offset": offset}


CART_ID = "cart_6d2f8b4a0c1e3f5a7b9d0e2f"

CART_REQUEST = {"items": [{"product_id": PRODUCT_ID, "quantity": 3}]}

CART = {
    "id": CART_ID,
    "status": "open",
    "currency": "usd",
    "items": [
        {
            "product_id": PRODUCT_ID,
            "sku": "PEN-001",
            "name": "Fountain pen",
            "quantity": 3,
            "unit_price": 5025,
            "subtotal": 15075,
            "in_stock": True,
        }
    ],
    "subtotal": 15075,
    "total": 15075,
    "order_id": None,
    "version": 2,
    "expires_at": "2026-03-21T09:26:54.104211Z",
    "created_at": CREATED,
    "updated_at": UPDATED,
}

CHECKOUT_REQUEST = {
    "cart_id": CART_ID,
    "expected_total": 15075,
    "shipping_address": ADDRESS,
    "payment_method": "pm_card_visa",
}

CART_ORDER = {**PENDING_ORDER, "cart_id": CART_ID}
