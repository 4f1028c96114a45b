import itertools

import pytest

from orderflow.errors import TransitionNotAllowed
from orderflow.orders.state import (
    AT_REST,
    TERMINAL,
    TRANSITIONS,
    ActorRole,
    allowed_targets,
    check_transition,
    is_allowed,
)
from orderflow.statuses import OrderStatus

S = OrderStatus

EXPECTED = {
    (S.PENDING, S.CONFIRMED): {ActorRole.SYSTEM},
    (S.PENDING, S.FAILED): {ActorRole.SYSTEM},
    (S.PENDING, S.CANCELLED): {ActorRole.SYSTEM, ActorRole.OWNER, ActorRole.ADMIN},
    (S.CONFIRMED, S.CANCELLED): {ActorRole.SYSTEM, ActorRole.OWNER, ActorRole.ADMIN},
    (S.CONFIRMED, S.SHIPPED): {ActorRole.SYSTEM, ActorRole.ADMIN},
    (S.SHIPPED, S.DELIVERED): {ActorRole.SYSTEM, ActorRole.ADMIN},
}


@pytest.mark.parametrize(("current", "target", "role"), list(itertools.product(S, S, ActorRole)))
def test_every_pair_follows_the_table(current: S, target: S, role: ActorRole) -> None:
    allowed = role in EXPECTED.get((current, target), set())
    assert is_allowed(current, target, role) is allowed
    if allowed:
        check_transition(current, target, role)
    else:
        with pytest.raises(TransitionNotAllowed):
            check_transition(current, target, role)


def test_table_is_the_documented_life_cycle() -> None:
    assert {pair: set(roles) for pair, roles in TRANSITIONS.items()} == EXPECTED


def test_terminal_statuses_have_no_way_out() -> None:
    for status in TERMINAL:
        for role in ActorRole:
            assert allowed_targets(status, role) == frozenset()


def test_customers_cannot_confirm_ship_or_fail_an_order() -> None:
    assert allowed_targets(S.PENDING, ActorRole.OWNER) == {S.CANCELLED}
    assert allowed_targets(S.CONFIRMED, ActorRole.OWNER) == {S.CANCELLED}
    assert allowed_targets(S.SHIPPED, ActorRole.OWNER) == frozenset()


def test_only_pending_is_not_at_rest() -> None:
    assert set(S) - AT_REST == {S.PENDING}


def test_refusal_names_both_statuses() -> None:
    with pytest.raises(TransitionNotAllowed, match="shipped cannot become pending"):
        check_transition(S.SHIPPED, S.PENDING, ActorRole.ADMIN)
