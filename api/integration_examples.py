"""Examples of the integration routes' bodies and answers (shown by /docs and /redoc)."""

from __future__ import annotations

from typing import Any

from api import examples as ex

KEY = {
    "id": "key_01m8kspmejhb73y47hrmbdabpv",
    "name": "erp",
    "scopes": ["events:read", "orders:read"],
    "prefix": "ofk_Xq3v9Lk2",
    "created_at": ex.CREATED,
    "last_used_at": None,
    "revoked_at": None,
}
KEY_CREATED = {**KEY, "secret": "ofk_Xq3v9Lk2pT8cW1rZ0aB7mN4sD6fG5hJ3kL9qE2uY8iO"}
EVENT: dict[str, Any] = {
    "id": "evt_01m8kt0gkwbsj7t08y77chtn6c",
    "type": "order.placed",
    "created_at": ex.CREATED,
    "subject": {"type": "order", "id": ex.ORDER_ID},
    "sequence": 1,
    "data": {"id": ex.ORDER_ID, "status": "pending", "…": "the order as GET shows it"},
}
FEED_PAGE = {"items": [EVENT], "next_cursor": "MTIzNDU2OjQy", "has_more": False}
ENDPOINT = {
    "id": "we_01m8kv3f7a9c2d4e6f8g0h1j2k",
    "url": "https://erp.example.com/hooks/orderflow",
    "description": "ERP order sync",
    "event_types": ["order.*", "refund.succeeded"],
    "status": "enabled",
    "disabled_reason": None,
    "created_at": ex.CREATED,
    "updated_at": ex.UPDATED,
}
ENDPOINT_CREATED = {**ENDPOINT, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
DELIVERY = {
    "id": "whd_42",
    "event_id": EVENT["id"],
    "status": "failed",
    "attempts": 2,
    "last_status_code": 503,
    "last_error": "upstream unavailable",
    "next_attempt_at": ex.UPDATED,
    "replay": 0,
    "created_at": ex.CREATED,
    "delivered_at": None,
}
