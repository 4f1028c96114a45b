"""Every statement on ``carts`` and ``cart_items``. The cart service and the checkout (in
``orders.service``) call these and build no SQL on those tables themselves.

A cart is read with its items and their live products in one statement (``_CART``), locked
(``FOR UPDATE OF carts``) by whatever changes it: its item writes, its deletion and the
checkout all queue on the cart's row, so a change and a checkout never interleave. The
checkout completes the cart inside the placement statement (``complete_cart``, a CTE of
``orders.repository._PLACE_FROM_CART``), so the order and the cart's ``completed`` commit
together. Statements are built once, at import, as in ``orders.repository``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Update,
    bindparam,
    column,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from orderflow.models import Cart, CartItem, Product, table_of
from orderflow.statuses import CartStatus


@dataclass(frozen=True)
class CartItemRow:
    """One item and its product as the catalogue has it now (``None``: the product is gone,
    which an archive never does)."""

    product_id: str
    quantity: int
    #: The product's price when the item was last put in the cart.
    put_price_amount: int
    product: Product | None


@dataclass(frozen=True)
class CartState:
    cart: Cart
    items: list[CartItemRow]
    #: ``expires_at`` has passed (by the database's clock), whether or not the expiry task
    #: has marked the cart ``expired`` yet.
    lapsed: bool

    @property
    def status(self) -> CartStatus:
        if self.cart.status == CartStatus.OPEN and self.lapsed:
            return CartStatus.EXPIRED
        return self.cart.status


@dataclass(frozen=True)
class NewItem:
    product_id: str
    quantity: int
    unit_price_amount: int


class CartRepository:
    """The cart's persistence, in the caller's transaction (never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, cart_id: str, customer_id: str) -> CartState | None:
        """The customer's cart with its items, oldest first; ``None`` if it is not theirs."""
        return self._state(_CART, cart_id, customer_id)

    def lock(self, cart_id: str, customer_id: str) -> CartState | None:
        """As ``get``, with the cart's row locked until the transaction ends (its items and
        products are read, not locked)."""
        return self._state(_LOCK_CART, cart_id, customer_id)

    def create(
        self,
        cart_id: str,
        customer_id: str,
        currency: str | None,
        items: Sequence[NewItem],
        ttl_hours: int,
    ) -> None:
        """The cart and its first items, in one statement."""
        self.session.execute(
            _CREATE_CART,
            {"id": cart_id, "customer_id": customer_id, "status": CartStatus.OPEN,
             "currency": currency, "ttl_hours": ttl_hours,
             "items": [{"product_id": item.product_id, "quantity": item.quantity,
                        "unit_price_amount": item.unit_price_amount} for item in items]},
        )  # fmt: skip

    def put_item(self, cart_id: str, item: NewItem, ttl_hours: int) -> None:
        """Add the product or set its quantity, and count a change of the (locked) cart."""
        self.session.execute(
            _PUT_ITEM,
            {"cart_id": cart_id, "product_id": item.product_id, "quantity": item.quantity,
             "unit_price_amount": item.unit_price_amount, "ttl_hours": ttl_hours},
        )  # fmt: skip

    def remove_item(self, cart_id: str, product_id: str, ttl_hours: int) -> bool:
        """Remove the product; a change of the (locked) cart only if it was there."""
        changed = self.session.execute(
            _REMOVE_ITEM, {"cart_id": cart_id, "product_id": product_id, "ttl_hours": ttl_hours}
        )
        return bool(changed.first())

    def delete(self, cart_id: str, customer_id: str) -> bool:
        """The customer's cart and its items; False if there was none of theirs."""
        found = self.session.execute(_DELETE_CART, {"id": cart_id, "customer_id": customer_id})
        return bool(found.first())

    def expire_batch(self, limit: int) -> int:
        """Mark up to ``limit`` open carts past their ``expires_at`` as ``expired``."""
        return len(self.session.execute(_EXPIRE_BATCH, {"limit": limit}).all())

    def purge_batch(self, closed_for_hours: int, limit: int) -> int:
        """Delete up to ``limit`` carts completed or expired over ``closed_for_hours`` ago."""
        found = self.session.execute(_PURGE_BATCH, {"hours": closed_for_hours, "limit": limit})
        return len(found.all())

    def _state(self, statement: Any, cart_id: str, customer_id: str) -> CartState | None:
        rows = self.session.execute(statement, {"cart_id": cart_id, "customer_id": customer_id})
        cart, lapsed, items = None, False, []
        for row in rows:
            cart, lapsed = row.Cart, bool(row.lapsed)
            if row.product_id is not None:
                items.append(CartItemRow(row.product_id, row.quantity, row.put_price, row.Product))
        return None if cart is None else CartState(cart, items, lapsed)


def complete_cart(prefix: str) -> Update:
    """Mark an open cart (``{prefix}id``) ``completed`` by its order (``{prefix}order_id``),
    returning its id: a CTE of the placement statement, so both commit or neither does."""
    return (
        update(_carts)
        .where(_carts.c.id == bindparam(f"{prefix}id"), _carts.c.status == CartStatus.OPEN)
        .values(
            status=CartStatus.COMPLETED,
            order_id=bindparam(f"{prefix}order_id", type_=_carts.c.order_id.type),
            version=_carts.c.version + 1,
            updated_at=func.now(),
        )
        .returning(_carts.c.id)
    )


# -- statements, built once -----------------------------------------------------------------

_carts, _items = table_of(Cart), table_of(CartItem)
#: At most this many carts a batch of the expiry or the purge (a cart's id and up to 100
#: items deleted with it): each batch is one short transaction whatever the backlog.
CART_BATCH = 500


def _expiry() -> Any:
    return func.now() + func.make_interval(0, 0, 0, 0, bindparam("ttl_hours"))


def _changed() -> dict[str, Any]:
    """What every change of a cart writes on its row: a new version, a new expiry."""
    return {"version": _carts.c.version + 1, "updated_at": func.now(), "expires_at": _expiry()}


_CART = (
    select(
        Cart,
        (Cart.expires_at <= func.now()).label("lapsed"),
        CartItem.product_id,
        CartItem.quantity,
        CartItem.unit_price_amount.label("put_price"),
        Product,
    )
    .outerjoin(CartItem, CartItem.cart_id == Cart.id)
    .outerjoin(Product, Product.id == CartItem.product_id)
    .where(Cart.id == bindparam("cart_id"), Cart.customer_id == bindparam("customer_id"))
    .order_by(CartItem.id)
    .execution_options(populate_existing=True)
)
_LOCK_CART = _CART.with_for_update(of=Cart)


def _param(name: str, table: Any = _carts) -> BindParameter[Any]:
    return bindparam(name, type_=table.c[name].type)


_ITEM_COLUMNS = ("product_id", "quantity", "unit_price_amount")
_item_rows = (
    func.jsonb_to_recordset(bindparam("items", type_=JSONB))
    .table_valued(*(column(name, _items.c[name].type) for name in _ITEM_COLUMNS))
    .render_derived(name="item", with_types=True)
)
#: The cart and its first items (the items' foreign key on the cart is checked at the end of
#: the statement, as the order's lines are).
_CREATE_CART = select(
    insert(_carts)
    .values(
        id=bindparam("id", type_=_carts.c.id.type),
        customer_id=_param("customer_id"),
        status=_param("status"),
        currency=_param("currency"),
        expires_at=_expiry(),
    )
    .returning(_carts.c.id)
    .cte("cart")
    .c.id
).add_cte(
    insert(_items)
    .from_select(
        ["cart_id", *_ITEM_COLUMNS],
        select(bindparam("id", type_=_items.c.cart_id.type), *_item_rows.c),
    )
    .cte("items")
)

_upsert = pg_insert(_items).values(
    cart_id=bindparam("cart_id", type_=_items.c.cart_id.type),
    product_id=_param("product_id", _items),
    quantity=_param("quantity", _items),
    unit_price_amount=_param("unit_price_amount", _items),
)
_PUT_ITEM = (
    update(_carts)
    .where(_carts.c.id == bindparam("cart_id"))
    .values(**_changed())
    .add_cte(
        _upsert.on_conflict_do_update(
            constraint="cart_items_one_per_product",
            set_={
                "quantity": _upsert.excluded.quantity,
                "unit_price_amount": _upsert.excluded.unit_price_amount,
            },
        ).cte("item")
    )
)
_removed = (
    delete(_items)
    .where(_items.c.cart_id == bindparam("cart_id"), _items.c.product_id == bindparam("product_id"))
    .returning(_items.c.id)
    .cte("removed")
)
_REMOVE_ITEM = (
    update(_carts)
    .where(_carts.c.id == bindparam("cart_id"), exists(select(_removed.c.id)))
    .values(**_changed())
    .add_cte(_removed)
    .returning(_carts.c.id)
)
_DELETE_CART = (
    delete(_carts)
    .where(_carts.c.id == bindparam("id"), _carts.c.customer_id == bindparam("customer_id"))
    .returning(_carts.c.id)
)


def _batch(*conditions: Any, order_by: Any) -> Any:
    """Ids of up to ``limit`` carts matching ``conditions``, oldest first, locked; carts a
    change or a checkout holds are skipped (the next run finds them), so a batch never
    waits on a lock and holds its own only for its one statement."""
    return (
        select(_carts.c.id)
        .where(*conditions)
        .order_by(order_by)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


_lapsed = (_carts.c.status == CartStatus.OPEN, _carts.c.expires_at <= func.now())
_EXPIRE_BATCH = (
    update(_carts)
    .where(_carts.c.id.in_(_batch(*_lapsed, order_by=_carts.c.expires_at)), *_lapsed)
    .values(status=CartStatus.EXPIRED, version=_carts.c.version + 1, updated_at=func.now())
    .returning(_carts.c.id)
)
_closed = (
    _carts.c.status != CartStatus.OPEN,
    _carts.c.updated_at < func.now() - func.make_interval(0, 0, 0, 0, bindparam("hours")),
)
_PURGE_BATCH = (
    delete(_carts)
    .where(_carts.c.id.in_(_batch(*_closed, order_by=_carts.c.updated_at)), *_closed)
    .returning(_carts.c.id)
)
