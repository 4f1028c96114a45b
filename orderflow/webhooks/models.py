"""The webhook tables (created by migration 0008; disablement notices by 0012)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from orderflow.models import Base, _now_column


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    #: ``event_types`` as LIKE patterns (``order.*`` → ``order.%``), matched in SQL.
    type_likes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    status: Mapped[str] = mapped_column(String(16), server_default="enabled")
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(64))
    disabled_at: Mapped[datetime | None]
    #: Times the system disabled it; the admins are told once per disablement.
    disablements: Mapped[int] = mapped_column(Integer, server_default="0")
    #: The last disablement whose notices were all sent.
    notified_disablements: Mapped[int] = mapped_column(Integer, server_default="0")
    #: When the dispatcher last scheduled notices that were not all sent.
    notices_dispatched_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(40))
    sequence: Mapped[int] = mapped_column(Integer)
    replay: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = _now_column()
    claimed_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()
    delivered_at: Mapped[datetime | None]


class WebhookEndpointNotice(Base):
    """One e-mail to one admin about one disablement of one endpoint, whatever retries."""

    __tablename__ = "webhook_endpoint_notices"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    disablement: Mapped[int] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(8), server_default="sending")
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    #: Set while one worker is sending; a claim older than the lease was abandoned.
    claimed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now_column()
    sent_at: Mapped[datetime | None]
