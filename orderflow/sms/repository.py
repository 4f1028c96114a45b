"""Every statement on ``sms_messages``, in the caller's transaction (never commits).

A row is the promise of one text of a kind for an order (unique per order and kind); the
send step claims it (``claimed_at``, a lease) before calling the provider, so two workers
never send it at once, and settles it once the provider answered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from orderflow.models import SmsRecord, table_of
from orderflow.statuses import SmsStatus

#: How long a claim protects a send in progress; past it, the sender is presumed dead (a
#: send and a look-up take at most two provider timeouts; retries back off outside it).
CLAIM_LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Claim:
    """A text this worker may send now. ``attempts`` counts this one: past 1, an earlier
    attempt may have reached the provider."""

    order_id: str
    kind: str
    recipient: str
    body: str | None
    attempts: int


class SmsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def owe(self, order_id: str, kind: str, recipient: str) -> bool:
        """Record that the order owes this text; False if it was already owed (or settled)."""
        return (
            self.session.execute(_OWE, _key(order_id, kind) | {"recipient": recipient}).first()
            is not None
        )

    def claim(self, order_id: str, kind: str) -> Claim | None:
        """Take the pending text for sending, unless another worker holds a live claim."""
        row = self.session.execute(_CLAIM, _key(order_id, kind)).first()
        if row is None:
            return None
        return Claim(order_id, kind, row.recipient, row.body, row.attempts)

    def fix_text(self, order_id: str, kind: str, recipient: str, body: str) -> None:
        """Freeze what the first attempt sends, so every later one sends (and looks up) it."""
        self.session.execute(
            _FIX_TEXT, _key(order_id, kind) | {"new_recipient": recipient, "new_body": body}
        )

    def release(self, order_id: str, kind: str) -> None:
        """Give the claim up (the send failed for now): a retry may take it at once."""
        self.session.execute(_RELEASE, _key(order_id, kind))

    def settle(
        self,
        order_id: str,
        kind: str,
        status: SmsStatus,
        *,
        provider_message_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Mark the pending text ``status``; False if something settled it already."""
        settled = self.session.execute(
            _SETTLE,
            _key(order_id, kind)
            | {
                "new_status": status.value,
                "provider_message_id": provider_message_id,
                "error": None if error is None else error[:200],
                "sent": status is SmsStatus.SENT,
            },
        ).first()
        return settled is not None

    def stalled(self, cutoff: datetime, limit: int) -> list[tuple[str, str]]:
        """(order id, kind) of texts still owed, untouched since ``cutoff`` and not held by a
        live claim: their step's message was lost, or its retries ran out."""
        rows = self.session.execute(
            select(_sms.c.order_id, _sms.c.kind)
            .where(
                _sms.c.status == SmsStatus.PENDING.value,
                _sms.c.updated_at < cutoff,
                _claim_free(),
            )
            .order_by(_sms.c.updated_at)
            .limit(limit)
        ).all()
        return [(str(row.order_id), str(row.kind)) for row in rows]

    def touch_all(self, keys: Sequence[tuple[str, str]]) -> None:
        if keys:
            self.session.execute(
                update(_sms)
                .where(tuple_(_sms.c.order_id, _sms.c.kind).in_(list(keys)))
                .values(updated_at=func.now())
            )

    def of_order(self, order_id: str) -> list[SmsRecord]:
        return list(
            self.session.scalars(
                select(SmsRecord)
                .where(SmsRecord.order_id == order_id)
                .order_by(SmsRecord.id)
                .execution_options(populate_existing=True)
            )
        )


def _key(order_id: str, kind: str) -> dict[str, str]:
    return {"sms_order_id": order_id, "sms_kind": kind}


_sms = table_of(SmsRecord)
_this = and_(_sms.c.order_id == bindparam("sms_order_id"), _sms.c.kind == bindparam("sms_kind"))
_pending = _sms.c.status == SmsStatus.PENDING.value


def _claim_free() -> ColumnElement[bool]:
    return or_(_sms.c.claimed_at.is_(None), _sms.c.claimed_at < func.now() - CLAIM_LEASE)


# Built once (compiled and cache-keyed once).
_OWE = (
    insert(_sms)
    .values(
        order_id=bindparam("sms_order_id"),
        kind=bindparam("sms_kind"),
        recipient=bindparam("recipient"),
        status=SmsStatus.PENDING.value,
    )
    .on_conflict_do_nothing(constraint="sms_one_per_kind")
    .returning(_sms.c.id)
)
_CLAIM = (
    update(_sms)
    .where(_this, _pending, _claim_free())
    .values(claimed_at=func.now(), attempts=_sms.c.attempts + 1, updated_at=func.now())
    .returning(_sms.c.recipient, _sms.c.body, _sms.c.attempts)
)
_FIX_TEXT = (
    update(_sms)
    .where(_this, _pending)
    .values(recipient=bindparam("new_recipient"), body=bindparam("new_body"))
)
_RELEASE = update(_sms).where(_this, _pending).values(claimed_at=None, updated_at=func.now())
_SETTLE = (
    update(_sms)
    .where(_this, _pending)
    .values(
        status=bindparam("new_status"),
        provider_message_id=bindparam("provider_message_id"),
        error=bindparam("error"),
        claimed_at=None,
        sent_at=case((bindparam("sent", type_=Boolean), func.now()), else_=None),
        updated_at=func.now(),
    )
    .returning(_sms.c.id)
)
