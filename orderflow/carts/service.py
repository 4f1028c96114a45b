"""Cart use cases: create, read, put and remove items, delete; the expiry and the purge.

A cart belongs to the customer who created it: to anyone else (admins included) it does not
exist. It shows live catalogue prices and availability and holds no stock; only an ``open``
cart changes. Every change locks the cart's row first, as the checkout does
(``orders.service.place_order``), so an item written during a checkout either made it into
the order or is refused because the cart is completed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from orderflow.carts.repository import CART_BATCH, CartRepository, CartState, NewItem

__all__ = ["CART_BATCH", "CartRepository", "CartState"]
from orderflow.catalogue.service import (
    check_for_sale,
    products_by_id,
    products_for_sale,
    single_currency,
)
from orderflow.errors import CartCompleted, CartExpired, Conflict, CurrencyMismatch, NotFound
from orderflow.ids import new_id
from orderflow.models import Product
from orderflow.statuses import CartStatus

#: As an order's lines: a cart holds 1..100 products, 1..1000 of each.
MAX_ITEMS = 100
MAX_QUANTITY = 1000


@dataclass(frozen=True)
class ItemRequest:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class CartLine:
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price: int
    subtotal: int
    in_stock: bool


@dataclass(frozen=True)
class CartView:
    """A cart as its owner sees it: priced now."""

    state: CartState
    status: CartStatus
    currency: str | None
    lines: list[CartLine]

    @property
    def subtotal(self) -> int:
        return sum(line.subtotal for line in self.lines)


def create_cart(
    session: Session,
    customer_id: str,
    currency: str | None,
    items: Sequence[ItemRequest],
    ttl_hours: int,
) -> CartView:
    products = products_for_sale(session, [item.product_id for item in items]) if items else {}
    if products:
        _same_currency(currency or single_currency(products.values()), products.values())
    cart_id = new_id("cart")
    rows = [_new_item(item, products[item.product_id]) for item in items]
    CartRepository(session).create(cart_id, customer_id, currency, rows, ttl_hours)
    return get_cart(session, cart_id, customer_id)


def get_cart(session: Session, cart_id: str, customer_id: str) -> CartView:
    return view(_found(CartRepository(session).get(cart_id, customer_id), cart_id))


def put_item(
    session: Session,
    cart_id: str,
    customer_id: str,
    item: ItemRequest,
    ttl_hours: int,
) -> CartView:
    """Add the product or set its quantity; quantity 0 removes it."""
    if item.quantity == 0:
        return remove_item(session, cart_id, customer_id, item.product_id, ttl_hours)
    carts = CartRepository(session)
    state = ensure_open(_found(carts.lock(cart_id, customer_id), cart_id))
    found = products_by_id(session, [item.product_id])
    check_for_sale(found, [item.product_id])
    product = found[item.product_id]
    others = [row for row in state.items if row.product_id != item.product_id]
    if len(others) >= MAX_ITEMS:
        raise Conflict(
            f"cart {cart_id} holds {MAX_ITEMS} products already, the most a cart (and an "
            "order) may have; remove one first",
            cart_id=cart_id,
        )
    currency = state.cart.currency or next(
        (row.product.currency for row in others if row.product is not None), None
    )
    if currency is not None:
        _same_currency(currency, [product])
    carts.put_item(cart_id, _new_item(item, product), ttl_hours)
    return get_cart(session, cart_id, customer_id)


def remove_item(
    session: Session, cart_id: str, customer_id: str, product_id: str, ttl_hours: int
) -> CartView:
    """Remove the product; removing one the cart does not hold changes nothing."""
    carts = CartRepository(session)
    ensure_open(_found(carts.lock(cart_id, customer_id), cart_id))
    carts.remove_item(cart_id, product_id, ttl_hours)
    return get_cart(session, cart_id, customer_id)


def delete_cart(session: Session, cart_id: str, customer_id: str) -> None:
    """Gone, whatever its status; an order placed from it keeps its ``cart_id``."""
    if not CartRepository(session).delete(cart_id, customer_id):
        raise NotFound(f"cart {cart_id} does not exist", cart_id=cart_id)


def ensure_open(state: CartState) -> CartState:
    """Only an open cart changes or becomes an order: 409 naming the order otherwise."""
    cart = state.cart
    if state.status == CartStatus.COMPLETED:
        raise CartCompleted(
            f"cart {cart.id} has already become order {cart.order_id}",
            cart_id=cart.id,
            order_id=cart.order_id,
        )
    if state.status == CartStatus.EXPIRED:
        raise CartExpired(
            f"cart {cart.id} expired at {cart.expires_at.isoformat()}; start a new cart",
            cart_id=cart.id,
        )
    return state


def view(state: CartState) -> CartView:
    lines = []
    for row in state.items:
        product = row.product
        if product is None:  # products are archived, never deleted; shown as unavailable
            continue
        lines.append(
            CartLine(
                product_id=product.id,
                sku=product.sku,
                name=product.name,
                quantity=row.quantity,
                unit_price=product.price_amount,
                subtotal=product.price_amount * row.quantity,
                in_stock=product.active and product.stock >= row.quantity,
            )
        )
    currency = state.cart.currency or next(
        (row.product.currency for row in state.items if row.product is not None), None
    )
    return CartView(state, state.status, currency, lines)


# -- expiry and purge (the beat's ``orderflow.maintenance.carts``) -------------------------


def expire_carts(session: Session, limit: int = CART_BATCH) -> int:
    """One batch: open carts past their ``expires_at`` become ``expired``."""
    return CartRepository(session).expire_batch(limit)


def purge_carts(session: Session, ttl_hours: int, limit: int = CART_BATCH) -> int:
    """One batch: carts completed or expired more than ``ttl_hours`` ago are deleted (an
    order keeps its ``cart_id``)."""
    return CartRepository(session).purge_batch(ttl_hours, limit)


def _found(state: CartState | None, cart_id: str) -> CartState:
    if state is None:
        raise NotFound(f"cart {cart_id} does not exist", cart_id=cart_id)
    return state


def _new_item(item: ItemRequest, product: Product) -> NewItem:
    return NewItem(item.product_id, item.quantity, product.price_amount)


def _same_currency(currency: str, products: Iterable[Product]) -> None:
    """A cart is in one currency: the one it was created with, else its products'."""
    for product in products:
        if product.currency != currency:
            raise CurrencyMismatch(
                f"product {product.id} is priced in {product.currency}; the cart is in {currency}",
                product_id=product.id,
                currency=currency,
            )
