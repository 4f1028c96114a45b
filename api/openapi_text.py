"""The words of the OpenAPI document that belong to no single route: the API's description
(shown at the top of /docs and /redoc) and one line for each tag."""

from __future__ import annotations

API_DESCRIPTION = """
The intake API of orderflow, an asynchronous order-fulfilment backend. An order is answered
at once (`201`, `status: "pending"`); stock, payment, invoice and e-mails follow in the
background, and the order moves to `confirmed` or `failed` a moment later. The guide with
runnable examples is `docs/api.md` in the repository.

**Authentication.** `POST /api/v1/auth/login` answers an access token (send it as
`Authorization: Bearer <token>`) and also sets it as the HTTP-only cookie `orderflow_access`,
so a browser needs nothing else. Roles: `client` (its own orders only) and `admin`.

**Money** is integer minor units with a lowercase ISO 4217 `currency` (`1500` `usd` is
$15.00). Ids are opaque strings with a type prefix (`ord_`, `prod_`, `usr_`, `evt_`). Times
are RFC 3339 UTC.

**Errors** are RFC 9457 `application/problem+json`: `type`, `title`, `status`, `detail`, and
for a validation error an `errors` list naming each bad field.

**Carts.** A customer may keep a cart on the server (`/carts`) and order it with
`POST /orders {cart_id, …}`: prices are taken at checkout (`expected_total` guards against a
change), and a cart becomes at most one order.

**Idempotency.** `POST /orders` takes an `Idempotency-Key` header: the same key with the
same body answers the first answer again (`Idempotent-Replayed: true`), with another body
`422`, while the first is in flight `409`.

**Rate limits.** Login and order creation answer `429` with `Retry-After` past their limits.

**Lists** answer `{"items": [...], "total", "limit", "offset"}`; `limit` defaults to 20 and
is at most 100.
""".strip()

OPENAPI_TAGS = [
    {"name": "auth", "description": "Register, log in, refresh, log out, change password."},
    {"name": "products", "description": "The catalogue: anyone reads it, admins change it."},
    {
        "name": "orders",
        "description": "Place, read, list, cancel orders; their events and invoice.",
    },
    {
        "name": "carts",
        "description": "A customer's shopping cart, priced live from the catalogue; checked "
        "out with `POST /orders {cart_id}`.",
    },
    {
        "name": "shipments",
        "description": "Ship a confirmed order in one or more shipments, follow them, "
        "record tracking updates, cancel before they are under way.",
    },
    {
        "name": "returns",
        "description": "Customers ask to return shipped units within the return window; "
        "admins approve or reject, then receive them: sellable units back on the shelf once, "
        "the received units refunded at the price paid.",
    },
    {
        "name": "webhooks",
        "description": "Events from the providers: Stripe's (signed) and Shippo's tracking "
        "updates (a secret token in the URL).",
    },
    {
        "name": "local payments",
        "description": "Only with the local payment provider: the page that plays the "
        "customer's part of 3-D Secure.",
    },
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
    {
        "name": "integration keys",
        "description": "Opaque, scoped, revocable bearer keys for machines (ERP, warehouse).",
    },
    {"name": "events", "description": "The event feed: every business fact, oldest first."},
    {
        "name": "webhook endpoints",
        "description": "Outgoing webhooks: endpoints, signed deliveries, replay and retry.",
    },
]
