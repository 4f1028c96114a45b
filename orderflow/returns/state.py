"""The return state machine, beside the order's and the shipment's: which status may follow
which, and how many units of an order line a return holds in each.

``requested → approved → received → refunded``; ``rejected`` from ``requested`` or
``approved`` (nothing came back). A return is ``refunded`` once the refund of its received
units succeeded, or at once when there was nothing left to refund."""

from __future__ import annotations

from orderflow.errors import TransitionNotAllowed
from orderflow.statuses import ReturnStatus

R = ReturnStatus

TRANSITIONS: frozenset[tuple[ReturnStatus, ReturnStatus]] = frozenset(
    {
        (R.REQUESTED, R.APPROVED),
        (R.REQUESTED, R.REJECTED),
        (R.APPROVED, R.REJECTED),
        (R.APPROVED, R.RECEIVED),
        (R.RECEIVED, R.REFUNDED),
    }
)
#: Statuses a return never leaves.
TERMINAL = frozenset({R.REFUNDED, R.REJECTED})
#: Returns whose units count against what may still be returned: the asked-for units until
#: received, the received ones from then on; a rejected return holds none.
HOLDING = frozenset({R.REQUESTED, R.APPROVED, R.RECEIVED, R.REFUNDED})
#: Returns whose received quantities are known.
RECEIVED = frozenset({R.RECEIVED, R.REFUNDED})

_WHY = {
    R.REQUESTED: "approve it first",
    R.RECEIVED: "it was received already",
    R.REFUNDED: "it was received and refunded already",
    R.REJECTED: "it was rejected",
}


def is_allowed(current: ReturnStatus, target: ReturnStatus) -> bool:
    return (current, target) in TRANSITIONS


def check_move(return_id: str, current: ReturnStatus, target: ReturnStatus) -> None:
    """409 ``transition-not-allowed`` unless the machine allows ``current → target``."""
    if not is_allowed(current, target):
        why = _WHY.get(current, "")
        raise TransitionNotAllowed(
            f"return {return_id} is {current.value} and cannot become {target.value}"
            + (f": {why}" if why and target is not R.REJECTED else ""),
            return_id=return_id,
            return_status=current.value,
        )


def units_held(status: ReturnStatus, quantity: int, received_quantity: int | None) -> int:
    """Units of a return line that count as returned (``HOLDING``)."""
    if status not in HOLDING:
        return 0
    if status in RECEIVED:
        return received_quantity or 0
    return quantity
