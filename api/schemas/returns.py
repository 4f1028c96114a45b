from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from api.schemas.common import RequestBody, WholeNumber
from orderflow.returns.models import Return
from orderflow.statuses import ReturnStatus

ProductId = Annotated[str, Field(min_length=1, max_length=40)]
Reason = Annotated[str, Field(max_length=500)]


class ReturnLineIn(RequestBody):
    product_id: ProductId
    quantity: Annotated[int, Field(ge=1, le=1000, strict=True), WholeNumber]
    reason: Reason = ""


class ReturnCreate(RequestBody):
    lines: Annotated[list[ReturnLineIn], Field(min_length=1, max_length=100)]


class ReturnRejectIn(RequestBody):
    """Why the return is refused (shown to the customer)."""

    reason: Reason | None = None


class ReceivedLineIn(RequestBody):
    """``quantity`` units of the product came back (0: none did); ``restock``: they are
    sellable and go back on the shelf."""

    product_id: ProductId
    quantity: Annotated[int, Field(ge=0, le=1000, strict=True), WholeNumber]
    restock: bool


class ReturnReceiveIn(RequestBody):
    """What came back, per product of the return; products not named: nothing."""

    lines: Annotated[list[ReceivedLineIn], Field(min_length=1, max_length=100)]


class ReturnLineOut(BaseModel):
    product_id: str
    sku: str
    quantity: int
    reason: str
    received_quantity: int | None
    restock: bool | None


class ReturnOut(BaseModel):
    id: str
    order_id: str
    status: ReturnStatus
    currency: str
    lines: list[ReturnLineOut]
    refund_id: str | None
    refund_amount: int
    note: str | None
    requested_by: str
    received_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, return_: Return) -> ReturnOut:
        return cls(
            id=return_.id,
            order_id=return_.order_id,
            status=ReturnStatus(return_.status),
            currency=return_.currency,
            lines=[
                ReturnLineOut(
                    product_id=line.product_id,
                    sku=line.sku,
                    quantity=line.quantity,
                    reason=line.reason,
                    received_quantity=line.received_quantity,
                    restock=line.restock,
                )
                for line in return_.lines
            ],
            refund_id=return_.refund_id,
            refund_amount=return_.refund_amount,
            note=return_.note,
            requested_by=return_.requested_by,
            received_at=return_.received_at,
            created_at=return_.created_at,
            updated_at=return_.updated_at,
        )
