"""The order state machine: the only place that says which status may follow which, and who
may make the move. Every transition elsewhere goes through :func:`check_transition`."""

from __future__ import annotations

from enum import StrEnum

from orderflow.errors import TransitionNotAllowed
from orderflow.statuses import OrderStatus


class ActorRole(StrEnum):
    """Who asks for a transition: the pipeline, the customer who owns the order, an admin."""

    SYSTEM = "system"
    OWNER = "owner"
    ADMIN = "admin"


_SYSTEM = frozenset({ActorRole.SYSTEM})
_ANYONE = frozenset({ActorRole.SYSTEM, ActorRole.OWNER, ActorRole.ADMIN})
_ADMIN = frozenset({ActorRole.ADMIN, ActorRole.SYSTEM})

TRANSITIONS: dict[tuple[OrderStatus, OrderStatus], frozenset[ActorRole]] = {
    (OrderStatus.PENDING, OrderStatus.CONFIRMED): _SYSTEM,
    (OrderStatus.PENDING, OrderStatus.FAILED): _SYSTEM,
    (OrderStatus.PENDING, OrderStatus.CANCELLED): _ANYONE,
    (OrderStatus.CONFIRMED, OrderStatus.CANCELLED): _ANYONE,
    (OrderStatus.CONFIRMED, OrderStatus.SHIPPED): _ADMIN,
    (OrderStatus.SHIPPED, OrderStatus.DELIVERED): _ADMIN,
}

#: Statuses an order never leaves.
TERMINAL = frozenset({OrderStatus.DELIVERED, OrderStatus.CANCELLED, OrderStatus.FAILED})
#: Statuses where the pipeline has nothing left to do on its own.
AT_REST = frozenset(set(OrderStatus) - {OrderStatus.PENDING})


def allowed_targets(current: OrderStatus, role: ActorRole) -> frozenset[OrderStatus]:
    return frozenset(
        target
        for (source, target), roles in TRANSITIONS.items()
        if source == current and role in roles
    )


def is_allowed(current: OrderStatus, target: OrderStatus, role: ActorRole) -> bool:
    return role in TRANSITIONS.get((current, target), frozenset())


def check_transition(current: OrderStatus, target: OrderStatus, role: ActorRole) -> None:
    if not is_allowed(current, target, role):
        raise TransitionNotAllowed(
            f"an order that is {current.value} cannot become {target.value}"
            + ("" if (current, target) not in TRANSITIONS else f" by {role.value}")
        )
