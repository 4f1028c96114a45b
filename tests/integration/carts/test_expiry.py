"""Expiry and purge with a fast clock: a cart's ``expires_at`` (or its last change) moved
into the past instead of waiting for ``ORDERFLOW_CART_TTL_HOURS``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from orderflow.carts import service as carts
from orderflow.db import Database
from orderflow.models import Cart, CartItem, Order, Product, User
from orderflow.settings import Settings
from orderflow.statuses import CartStatus
from tasks import maintenance, runtime
from tests.integration.carts.test_checkout import checkout_body


def _age(database: Database, cart_id: str, *, expires: bool = True, hours: int = 1) -> None:
    """Move the cart ``hours`` into the past: past its expiry, or its last change."""
    column = Cart.expires_at if expires else Cart.updated_at
    with database.unit_of_work() as session:
        session.execute(
            update(Cart)
            .where(Cart.id == cart_id)
            .values({column: func.now() - func.make_interval(0, 0, 0, 0, hours)})
        )
        session.commit()


def _status(database: Database, cart_id: str) -> CartStatus | None:
    with database.unit_of_work() as session:
        return session.scalar(select(Cart.status).where(Cart.id == cart_id))


@pytest.fixture
def product(make_product: Callable[..., Product]) -> Product:
    return make_product(price=700, stock=20)


def _new_cart(client: httpx.Client, product: Product) -> dict[str, Any]:
    return client.post("/carts", json={"items": [{"product_id": product.id, "quantity": 1}]}).json()


def test_a_cart_expires_after_the_ttl_without_a_change(
    customer: httpx.Client, settings: Settings, product: Product
) -> None:
    before = _new_cart(customer, product)
    expires = datetime.fromisoformat(before["expires_at"])
    updated = datetime.fromisoformat(before["updated_at"])
    assert expires - updated == timedelta(hours=settings.cart_ttl_hours)
    changed = customer.put(f"/carts/{before['id']}/items/{product.id}", json={"quantity": 2})
    assert changed.json()["expires_at"] > before["expires_at"]  # every change renews it


def test_a_lapsed_cart_reads_expired_and_refuses_changes_and_checkout(
    customer: httpx.Client, clean_database: Database, product: Product
) -> None:
    cart = _new_cart(customer, product)
    _age(clean_database, cart["id"])
    assert customer.get(f"/carts/{cart['id']}").json()["status"] == "expired"
    for refused in (
        customer.put(f"/carts/{cart['id']}/items/{product.id}", json={"quantity": 3}),
        customer.delete(f"/carts/{cart['id']}/items/{product.id}"),
        customer.post("/orders", json=checkout_body(cart["id"])),
    ):
        assert refused.status_code == 409
        assert refused.json()["type"] == "/problems/cart-expired"
    with clean_database.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 0
    assert customer.delete(f"/carts/{cart['id']}").status_code == 204  # may still be thrown away


def test_the_beat_task_expires_then_purges_in_batches(
    customer: httpx.Client,
    clean_database: Database,
    settings: Settings,
    product: Product,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "database", lambda: clean_database)
    monkeypatch.setattr(runtime, "settings", lambda: settings)
    monkeypatch.setattr(maintenance, "CART_BATCH", 2)
    lapsed = [_new_cart(customer, product)["id"] for _ in range(5)]
    fresh = _new_cart(customer, product)["id"]
    ordered = _new_cart(customer, product)["id"]
    order = customer.post("/orders", json=checkout_body(ordered)).json()
    for cart_id in lapsed:
        _age(clean_database, cart_id)

    assert maintenance.expire_carts() == {"expired": 5, "purged": 0}
    assert {_status(clean_database, cart_id) for cart_id in lapsed} == {CartStatus.EXPIRED}
    assert _status(clean_database, fresh) == CartStatus.OPEN
    assert _status(clean_database, ordered) == CartStatus.COMPLETED
    assert maintenance.expire_carts() == {"expired": 0, "purged": 0}  # purged only later

    for cart_id in [*lapsed[:3], ordered]:
        _age(clean_database, cart_id, expires=False, hours=settings.cart_ttl_hours + 1)
    assert maintenance.expire_carts() == {"expired": 0, "purged": 4}
    assert customer.get(f"/carts/{lapsed[0]}").status_code == 404
    assert customer.get(f"/carts/{lapsed[4]}").json()["status"] == "expired"
    assert customer.get(f"/carts/{fresh}").json()["status"] == "open"
    with clean_database.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(CartItem)) == 3
        kept = session.get(Order, order["id"])
        assert kept is not None
        assert kept.cart_id == ordered  # the order keeps its cart's id


def test_expiry_skips_a_cart_someone_holds_instead_of_waiting(
    clean_database: Database, make_user: Callable[..., User], product: Product
) -> None:
    owner = make_user()
    with clean_database.unit_of_work() as session:
        items = [carts.ItemRequest(product.id, 1)]
        held, free = (carts.create_cart(session, owner.id, None, items, 1) for _ in range(2))
        session.commit()
    for view in (held, free):
        _age(clean_database, view.state.cart.id)
    with clean_database.unit_of_work() as holder, clean_database.unit_of_work() as beat:
        carts.CartRepository(holder).lock(held.state.cart.id, owner.id)  # a checkout, say
        beat.execute(text("SET LOCAL lock_timeout = '2s'"))
        assert carts.expire_carts(beat) == 1  # the free one; no wait for the held one
        beat.commit()
    assert _status(clean_database, held.state.cart.id) == CartStatus.OPEN
    assert _status(clean_database, free.state.cart.id) == CartStatus.EXPIRED
