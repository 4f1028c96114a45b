from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from api import examples as ex
from api.schemas.common import (
    NON_BLANK,
    Amount,
    CountryCode,
    RequestBody,
    WholeNumber,
    with_examples,
)
from orderflow.models import CreditNote, Order, OrderEvent, Refund
from orderflow.statuses import OrderStatus, PaymentStatus, RefundStatus, ShippingStatus

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=NON_BLANK)]
OptionalText = Annotated[str, Field(max_length=200)] | None


class ShippingAddress(RequestBody):
    model_config = with_examples(ex.ADDRESS)

    name: Text
    line1: Text
    line2: OptionalText = None
    city: Text
    state: OptionalText = None
    postal_code: Annotated[str, Field(min_length=1, max_length=20, pattern=NON_BLANK)]
    country: CountryCode


class LineIn(RequestBody):
    product_id: Annotated[str, Field(min_length=1, max_length=40)]
    quantity: Annotated[int, Field(ge=1, le=1000, strict=True), WholeNumber]


CartId = Annotated[str, Field(min_length=1, max_length=40)]


class OrderCreate(RequestBody):
    """Lines in ``items``, or the caller's cart ``cart_id``: one of the two (else 422)."""

    model_config = with_examples(ex.ORDER_REQUEST, ex.CHECKOUT_REQUEST)

    items: Annotated[list[LineIn], Field(min_length=1, max_length=100)] | None = None
    cart_id: CartId | None = Field(
        default=None, description="order the lines of this cart of yours instead of `items`"
    )
    expected_total: Amount | None = Field(
        default=None,
        description="with `cart_id`: the total you showed; 409 price-changed if the cart "
        "costs another amount now",
    )
    shipping_address: ShippingAddress
    payment_method: Annotated[
        str, Field(min_length=1, max_length=255, pattern=r"^pm_[A-Za-z0-9_]+$")
    ]
    customer_id: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        default=None, description="admins only, with `items`: order for this customer"
    )


class LineChange(RequestBody):
    product_id: Annotated[str, Field(min_length=1, max_length=40)]
    quantity: Annotated[
        int,
        Field(ge=0, le=1000, strict=True, description="the new quantity, lower; 0 removes"),
        WholeNumber,
    ]


class OrderChangeIn(RequestBody):
    """What to change; at least one of the two (else 422)."""

    model_config = with_examples(ex.ORDER_CHANGE_REQUEST, ex.ADDRESS_CHANGE_REQUEST)

    shipping_address: ShippingAddress | None = Field(
        default=None, description="the new address; only until the first shipment"
    )
    items: Annotated[list[LineChange], Field(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="lines to lower or remove (quantity 0), once each; other lines stay",
    )


class StatusChange(RequestBody):
    model_config = with_examples({"status": "shipped"})

    status: OrderStatus


class LineOut(BaseModel):
    product_id: str
    sku: str
    name: str
    quantity: int
    unit_price: int
    subtotal: int


class OrderOut(BaseModel):
    model_config = with_examples(ex.ORDER)

    id: str
    customer_id: str
    status: OrderStatus
    payment_status: PaymentStatus
    shipping_status: ShippingStatus
    currency: str
    subtotal: int
    total: int
    items: list[LineOut]
    shipping_address: dict[str, Any]
    invoice_number: str | None
    payment_intent_id: str | None
    failure_reason: str | None
    next_action_url: str | None = Field(
        default=None,
        description="Where the customer authenticates the payment (3-D Secure) while the "
        "order waits for it: with the local payment provider, this API's own page; "
        "otherwise null.",
    )
    captured_amount: int
    refunded_amount: int
    refundable_amount: int
    cart_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order, next_action_url: str | None = None) -> OrderOut:
        return cls(
            id=order.id,
            customer_id=order.customer_id,
            status=OrderStatus(order.status),
            payment_status=PaymentStatus(order.payment_status),
            shipping_status=ShippingStatus(order.shipping_status),
            currency=order.currency,
            subtotal=order.subtotal_amount,
            total=order.total_amount,
            items=[
                LineOut(
                    product_id=line.product_id,
                    sku=line.sku,
                    name=line.name,
                    quantity=line.quantity,
                    unit_price=line.unit_price_amount,
                    subtotal=line.subtotal_amount,
                )
                for line in order.lines
            ],
            shipping_address=order.shipping_address,
            invoice_number=order.invoice_number,
            payment_intent_id=order.payment_intent_id,
            failure_reason=order.failure_reason,
            next_action_url=next_action_url,
            captured_amount=order.captured_amount,
            refunded_amount=order.refunded_amount,
            refundable_amount=order.refundable.amount,
            cart_id=order.cart_id,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class RefundCreate(RequestBody):
    model_config = with_examples(ex.REFUND_REQUEST)

    amount: Annotated[
        int,
        Field(ge=1, le=10_000_000_000, strict=True, description="minor units of the currency"),
        WholeNumber,
    ]
    reason: Annotated[str, Field(max_length=500)] = ""


class RefundOut(BaseModel):
    model_config = with_examples(ex.REFUND)

    id: str
    order_id: str
    amount: int
    currency: str
    status: RefundStatus
    reason: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, refund: Refund) -> RefundOut:
        return cls(
            id=refund.id,
            order_id=refund.order_id,
            amount=refund.amount,
            currency=refund.currency,
            status=refund.status,
            reason=refund.reason,
            created_at=refund.created_at,
            updated_at=refund.updated_at,
        )


class CreditNoteOut(BaseModel):
    model_config = with_examples(ex.CREDIT_NOTE)

    number: str
    order_id: str
    refund_id: str
    invoice_number: str = Field(description="the invoice it credits")
    amount: int
    currency: str
    issued_at: datetime
    url: str = Field(description="where its PDF is")

    @classmethod
    def of(cls, note: CreditNote) -> CreditNoteOut:
        return cls(
            number=note.number,
            order_id=note.order_id,
            refund_id=note.refund_id,
            invoice_number=note.invoice_number,
            amount=note.amount,
            currency=note.currency,
            issued_at=note.issued_at,
            url=f"/api/v1/orders/{note.order_id}/credit-notes/{note.number}.pdf",
        )


class EventOut(BaseModel):
    model_config = with_examples(ex.EVENTS[0])

    id: str
    type: str
    data: dict[str, Any]
    actor: str
    created_at: datetime

    @classmethod
    def of(cls, event: OrderEvent) -> EventOut:
        return cls(
            id=event.id,
            type=event.type,
            data=event.data,
            actor=event.actor,
            created_at=event.created_at,
        )
