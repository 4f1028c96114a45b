"""The returns tables (created by migration 0014_returns)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orderflow.models import Base, _enum_column, _now_column
from orderflow.money import Money
from orderflow.statuses import ReturnStatus


class Return(Base):
    """Units of one order's lines coming back (``ret_…``). ``refund_id`` is the refund made
    when they were received; ``refund_amount`` what it asked for (0: nothing was left to
    refund, or nothing of value came back)."""

    __tablename__ = "returns"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    status: Mapped[ReturnStatus] = _enum_column(ReturnStatus, 16)
    currency: Mapped[str] = mapped_column(String(3))
    requested_by: Mapped[str] = mapped_column(String(64))
    #: Why it was rejected, when it was.
    note: Mapped[str | None] = mapped_column(String(500))
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"), unique=True)
    refund_amount: Mapped[int] = mapped_column(BigInteger, server_default="0")
    received_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()

    lines: Mapped[list[ReturnLine]] = relationship(
        order_by="ReturnLine.id", lazy="selectin", back_populates="return_"
    )

    @property
    def refund_money(self) -> Money:
        return Money(self.refund_amount, self.currency)


class ReturnLine(Base):
    """Units of one order line in one return: asked for (``quantity``), then received
    (``received_quantity``, of which all go back on the shelf when ``restock``; the shelf
    took them at ``restocked_at``, once)."""

    __tablename__ = "return_lines"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    return_id: Mapped[str] = mapped_column(ForeignKey("returns.id"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), index=True)
    product_id: Mapped[str] = mapped_column(String(40))
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500), server_default="")
    received_quantity: Mapped[int | None] = mapped_column(Integer)
    restock: Mapped[bool | None] = mapped_column(Boolean)
    restocked_at: Mapped[datetime | None]

    return_: Mapped[Return] = relationship(back_populates="lines")

    __table_args__ = (
        UniqueConstraint("return_id", "order_line_id", name="return_lines_one_per_line"),
    )
