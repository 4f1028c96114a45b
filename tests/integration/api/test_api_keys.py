"""Integration keys: shown once, stored as a hash, scoped route by route (``api/scopes.py``),
revocable, ``last_used_at`` stamped at most once a minute, rate-limited per key; no key
manages keys."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.scopes import API_PREFIX, REQUIRED
from orderflow.db import Database
from orderflow.integrations.keys import Scope
from orderflow.models import Product, User
from orderflow.settings import Settings
from tests.conftest import order_body

ALL_SCOPES = [scope.value for scope in Scope]


def _app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route of the API, as its OpenAPI document lists them."""
    paths = create_app(Settings(environment="test")).openapi()["paths"]
    return {
        (method.upper(), path.removeprefix(API_PREFIX))
        for path, operations in paths.items()
        if path.startswith(API_PREFIX)
        for method in operations
    }


APP_ROUTES = _app_routes()
SCOPED_ROUTES = sorted(route for route in REQUIRED if route in APP_ROUTES)
#: Routes that authenticate a caller but are not open to any key.
KEYLESS_ROUTES = [
    ("GET", "/auth/me", None),
    ("POST", "/auth/logout", None),
    ("PUT", "/auth/password", {"current_password": "x", "new_password": "y" * 12}),
    ("GET", "/api-keys", None),
    ("POST", "/api-keys", {"name": "sneaky", "scopes": ["orders:read"]}),
    ("DELETE", "/api-keys/key_x", None),
]


@dataclass
class World:
    admin: httpx.Client
    api: httpx.Client
    customer: User
    product: Product
    order_id: str

    def key(self, *scopes: str, name: str = "erp") -> dict[str, Any]:
        answer = self.admin.post("/api-keys", json={"name": name, "scopes": list(scopes)})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def as_key(self, secret: str) -> httpx.Client:
        client = httpx.Client(base_url=self.api.base_url, timeout=30)
        client.headers["Authorization"] = f"Bearer {secret}"
        return client

    def path(self, template: str) -> str:
        return template.format(
            order_id=self.order_id,
            product_id=self.product.id,
            customer_id=self.customer.id,
            event_id="evt_missing",
            endpoint_id="we_missing",
            delivery_id="whd_missing",
            key_id="key_missing",
            return_id="ret_missing",
        )

    def body(self, method: str, template: str) -> dict[str, Any] | None:
        bodies: dict[tuple[str, str], dict[str, Any]] = {
            ("POST", "/orders"): order_body((self.product.id, 1), customer_id=self.customer.id),
            ("PUT", "/orders/{order_id}/status"): {"status": "cancelled"},
            ("POST", "/products"): {"sku": "K-1", "name": "k", "price": 1, "currency": "usd"},
            ("PATCH", "/products/{product_id}"): {"stock": 5},
            ("POST", "/webhook-endpoints"): {
                "url": "https://example.com/hook",
                "event_types": ["order.*"],
            },
            ("PATCH", "/webhook-endpoints/{endpoint_id}"): {"status": "paused"},
            ("POST", "/webhook-endpoints/{endpoint_id}/replay"): {"since": "2026-01-01T00:00:00Z"},
        }
        return bodies.get((method, template))


@pytest.fixture
def world(
    api: httpx.Client,
    admin: httpx.Client,
    make_user: Callable[..., User],
    make_product: Callable[..., Product],
    login_as: Callable[[User], httpx.Client],
) -> World:
    customer = make_user()
    product = make_product()
    placed = login_as(customer).post("/orders", json=order_body((product.id, 1)))
    assert placed.status_code == 201
    return World(admin, api, customer, product, placed.json()["id"])


def test_the_secret_is_shown_once_and_stored_only_as_a_hash(
    world: World, clean_database: Database
) -> None:
    created = world.key("orders:read")
    secret = created["secret"]
    assert secret.startswith("ofk_")
    assert len(secret) >= 40
    assert created["id"].startswith("key_")
    assert secret.startswith(created["prefix"])
    assert created["scopes"] == ["orders:read"]
    listed = world.admin.get("/api-keys").json()
    assert listed["total"] == 1
    assert "secret" not in listed["items"][0]
    assert listed["items"][0]["last_used_at"] is None
    with clean_database.unit_of_work() as session:
        row = session.execute(text("SELECT * FROM api_keys")).mappings().one()
    assert secret not in repr(dict(row))
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()


def test_a_key_reads_like_an_admin(world: World) -> None:
    key = world.as_key(world.key("orders:read")["secret"])
    answer = key.get("/orders")
    assert answer.status_code == 200
    assert answer.json()["total"] == 1
    assert key.get(f"/orders/{world.order_id}").json()["id"] == world.order_id


def test_a_key_acts_as_the_admin_who_made_it(world: World) -> None:
    key = world.as_key(world.key("orders:write", "orders:read")["secret"])
    assert key.delete(f"/orders/{world.order_id}").status_code == 204
    events = key.get(f"/orders/{world.order_id}/events").json()["items"]
    admin_id = world.admin.get("/auth/me").json()["id"]
    assert events[-1]["type"] == "status_changed"
    assert events[-1]["actor"] == admin_id


def test_a_key_places_an_order_for_a_customer(world: World) -> None:
    key = world.as_key(world.key("orders:write")["secret"])
    body = order_body((world.product.id, 2), customer_id=world.customer.id)
    answer = key.post("/orders", json=body, headers={"Idempotency-Key": "erp-1"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["customer_id"] == world.customer.id


@pytest.mark.parametrize(("method", "template"), SCOPED_ROUTES)
def test_a_key_without_the_scope_is_403(world: World, method: str, template: str) -> None:
    needed = REQUIRED[(method, template)]
    others = [scope for scope in ALL_SCOPES if scope != needed.value]
    key = world.as_key(world.key(*others)["secret"])
    answer = key.request(method, world.path(template), json=world.body(method, template))
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert needed.value in answer.json()["detail"]


@pytest.mark.parametrize(("method", "template"), SCOPED_ROUTES)
def test_a_key_with_the_scope_passes(world: World, method: str, template: str) -> None:
    needed = REQUIRED[(method, template)]
    key = world.as_key(world.key(needed.value)["secret"])
    answer = key.request(method, world.path(template), json=world.body(method, template))
    # Past authentication and authorisation: whatever the route answers next.
    assert answer.status_code not in (401, 403), answer.text


@pytest.mark.parametrize(("method", "path", "body"), KEYLESS_ROUTES)
def test_no_key_reaches_the_routes_of_people(
    world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    key = world.as_key(world.key(*ALL_SCOPES)["secret"])
    answer = key.request(method, path, json=body)
    assert answer.status_code == 403, answer.text


def test_no_key_can_create_another(world: World) -> None:
    key = world.as_key(world.key(*ALL_SCOPES)["secret"])
    answer = key.post("/api-keys", json={"name": "child", "scopes": ALL_SCOPES})
    assert answer.status_code == 403
    assert world.admin.get("/api-keys").json()["total"] == 1


def test_a_revoked_key_is_refused(world: World) -> None:
    created = world.key("orders:read")
    key = world.as_key(created["secret"])
    assert key.get("/orders").status_code == 200
    assert world.admin.delete(f"/api-keys/{created['id']}").status_code == 204
    answer = key.get("/orders")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert world.admin.delete(f"/api-keys/{created['id']}").status_code == 204  # repeatable
    listed = world.admin.get("/api-keys").json()["items"][0]
    assert listed["revoked_at"] is not None


def test_unknown_keys_and_keys_of_clients(world: World, customer: httpx.Client) -> None:
    assert world.as_key("ofk_" + "x" * 43).get("/orders").status_code == 401
    assert world.admin.delete("/api-keys/key_missing").status_code == 404
    wanted = {"name": "n", "scopes": ["orders:read"]}
    assert customer.post("/api-keys", json=wanted).status_code == 403
    assert customer.get("/api-keys").status_code == 403


def test_scopes_are_checked_on_creation(world: World) -> None:
    for scopes in ([], ["orders:delete"], ["orders:read", "admin"]):
        answer = world.admin.post("/api-keys", json={"name": "n", "scopes": scopes})
        assert answer.status_code == 422, scopes


def test_last_used_at_is_stamped_at_most_once_a_minute(
    world: World, clean_database: Database
) -> None:
    created = world.key("orders:read")
    key = world.as_key(created["secret"])
    assert key.get("/orders").status_code == 200
    first = world.admin.get("/api-keys").json()["items"][0]["last_used_at"]
    assert first is not None
    assert key.get("/orders").status_code == 200
    assert world.admin.get("/api-keys").json()["items"][0]["last_used_at"] == first
    with clean_database.unit_of_work() as session:  # a minute passes
        session.execute(text("UPDATE api_keys SET last_used_at = last_used_at - interval '61 s'"))
        session.commit()
    assert key.get("/orders").status_code == 200
    later = world.admin.get("/api-keys").json()["items"][0]["last_used_at"]
    assert later > first


def test_each_key_has_its_own_rate_limit(world: World, settings: Settings) -> None:
    busy, quiet = world.key("orders:read")["secret"], world.key("orders:read")["secret"]
    limited = settings.model_copy(update={"rate_limit_requests_per_key": 3})
    with TestClient(create_app(limited), base_url=f"http://test{API_PREFIX}/") as client:
        statuses = [
            client.get("orders", headers={"Authorization": f"Bearer {busy}"}).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        refused = client.get("orders", headers={"Authorization": f"Bearer {busy}"})
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert client.get("orders", headers={"Authorization": f"Bearer {quiet}"}).status_code == 200
