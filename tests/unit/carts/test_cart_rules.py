"""Cart rules without services: the status a cart shows, what may change it, how it is
priced, and how a checkout body is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.routers.orders import _fingerprinted, _one_source_of_lines
from api.schemas.orders import OrderCreate
from orderflow import idempotency
from orderflow.carts.repository import CartItemRow, CartState
from orderflow.carts.service import ensure_open, view
from orderflow.errors import CartCompleted, CartExpired, Unprocessable
from orderflow.models import Cart, Product
from orderflow.statuses import CartStatus


def _product(product_id: str, price: int, stock: int, active: bool = True) -> Product:
    return Product(id=product_id, sku=f"SKU-{product_id}", name=product_id, price_amount=price,
                   currency="eur", stock=stock, active=active)  # fmt: skip


def _state(status: CartStatus, *, lapsed: bool = False, **extra: Any) -> CartState:
    cart = Cart(id="cart_1", customer_id="usr_1", status=status, version=3,
                expires_at=datetime.now(UTC) + timedelta(days=1), **extra)  # fmt: skip
    items = [
        CartItemRow("prod_a", 2, 100, _product("prod_a", 150, 5)),
        CartItemRow("prod_b", 4, 300, _product("prod_b", 300, 3)),
        CartItemRow("prod_c", 1, 50, _product("prod_c", 50, 9, active=False)),
    ]
    return CartState(cart, items, lapsed)


def test_an_open_cart_past_its_expiry_shows_expired_before_the_task_marks_it() -> None:
    assert _state(CartStatus.OPEN).status == CartStatus.OPEN
    assert _state(CartStatus.OPEN, lapsed=True).status == CartStatus.EXPIRED
    assert _state(CartStatus.COMPLETED, lapsed=True).status == CartStatus.COMPLETED


def test_only_an_open_cart_changes() -> None:
    assert ensure_open(_state(CartStatus.OPEN)).cart.id == "cart_1"
    with pytest.raises(CartCompleted) as completed:
        ensure_open(_state(CartStatus.COMPLETED, order_id="ord_9"))
    assert completed.value.extra["order_id"] == "ord_9"
    assert (completed.value.status, completed.value.slug) == (409, "cart-completed")
    for state in (_state(CartStatus.EXPIRED), _state(CartStatus.OPEN, lapsed=True)):
        with pytest.raises(CartExpired):
            ensure_open(state)


def test_a_cart_is_priced_live_and_says_what_is_available() -> None:
    shown = view(_state(CartStatus.OPEN))
    assert [(line.product_id, line.unit_price, line.subtotal, line.in_stock)
            for line in shown.lines] == [
        ("prod_a", 150, 300, True),  # today's price, not the one it was put in at
        ("prod_b", 300, 1200, False),  # 4 wanted, 3 in stock
        ("prod_c", 50, 50, False),  # archived
    ]  # fmt: skip
    assert shown.subtotal == 1550
    assert shown.currency == "eur"  # the products' when the cart was given none


def _body(**fields: Any) -> OrderCreate:
    address = {"name": "J", "line1": "1 St", "city": "X", "postal_code": "1", "country": "US"}
    return OrderCreate.model_validate(
        {"shipping_address": address, "payment_method": "pm_card_visa", **fields}
    )


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({}, ["items"]),
        ({"cart_id": "cart_1", "items": [{"product_id": "p", "quantity": 1}]}, ["items"]),
        ({"cart_id": "cart_1", "customer_id": "usr_2"}, ["customer_id"]),
        ({"items": [{"product_id": "p", "quantity": 1}], "expected_total": 5}, ["expected_total"]),
    ],
)
def test_an_order_body_has_one_source_of_lines(fields: dict[str, Any], bad: list[str]) -> None:
    with pytest.raises(Unprocessable) as refused:
        _one_source_of_lines(_body(**fields))
    assert [error["field"] for error in refused.value.extra["errors"]] == bad


def test_valid_sources_of_lines_pass() -> None:
    _one_source_of_lines(_body(cart_id="cart_1", expected_total=0))
    _one_source_of_lines(_body(items=[{"product_id": "p", "quantity": 1}], customer_id="usr_2"))


def test_a_body_order_keeps_the_fingerprint_it_had_before_carts() -> None:
    """An ``Idempotency-Key`` answered before the upgrade still replays the same body."""
    body = _body(items=[{"product_id": "p", "quantity": 1}])
    before = body.model_dump(mode="json", exclude={"cart_id", "expected_total"})
    assert _fingerprinted(body) == before
    assert idempotency.fingerprint("POST", "/orders", _fingerprinted(body)) == (
        idempotency.fingerprint("POST", "/orders", before)
    )
    from_cart = _body(cart_id="cart_1", expected_total=10)
    assert _fingerprinted(from_cart)["expected_total"] == 10
