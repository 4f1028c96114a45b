"""Catalogue use cases: list, read, create, change and archive products."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orderflow.errors import Conflict, NotFound, Unprocessable
from orderflow.ids import new_id
from orderflow.models import Product
from orderflow.money import Money, is_currency
from orderflow.pagination import Page, paginate


@dataclass(frozen=True)
class NewProduct:
    sku: str
    name: str
    price: Money
    stock: int
    description: str = ""
    active: bool = True


def list_products(
    session: Session, *, limit: int, offset: int, include_archived: bool = False
) -> Page[Product]:
    query = select(Product)
    if not include_archived:
        query = query.where(Product.active.is_(True))
    return paginate(session, query.order_by(Product.created_at, Product.id), limit, offset)


def products_by_id(session: Session, product_ids: list[str]) -> dict[str, Product]:
    """The products of these ids that exist, archived ones included, by id."""
    return {product.id: product for product in session.scalars(_BY_IDS, {"ids": product_ids})}


#: Built once (compiled and cache-keyed once): every order placed runs it.
_BY_IDS = select(Product).where(Product.id.in_(bindparam("ids", expanding=True)))


def products_for_sale(session: Session, product_ids: list[str]) -> dict[str, Product]:
    """The products of one order or cart, by id: each product once, each one sold."""
    if len(set(product_ids)) != len(product_ids):
        raise Unprocessable(
            "each product may appear on one line only; raise the quantity instead",
            errors=[{"field": "items", "message": "duplicate product_id"}],
        )
    found = products_by_id(session, product_ids)
    check_for_sale(found, product_ids)
    return found


def check_for_sale(found: Mapping[str, Product | None], product_ids: Iterable[str]) -> None:
    """A product that does not exist or is archived: 404 naming it."""
    for product_id in product_ids:
        product = found.get(product_id)
        if product is None or not product.active:
            raise NotFound(
                f"product {product_id} does not exist or is no longer sold", product_id=product_id
            )


def single_currency(products: Iterable[Product]) -> str:
    """The one currency of an order's products (at least one), an ISO 4217 one."""
    currencies = {product.currency for product in products}
    if len(currencies) != 1:
        raise Unprocessable(
            "all products of one order must be priced in the same currency",
            errors=[{"field": "items", "message": "mixed currencies"}],
        )
    currency = currencies.pop()
    if not is_currency(currency):  # a product stored before currencies were checked
        raise Unprocessable(
            f"these products are priced in {currency!r}, not an ISO 4217 currency; "
            "an admin must correct their currency first",
            errors=[{"field": "items", "message": "unknown currency"}],
        )
    return currency


def get_product(session: Session, product_id: str) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"product {product_id} does not exist", product_id=product_id)
    return product


def create_product(session: Session, new: NewProduct) -> Product:
    product = Product(
        id=new_id("prod"),
        sku=new.sku,
        name=new.name,
        description=new.description,
        price_amount=new.price.amount,
        currency=new.price.currency,
        stock=new.stock,
        active=new.active,
    )
    with _unique_sku(session, new.sku):
        session.add(product)
    return product


def update_product(session: Session, product_id: str, changes: dict[str, Any]) -> Product:
    """Apply a partial update. Orders placed earlier keep their snapshotted lines."""
    product = session.get(Product, product_id, with_for_update=True)
    if product is None:
        raise NotFound(f"product {product_id} does not exist", product_id=product_id)
    with _unique_sku(session, changes.get("sku", product.sku)):
        for field in ("sku", "name", "description", "stock", "active", "currency"):
            if field in changes:
                setattr(product, field, changes[field])
        if "price" in changes:
            product.price_amount = changes["price"]
        product.updated_at = func.now()
    session.refresh(product)
    return product


def archive_product(session: Session, product_id: str) -> None:
    update_product(session, product_id, {"active": False})


@contextmanager
def _unique_sku(session: Session, sku: str) -> Iterator[None]:
    """Run the block in a savepoint, turning a clash on the sku into a 409."""
    try:
        with session.begin_nested():
            yield
            session.flush()
    except IntegrityError as error:
        raise Conflict(f"a product with sku {sku!r} already exists") from error
