from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from api import examples as ex
from api.schemas.common import Currency, RequestBody, WholeNumber, with_examples
from api.schemas.orders import LineIn
from orderflow.carts.service import MAX_ITEMS, MAX_QUANTITY, CartView
from orderflow.statuses import CartStatus


class CartCreate(RequestBody):
    model_config = with_examples(ex.CART_REQUEST, {"currency": "usd"})

    currency: Currency | None = Field(
        default=None, description="unset: the currency of the products put in the cart"
    )
    items: Annotated[list[LineIn], Field(default_factory=list, max_length=MAX_ITEMS)]


class ItemQuantity(RequestBody):
    model_config = with_examples({"quantity": 2}, {"quantity": 0})

    quantity: Annotated[
        int, Field(ge=0, le=MAX_QUANTITY, strict=True, description="0 removes"), WholeNumber
    ]


class CartItemOut(BaseModel):
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price: int = Field(description="the catalogue's price now")
    subtotal: int
    in_stock: bool = Field(description="sold and in stock for this quantity now (not held)")


class CartOut(BaseModel):
    id: str
    status: CartStatus
    currency: str | None
    items: list[CartItemOut]
    subtotal: int
    total: int
    order_id: str | None
    version: int = Field(description="grows with every change of the cart")
    expires_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: CartView) -> CartOut:
        cart = view.state.cart
        return cls(
            id=cart.id,
            status=view.status,
            currency=view.currency,
            items=[
                CartItemOut(
                    product_id=line.product_id,
                    sku=line.sku,
                    name=line.name,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    subtotal=line.subtotal,
                    in_stock=line.in_stock,
                )
                for line in view.lines
            ],
            subtotal=view.subtotal,
            total=view.subtotal,
            order_id=cart.order_id,
            version=cart.version,
            expires_at=cart.expires_at,
            created_at=cart.created_at,
            updated_at=cart.updated_at,
        )
