"""Which scope an integration key needs for each route. A route missing from ``REQUIRED``
refuses every key (403): the auth routes and ``/api-keys`` (no key manages keys). A key
that has the scope acts as an admin on that route.

One table, so the boundary is reviewed in one place and tested route by route
(``tests/integration/test_api_keys.py`` walks it)."""

from __future__ import annotations

from fastapi import Request

from orderflow.errors import Forbidden
from orderflow.integrations.keys import KeyCaller, Scope

API_PREFIX = "/api/v1"

REQUIRED: dict[tuple[str, str], Scope] = {
    ("GET", "/orders"): Scope.ORDERS_READ,
    ("GET", "/orders/{order_id}"): Scope.ORDERS_READ,
    ("GET", "/orders/{order_id}/events"): Scope.ORDERS_READ,
    ("GET", "/orders/{order_id}/invoice"): Scope.ORDERS_READ,
    ("GET", "/customers/{customer_id}/orders"): Scope.ORDERS_READ,
    ("POST", "/orders"): Scope.ORDERS_WRITE,
    ("PUT", "/orders/{order_id}/status"): Scope.ORDERS_WRITE,
    ("DELETE", "/orders/{order_id}"): Scope.ORDERS_WRITE,
    ("GET", "/orders/{order_id}/returns"): Scope.ORDERS_READ,
    ("GET", "/returns/{return_id}"): Scope.ORDERS_READ,
    ("POST", "/orders/{order_id}/returns"): Scope.ORDERS_WRITE,
    ("POST", "/returns/{return_id}/approve"): Scope.ORDERS_WRITE,
    ("POST", "/returns/{return_id}/reject"): Scope.ORDERS_WRITE,
    ("POST", "/returns/{return_id}/receive"): Scope.ORDERS_WRITE,
    ("POST", "/products"): Scope.PRODUCTS_WRITE,
    ("PATCH", "/products/{product_id}"): Scope.PRODUCTS_WRITE,
    ("DELETE", "/products/{product_id}"): Scope.PRODUCTS_WRITE,
    ("GET", "/events"): Scope.EVENTS_READ,
    ("GET", "/events/{event_id}"): Scope.EVENTS_READ,
    ("POST", "/webhook-endpoints"): Scope.WEBHOOKS_MANAGE,
    ("GET", "/webhook-endpoints"): Scope.WEBHOOKS_MANAGE,
    ("GET", "/webhook-endpoints/{endpoint_id}"): Scope.WEBHOOKS_MANAGE,
    ("PATCH", "/webhook-endpoints/{endpoint_id}"): Scope.WEBHOOKS_MANAGE,
    ("DELETE", "/webhook-endpoints/{endpoint_id}"): Scope.WEBHOOKS_MANAGE,
    ("POST", "/webhook-endpoints/{endpoint_id}/rotate-secret"): Scope.WEBHOOKS_MANAGE,
    ("GET", "/webhook-endpoints/{endpoint_id}/deliveries"): Scope.WEBHOOKS_MANAGE,
    ("POST", "/webhook-endpoints/{endpoint_id}/replay"): Scope.WEBHOOKS_MANAGE,
    ("POST", "/webhook-deliveries/{delivery_id}/retry"): Scope.WEBHOOKS_MANAGE,
}


def route_of(request: Request) -> tuple[str, str]:
    """(method, path template without the ``/api/v1`` prefix) of the matched route."""
    route = request.scope.get("route")
    path = str(getattr(route, "path", request.url.path)).removeprefix(API_PREFIX)
    return request.method, path


def check_scope(request: Request, caller: KeyCaller) -> None:
    method, path = route_of(request)
    needed = REQUIRED.get((method, path))
    if needed is None:
        raise Forbidden(f"integration keys cannot use {method} {path}; log in as an admin")
    if needed not in caller.scopes:
        raise Forbidden(f"this integration key lacks the scope {needed.value}", scope=needed.value)
