"""Hostile callers: nobody reaches what is not theirs, no forged or stale token opens a door,
injected and oversized text is refused or stored verbatim (never a 5xx, never a partial
write), and no answer (body, Location, other headers) or log line gives away a secret.

Routes and fields come from the app's OpenAPI spec, so a new route or field is covered (or
fails ``test_every_route_is_classified`` until someone says who may call it).

Covered elsewhere, not repeated here: refresh-token reuse after rotation revoking the whole
session (``test_auth.test_refresh_rotates_and_reuse_revokes_the_whole_session``), webhook
signatures and replays beyond the 300 s tolerance
(``test_webhooks.test_unverifiable_webhooks_are_400_and_change_nothing``), signed webhook
bodies that are not a usable event (``test_webhook_payloads``), pages of other sites riding
the auth cookie (CSRF) and CORS (``test_cross_origin``).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from sqlalchemy import text

from orderflow.auth import service as auth
from orderflow.db import Database
from orderflow.models import Base
from orderflow.settings import Settings
from tests.conftest import ADMIN_PASSWORD, PASSWORD, order_body
from tests.fuzz.harness import FuzzWorld, build_world, served_spec
from tests.stubs import STRIPE_WEBHOOK_SECRET
from tests.stubs.stripe_server import fake_payment_intent, sign_payload, signed_event

SPEC = served_spec()
PREFIX = "/api/v1"
PROBLEM_JSON = "application/problem+json"

Route = tuple[str, str]  # (METHOD, path template as in the spec)


def _operations() -> dict[Route, dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
    }


OPERATIONS = _operations()
AUTHENTICATED = sorted(route for route, op in OPERATIONS.items() if op.get("security"))
WITH_AN_ID = sorted(route for route in OPERATIONS if "{" in route[1])

#: Routes whose resource belongs to a customer: anyone else is told it does not exist.
OWNER_ROUTES: set[Route] = {
    ("GET", f"{PREFIX}/orders/{{order_id}}"),
    ("DELETE", f"{PREFIX}/orders/{{order_id}}"),
    ("GET", f"{PREFIX}/orders/{{order_id}}/events"),
    ("GET", f"{PREFIX}/orders/{{order_id}}/invoice"),
    ("GET", f"{PREFIX}/orders/{{order_id}}/refunds"),
    ("PATCH", f"{PREFIX}/orders/{{order_id}}"),
    ("GET", f"{PREFIX}/orders/{{order_id}}/credit-notes"),
    ("GET", f"{PREFIX}/orders/{{order_id}}/credit-notes/{{number}}.pdf"),
    ("GET", f"{PREFIX}/customers/{{customer_id}}/orders"),
    ("GET", f"{PREFIX}/carts/{{cart_id}}"),
    ("DELETE", f"{PREFIX}/carts/{{cart_id}}"),
    ("PUT", f"{PREFIX}/carts/{{cart_id}}/items/{{product_id}}"),
    ("DELETE", f"{PREFIX}/carts/{{cart_id}}/items/{{product_id}}"),
    ("GET", f"{PREFIX}/orders/{{order_id}}/shipments"),
    ("GET", f"{PREFIX}/shipments/{{shipment_id}}"),
    ("GET", f"{PREFIX}/shipments/{{shipment_id}}/label"),
    ("GET", f"{PREFIX}/orders/{{order_id}}/returns"),
    ("POST", f"{PREFIX}/orders/{{order_id}}/returns"),
    ("GET", f"{PREFIX}/returns/{{return_id}}"),
}
#: Owner routes the world has no real id for: a return needs an order delivered to its
#: customer (``tests/integration/returns`` shows the owner reads theirs; here, only that
#: nobody else does).
WITHOUT_A_REAL_ID: set[Route] = {("GET", f"{PREFIX}/returns/{{return_id}}")}
#: Routes only an admin may call: a client is refused (403).
ADMIN_ROUTES: set[Route] = {
    ("POST", f"{PREFIX}/products"),
    ("PATCH", f"{PREFIX}/products/{{product_id}}"),
    ("DELETE", f"{PREFIX}/products/{{product_id}}"),
    ("PUT", f"{PREFIX}/orders/{{order_id}}/status"),
    ("POST", f"{PREFIX}/orders/{{order_id}}/refunds"),
    # Integration keys: logged-in admins only (keys are refused, test_api_keys).
    ("POST", f"{PREFIX}/api-keys"),
    ("GET", f"{PREFIX}/api-keys"),
    ("DELETE", f"{PREFIX}/api-keys/{{key_id}}"),
    # The event feed and outgoing webhooks: admins and keys with the scope.
    ("GET", f"{PREFIX}/events"),
    ("GET", f"{PREFIX}/events/{{event_id}}"),
    ("POST", f"{PREFIX}/webhook-endpoints"),
    ("GET", f"{PREFIX}/webhook-endpoints"),
    ("GET", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}"),
    ("PATCH", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}"),
    ("DELETE", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}"),
    ("POST", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}/rotate-secret"),
    ("GET", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}/deliveries"),
    ("POST", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}/replay"),
    ("POST", f"{PREFIX}/webhook-deliveries/{{delivery_id}}/retry"),
    ("POST", f"{PREFIX}/orders/{{order_id}}/shipments"),
    ("POST", f"{PREFIX}/shipments/{{shipment_id}}/events"),
    ("POST", f"{PREFIX}/shipments/{{shipment_id}}/cancel"),
    ("POST", f"{PREFIX}/returns/{{return_id}}/approve"),
    ("POST", f"{PREFIX}/returns/{{return_id}}/receive"),
    ("POST", f"{PREFIX}/returns/{{return_id}}/reject"),
}
#: Routes anyone may call, knowingly.
PUBLIC_ROUTES: set[Route] = {
    ("POST", f"{PREFIX}/auth/register"),
    ("POST", f"{PREFIX}/auth/login"),
    ("POST", f"{PREFIX}/auth/refresh"),  # authenticated by the refresh token it carries
    ("GET", f"{PREFIX}/products"),
    ("GET", f"{PREFIX}/products/{{product_id}}"),
    ("POST", f"{PREFIX}/webhooks/stripe"),  # authenticated by its signature
    # Local payment provider only: like Stripe's hosted 3-D Secure page, the intent id is
    # the key; it plays a bank that does not exist in production.
    ("GET", f"{PREFIX}/local-payments/{{intent_id}}"),
    ("POST", f"{PREFIX}/local-payments/{{intent_id}}/complete"),
    ("POST", f"{PREFIX}/local-payments/{{intent_id}}/fail"),
    ("POST", f"{PREFIX}/webhooks/shippo"),  # authenticated by the secret token in its URL
    ("GET", f"{PREFIX}/healthz"),
    ("GET", f"{PREFIX}/readyz"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", f"{PREFIX}/metrics"),  # for Prometheus: counts, never ids or secrets
    ("GET", "/metrics"),
}
#: Every other route: any logged-in caller, acting on their own things.
SELF_ROUTES: set[Route] = {
    ("POST", f"{PREFIX}/auth/logout"),
    ("PUT", f"{PREFIX}/auth/password"),
    ("GET", f"{PREFIX}/auth/me"),
    ("PATCH", f"{PREFIX}/auth/me"),
    ("POST", f"{PREFIX}/orders"),
    ("GET", f"{PREFIX}/orders"),
    ("POST", f"{PREFIX}/carts"),
}


def test_every_route_is_classified() -> None:
    """A new route fails here until it is placed (and so tested) below."""
    classes = [OWNER_ROUTES, ADMIN_ROUTES, PUBLIC_ROUTES, SELF_ROUTES]
    assert set().union(*classes) == set(OPERATIONS)
    assert sum(map(len, classes)) == len(OPERATIONS), "a route is in two classes"
    assert set(AUTHENTICATED) == OPERATIONS.keys() - PUBLIC_ROUTES
    assert {route for route in WITH_AN_ID if route not in PUBLIC_ROUTES} <= (
        OWNER_ROUTES | ADMIN_ROUTES
    )


# --- the world and its callers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def world(api_url: str, settings: Settings, database: Database) -> FuzzWorld:
    """A client ("victim") with orders in every status (one invoiced) and carts, another
    client, an admin, products (see ``tests.fuzz.harness.build_world``)."""
    return build_world(api_url, settings, database)


def _no_secret(secrets: list[str]) -> Callable[[httpx.Response], None]:
    def check(response: httpx.Response) -> None:
        response.read()
        sent = _passwords_in(response.request)
        answer = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        for secret in [*secrets, *sent]:
            assert secret not in answer, (
                f"{response.request.method} {response.request.url.path} answered with a secret"
            )

    return check


def _passwords_in(request: httpx.Request) -> list[str]:
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    return [
        value
        for key, value in body.items()
        if "password" in key and isinstance(value, str) and len(value) >= 8
    ]


@pytest.fixture(scope="module")
def secrets(settings: Settings) -> list[str]:
    return [settings.jwt_secret.get_secret_value(), PASSWORD, ADMIN_PASSWORD, STRIPE_WEBHOOK_SECRET]


@pytest.fixture(scope="module")
def callers(world: FuzzWorld, secrets: list[str]) -> Iterator[dict[str, httpx.Client]]:
    """HTTP clients of the root URL: anonymous, the victim, another client, the admin. Every
    answer any of them gets is checked for secrets."""
    clients = {}
    for role in ("anonymous", "client", "other", "admin"):
        headers = {} if role == "anonymous" else world.headers(role)
        clients[role] = httpx.Client(
            base_url=world.api_url,
            headers=headers,
            timeout=30,
            event_hooks={"response": [_no_secret(secrets)]},
        )
    yield clients
    for client in clients.values():
        client.close()


@dataclass(frozen=True)
class Target:
    """A route with real ids of the victim's things filled in, and a valid body."""

    method: str
    url: str
    body: Any


def _target(world: FuzzWorld, route: Route, order: str | None = None) -> Target:
    method, path = route
    pending, confirmed_and_invoiced = world.orders[0], world.orders[1]
    if order is None:
        order = confirmed_and_invoiced if method == "GET" else pending
    url = path.format(
        order_id=order,
        product_id=world.products[0],
        customer_id=world.users["client"].id,
        intent_id="pi_local_000000000000000000000000",
        cart_id=world.carts[0],
        key_id="key_missing",
        event_id="evt_missing",
        endpoint_id="we_missing",
        delivery_id="whd_1",
        shipment_id=world.shipments[0],
        number=world.credit_notes[0],
        return_id="ret_missing",
    )
    return Target(method, url, valid_bodies(world).get(route))


def valid_bodies(world: FuzzWorld) -> dict[Route, Any]:
    """A valid body for every route that takes one, so a refusal is never about the body."""
    return {
        ("POST", f"{PREFIX}/auth/register"): {
            "email": "newcomer@example.com",
            "password": "a-good-password-9",
            "name": "New Comer",
        },
        ("POST", f"{PREFIX}/auth/login"): {
            "email": world.users["client"].email,
            "password": "not-the-password-1",
        },
        ("POST", f"{PREFIX}/auth/refresh"): {"refresh_token": "not-a-refresh-token"},
        ("PATCH", f"{PREFIX}/auth/me"): {
            "name": "Jane",
            "phone": "+14155550123",
            "sms_opt_in": True,
        },
        ("PUT", f"{PREFIX}/auth/password"): {
            "current_password": PASSWORD,
            "new_password": "another-password-7",
        },
        ("POST", f"{PREFIX}/products"): {
            "sku": "SEC-1",
            "name": "Security product",
            "description": "made by test_security",
            "price": 1234,
            "currency": "usd",
            "stock": 5,
        },
        ("PATCH", f"{PREFIX}/products/{{product_id}}"): {
            "name": "Renamed",
            "description": "changed",
            "sku": "SEC-2",
            "currency": "usd",
            "price": 999,
            "stock": 7,
        },
        ("POST", f"{PREFIX}/orders"): order_body((world.products[0], 1)),
        ("PUT", f"{PREFIX}/orders/{{order_id}}/status"): {"status": "shipped"},
        # The pending order's one line at the quantity it has: only the address changes.
        ("PATCH", f"{PREFIX}/orders/{{order_id}}"): {
            "shipping_address": {**order_body()["shipping_address"], "line1": "1 Changed St"},
            "items": [{"product_id": world.products[0], "quantity": 1}],
        },
        ("POST", f"{PREFIX}/orders/{{order_id}}/refunds"): {"amount": 1, "reason": "damaged"},
        ("POST", f"{PREFIX}/carts"): {"items": [{"product_id": world.products[0], "quantity": 1}]},
        ("PUT", f"{PREFIX}/carts/{{cart_id}}/items/{{product_id}}"): {"quantity": 2},
        ("POST", f"{PREFIX}/api-keys"): {"name": "security", "scopes": ["orders:read"]},
        ("POST", f"{PREFIX}/webhook-endpoints"): {
            "url": "https://93.184.216.34/hooks",
            "event_types": ["order.*"],
            "description": "made by test_security",
        },
        ("PATCH", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}"): {
            "url": "https://93.184.216.34/other",
            "event_types": ["payment.*"],
            "description": "changed",
            "status": "paused",
        },
        ("POST", f"{PREFIX}/webhook-endpoints/{{endpoint_id}}/replay"): {
            "since": "2026-01-01T00:00:00Z",
            "until": "2026-01-02T00:00:00Z",
            "types": ["order.placed"],
        },
        ("POST", f"{PREFIX}/orders/{{order_id}}/shipments"): {
            "lines": [{"product_id": world.products[0], "quantity": 1}],
            "carrier": "usps",
            "service": "priority",
            "tracking_number": "9400100000000000000000",
            "tracking_url": "https://tools.usps.com/go/TrackConfirmAction",
        },
        ("POST", f"{PREFIX}/orders/{{order_id}}/returns"): {
            "lines": [{"product_id": world.products[0], "quantity": 1, "reason": "broken"}],
        },
        ("POST", f"{PREFIX}/returns/{{return_id}}/receive"): {
            "lines": [{"product_id": world.products[0], "quantity": 1, "restock": True}],
        },
        ("POST", f"{PREFIX}/returns/{{return_id}}/reject"): {"reason": "worn"},
        # Dated before the label: recorded in the history, moving nothing.
        ("POST", f"{PREFIX}/shipments/{{shipment_id}}/events"): {
            "status": "in_transit",
            "occurred_at": "2020-01-01T00:00:00Z",
            "location": "Memphis, TN",
            "description": "arrived at the hub",
        },
    }


def test_every_route_with_a_body_has_a_valid_one(world: FuzzWorld) -> None:
    with_body = {route for route, op in OPERATIONS.items() if "requestBody" in op}
    webhooks = {
        ("POST", f"{PREFIX}/webhooks/stripe"),  # raw signed bytes, tested below
        ("POST", f"{PREFIX}/webhooks/shippo"),  # authenticated by its URL's token, not a body
    }
    assert with_body - webhooks == set(valid_bodies(world))


@pytest.mark.parametrize(
    "route", sorted(r for r in OPERATIONS if "requestBody" in OPERATIONS[r]), ids=" ".join
)
def test_unknown_body_fields_are_refused_everywhere(
    route: Route, world: FuzzWorld, callers: dict[str, httpx.Client], database: Database
) -> None:
    target = _target(world, route)
    if target.body is None:
        pytest.skip("takes raw signed bytes")
    before = _row_counts(database)
    answer = callers[_caller(route)].request(
        target.method, target.url, json={**target.body, "is_admin": True}
    )
    _assert_problem(answer, 422)
    assert "is_admin" in [error["field"] for error in answer.json()["errors"]]
    assert _row_counts(database) == before


def _send(client: httpx.Client, target: Target, **kwargs: Any) -> httpx.Response:
    return client.request(target.method, target.url, json=target.body, **kwargs)


def _assert_problem(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, (answer.request.url.path, answer.text[:300])
    assert answer.headers["content-type"] == PROBLEM_JSON
    body = answer.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status


def _row_counts(database: Database) -> dict[str, int]:
    """Every table's row count, in one query."""
    tables = [table.name for table in Base.metadata.sorted_tables]
    columns = ", ".join(f"(SELECT count(*) FROM {name}) AS {name}" for name in tables)
    with database.unit_of_work() as session:
        result = dict(session.execute(text(f"SELECT {columns}")).mappings().one())
        session.commit()
        return result


def _snapshot(database: Database, world: FuzzWorld) -> tuple[Any, ...]:
    """Row counts plus the victim's orders' and the first product's state."""
    with database.unit_of_work() as session:
        orders = session.execute(
            text("SELECT id, status, payment_status FROM orders WHERE id = ANY(:ids) ORDER BY id"),
            {"ids": world.orders},
        ).all()
        product = session.execute(
            text("SELECT sku, name, price_amount, stock, active FROM products WHERE id = :id"),
            {"id": world.products[0]},
        ).one()
        session.commit()
    return (_row_counts(database), tuple(orders), tuple(product))


# --- who may reach what ----------------------------------------------------------------------


@pytest.mark.parametrize("route", sorted(OWNER_ROUTES), ids=" ".join)
def test_another_clients_things_do_not_exist_for_a_client(
    route: Route, world: FuzzWorld, callers: dict[str, httpx.Client], database: Database
) -> None:
    target = _target(world, route)
    if target.method == "GET" and route not in WITHOUT_A_REAL_ID:  # the owner reaches it
        assert _send(callers["client"], target).status_code == 200
    before = _snapshot(database, world)
    _assert_problem(_send(callers["other"], target), 404)
    assert _snapshot(database, world) == before


@pytest.mark.parametrize("route", sorted(ADMIN_ROUTES), ids=" ".join)
@pytest.mark.parametrize("who", ["client", "other"])
def test_admin_routes_are_forbidden_to_clients(
    route: Route, who: str, world: FuzzWorld, callers: dict[str, httpx.Client], database: Database
) -> None:
    """Even the order's owner may not ship it, and no client touches the catalogue."""
    before = _snapshot(database, world)
    _assert_problem(_send(callers[who], _target(world, route)), 403)
    assert _snapshot(database, world) == before


@pytest.mark.parametrize("route", AUTHENTICATED, ids=" ".join)
def test_strangers_are_asked_to_log_in(
    route: Route, world: FuzzWorld, callers: dict[str, httpx.Client], database: Database
) -> None:
    before = _snapshot(database, world)
    answer = _send(callers["anonymous"], _target(world, route))
    _assert_problem(answer, 401)
    assert answer.headers["www-authenticate"] == "Bearer"
    assert _snapshot(database, world) == before


# --- forged, stale and orphaned tokens -------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def bad_tokens(
    world: FuzzWorld, settings: Settings, database: Database, api_url: str
) -> dict[str, str]:
    """Tokens that must open nothing, each built from a real one."""
    secret = settings.jwt_secret.get_secret_value()
    real = world.tokens["client"]
    claims = jwt.decode(real, options={"verify_signature": False})
    logged_out = world.fresh_token("client")
    httpx.post(
        f"{api_url}{PREFIX}/auth/logout", headers={"Authorization": f"Bearer {logged_out}"}
    ).raise_for_status()
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong key": jwt.encode(claims, "a-different-secret-of-32-bytes-or-more!", "HS256"),
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 1}, secret, "HS256"),
        "not an access token": jwt.encode({**claims, "typ": "refresh"}, secret, "HS256"),
        "someone else's id": jwt.encode({**claims, "sub": world.users["admin"].id}, secret),
        "logged out": logged_out,
        "deleted user": _orphan(world, database),
    }


def _orphan(world: FuzzWorld, database: Database) -> str:
    """A valid token of a user who is then deleted."""
    with database.unit_of_work() as session:
        doomed = auth.register_user(
            session, f"doomed-{uuid.uuid4().hex[:8]}@example.com", PASSWORD, None
        )
        session.commit()
    world.users["doomed"] = doomed
    token = world.fresh_token("doomed")
    with database.unit_of_work() as session:
        session.execute(text("DELETE FROM users WHERE id = :id"), {"id": doomed.id})
        session.commit()
    return token


@pytest.mark.parametrize("route", AUTHENTICATED, ids=" ".join)
def test_no_bad_token_opens_any_route(
    route: Route,
    world: FuzzWorld,
    callers: dict[str, httpx.Client],
    bad_tokens: dict[str, str],
    database: Database,
) -> None:
    target = _target(world, route)
    before = _snapshot(database, world)
    for name, token in bad_tokens.items():
        answer = _send(callers["anonymous"], target, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, (name, answer.text[:200])
        _assert_problem(answer, 401)
        # From the API's own origin, as its own pages send it: the cross-site request check
        # (test_cross_origin) lets it through, so the token is what is refused.
        cookie = _send(
            callers["anonymous"],
            target,
            headers={"Cookie": f"orderflow_access={token}", "Origin": world.api_url},
        )
        assert cookie.status_code == 401, (name, "as a cookie")
    assert _snapshot(database, world) == before


@pytest.mark.parametrize("route", sorted(ADMIN_ROUTES), ids=" ".join)
def test_a_forged_role_claim_grants_nothing_anywhere(
    route: Route,
    world: FuzzWorld,
    callers: dict[str, httpx.Client],
    settings: Settings,
    database: Database,
) -> None:
    claims = jwt.decode(world.tokens["client"], options={"verify_signature": False})
    secret = settings.jwt_secret.get_secret_value()
    forged = jwt.encode({**claims, "role": "admin", "is_admin": True}, secret, "HS256")
    before = _snapshot(database, world)
    answer = _send(
        callers["anonymous"], _target(world, route), headers={"Authorization": f"Bearer {forged}"}
    )
    _assert_problem(answer, 403)
    assert _snapshot(database, world) == before


# --- injected and oversized text -------------------------------------------------------------

#: SQL fragments a careless query would execute, and text a careless column would not hold.
HOSTILE = [
    "' OR '1'='1",
    "'; DROP TABLE orders; --",
    '" OR ""="',
    "1); SELECT pg_sleep(5); --",
    "' UNION SELECT password_hash, email FROM users --",
    "%' OR 1=1 --",
    "\\'; TRUNCATE products CASCADE; --",
    "$$; DELETE FROM payments; $$",
    "x" * 5_000,
    "\u00e9" * 100_000,
    "a\x00b",
    "\u202e\ufeffZ\u0301\U0001f600",
]
#: The same, cut to what fits in a URL (httpx refuses components over 64 KiB).
HOSTILE_IN_URLS = [value[:5_000] for value in HOSTILE]


def _string_fields(schema: dict[str, Any], path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every string in a request body schema (into the first item of arrays)."""
    schema = _resolve(schema)
    found: list[tuple[Any, ...]] = []
    for option in schema.get("anyOf", [schema]):
        option = _resolve(option)
        if option.get("type") == "string":
            found.append(path)
        elif option.get("type") == "object":
            for name, sub in option.get("properties", {}).items():
                found += _string_fields(sub, (*path, name))
        elif option.get("type") == "array":
            found += _string_fields(option["items"], (*path, 0))
    return sorted(set(found), key=str)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _body_fields() -> list[tuple[Route, tuple[Any, ...]]]:
    cases = []
    for route, op in sorted(OPERATIONS.items()):
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content:
            cases += [(route, field) for field in _string_fields(content["schema"])]
    return cases


BODY_FIELDS = _body_fields()
QUERY_PARAMETERS = sorted(
    (route, parameter["name"])
    for route, op in OPERATIONS.items()
    for parameter in op.get("parameters", [])
    if parameter["in"] == "query"
)


def test_the_fields_are_found() -> None:
    """The walk over the spec finds what we know is there (so the tests below are not
    vacuously green)."""
    orders = ("POST", f"{PREFIX}/orders")
    assert (orders, ("shipping_address", "line1")) in BODY_FIELDS
    assert (orders, ("items", 0, "product_id")) in BODY_FIELDS
    assert (("GET", f"{PREFIX}/orders"), "customer_id") in QUERY_PARAMETERS
    assert len(BODY_FIELDS) >= 25
    assert len(QUERY_PARAMETERS) >= 10


def _caller(route: Route) -> str:
    if route in ADMIN_ROUTES:
        return "admin"
    if route in PUBLIC_ROUTES:
        return "anonymous"
    return "client"


def _set(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    body = json.loads(json.dumps(body))
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


def _get(body: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        body = body[step]
    return body


@pytest.fixture
def fresh_client(
    world: FuzzWorld, database: Database, secrets: list[str]
) -> Iterator[Callable[[], httpx.Client]]:
    """A client of a user of its own, for a request that may change the caller's password."""
    clients: list[httpx.Client] = []

    def make() -> httpx.Client:
        with database.unit_of_work() as session:
            email = f"fresh-{uuid.uuid4().hex[:8]}@example.com"
            world.users["fresh"] = auth.register_user(session, email, PASSWORD, None)
            session.commit()
        client = httpx.Client(
            base_url=world.api_url,
            headers={"Authorization": f"Bearer {world.fresh_token('fresh')}"},
            timeout=30,
            event_hooks={"response": [_no_secret(secrets)]},
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize(
    ("route", "field"), BODY_FIELDS, ids=[f"{m} {p} {f}" for (m, p), f in BODY_FIELDS]
)
def test_hostile_text_in_every_body_field(
    route: Route,
    field: tuple[Any, ...],
    world: FuzzWorld,
    callers: dict[str, httpx.Client],
    fresh_client: Callable[[], httpx.Client],
    database: Database,
) -> None:
    """Refused with a 4xx problem that wrote nothing, or accepted and stored as sent."""
    target = _target(world, route)
    for value in HOSTILE:
        client = fresh_client() if route == ("PUT", f"{PREFIX}/auth/password") else None
        client = client or callers[_caller(route)]
        body = _set(target.body, field, value)
        if route == ("POST", f"{PREFIX}/auth/register") and field != ("email",):
            body["email"] = f"sec-{uuid.uuid4().hex[:8]}@example.com"
        if route == ("POST", f"{PREFIX}/products") and field != ("sku",):
            body["sku"] = f"SEC-{uuid.uuid4().hex[:8]}"
        before = _row_counts(database)
        answer = client.request(target.method, target.url, json=body)
        assert answer.status_code < 500, (field, value[:40], answer.text[:300])
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == PROBLEM_JSON, answer.text[:200]
            assert _row_counts(database) == before, f"a refused request wrote: {field}"
        else:
            _assert_stored_as_sent(answer, field, value)


#: Fields that are stored but not shown back, or shown back changed on purpose.
_NOT_ECHOED = {"password", "current_password", "new_password", "refresh_token", "email"}


def _assert_stored_as_sent(answer: httpx.Response, field: tuple[Any, ...], value: str) -> None:
    if answer.status_code == 204 or field[-1] in _NOT_ECHOED:
        return
    shown = answer.json()
    if field[:1] == ("items",):  # lines are shown with their snapshot, by position
        field = ("items", 0, field[-1])
    if "events" in shown and field[-1] in ("location", "description"):  # a tracking update
        if answer.status_code == 201:  # 200: the same status and time again, acknowledged
            assert value in [event[field[-1]] for event in shown["events"]], f"{field} changed"
        return
    assert _get(shown, field) == value, f"{field} was stored changed"


@pytest.mark.parametrize(
    ("route", "name"), QUERY_PARAMETERS, ids=[f"{m} {p} {n}" for (m, p), n in QUERY_PARAMETERS]
)
def test_hostile_text_in_every_query_parameter(
    route: Route, name: str, world: FuzzWorld, callers: dict[str, httpx.Client], database: Database
) -> None:
    target = _target(world, route)
    caller = callers["admin" if route in OWNER_ROUTES or route in SELF_ROUTES else _caller(route)]
    before = _row_counts(database)
    for value in HOSTILE_IN_URLS:
        answer = caller.request(target.method, target.url, params={name: value})
        assert answer.status_code < 500, (name, value[:40], answer.text[:300])
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == PROBLEM_JSON
    assert _row_counts(database) == before


@pytest.mark.parametrize("route", WITH_AN_ID, ids=" ".join)
def test_hostile_text_in_every_path_id(
    route: Route, world: FuzzWorld, callers: dict[str, httpx.Client], database: Database
) -> None:
    method, path = route
    caller = callers["anonymous" if route in PUBLIC_ROUTES else "admin"]
    body = valid_bodies(world).get(route)
    before = _row_counts(database)
    for value in [*HOSTILE_IN_URLS, "%00", "../../etc/passwd"]:
        segment = quote(value, safe="")  # as a client puts an id in a path
        url = path.format(
            order_id=segment, product_id=segment, customer_id=segment, intent_id=segment,
            cart_id=segment, key_id=segment, event_id=segment, endpoint_id=segment,
            delivery_id=segment, shipment_id=segment, number=segment, return_id=segment,
        )  # fmt: skip
        answer = caller.request(method, url, json=body)
        assert answer.status_code < 500, (value[:40], answer.text[:300])
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == PROBLEM_JSON
    assert _row_counts(database) == before


def test_hostile_idempotency_keys(
    world: FuzzWorld, callers: dict[str, httpx.Client], database: Database
) -> None:
    """A printable key is stored as sent (the same key replays the first answer); anything
    else is a 400 that writes nothing."""
    client, body = callers["client"], valid_bodies(world)[("POST", f"{PREFIX}/orders")]
    for key in HOSTILE[:8]:
        first = client.post("/api/v1/orders", json=body, headers={"Idempotency-Key": key})
        again = client.post("/api/v1/orders", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 201, first.text[:300]
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json() == first.json()
    for key in ["k" * 256, "\u00e9" * 300]:
        before = _row_counts(database)
        answer = client.post(
            "/api/v1/orders", json=body, headers={"Idempotency-Key": key.encode("latin-1")}
        )
        _assert_problem(answer, 400)
        assert _row_counts(database) == before


@pytest.mark.parametrize(
    "place",
    ["id", "type", "data.object.id", "data.object.metadata.order_id", "data.object.currency"],
)
def test_hostile_text_in_signed_webhooks(
    place: str, world: FuzzWorld, callers: dict[str, httpx.Client], database: Database
) -> None:
    """Even a correctly signed event with hostile text in it is a 2xx or a 400, never 5xx."""
    for value in HOSTILE:
        intent = fake_payment_intent("pi_sec", amount=1000, order_id=world.orders[0])
        payload, _ = signed_event("payment_intent.succeeded", intent, STRIPE_WEBHOOK_SECRET)
        event = json.loads(payload)
        target = event
        *parents, leaf = place.split(".")
        for step in parents:
            target = target[step]
        target[leaf] = value
        raw = json.dumps(event).encode()
        before = _row_counts(database)
        answer = callers["anonymous"].post(
            f"{PREFIX}/webhooks/stripe",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign_payload(raw, STRIPE_WEBHOOK_SECRET),
            },
        )
        assert answer.status_code < 500, (place, value[:40], answer.text[:300])
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == PROBLEM_JSON
            assert _row_counts(database) == before


# --- secrets ---------------------------------------------------------------------------------


def test_no_answer_or_log_line_gives_a_secret_away(
    world: FuzzWorld,
    callers: dict[str, httpx.Client],
    secrets: list[str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Every answer in this module is checked by ``_no_secret``; here the places most likely
    to leak are visited on purpose, and the server's own log output is read too."""
    anonymous, client = callers["anonymous"], callers["client"]
    email = world.users["client"].email
    anonymous.post(f"{PREFIX}/auth/login", json={"email": email, "password": PASSWORD})
    _assert_problem(
        anonymous.post(f"{PREFIX}/auth/login", json={"email": email, "password": ADMIN_PASSWORD}),
        401,
    )
    for weak in ["onlyletters", "x" * 129, "1234567890"]:
        answer = anonymous.post(
            f"{PREFIX}/auth/register", json={"email": "weak@example.com", "password": weak}
        )
        _assert_problem(answer, 422)
        assert weak not in answer.text
    _assert_problem(
        client.put(
            f"{PREFIX}/auth/password",
            json={"current_password": ADMIN_PASSWORD, "new_password": "whatever-new-1"},
        ),
        401,
    )
    created = callers["admin"].post(
        f"{PREFIX}/products",
        json={"sku": f"LOC-{uuid.uuid4().hex[:6]}", "name": "Located", "price": 100},
    )
    assert created.status_code == 201
    placed = client.post(f"{PREFIX}/orders", json=order_body((world.products[0], 1)))
    assert placed.headers["location"] == f"{PREFIX}/orders/{placed.json()['id']}"
    for path in ["/openapi.json", "/docs", "/healthz", "/readyz", "/metrics", f"{PREFIX}/auth/me"]:
        client.get(path)
    logged = capfd.readouterr()
    for secret in secrets:
        assert secret not in logged.out
        assert secret not in logged.err
