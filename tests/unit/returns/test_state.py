"""The return state machine: its moves, the refusals it words, the units a return holds."""

from __future__ import annotations

from itertools import pairwise

import pytest

from orderflow.errors import TransitionNotAllowed
from orderflow.returns.state import (
    HOLDING,
    TERMINAL,
    TRANSITIONS,
    check_move,
    is_allowed,
    units_held,
)
from orderflow.statuses import ReturnStatus as R


def test_the_happy_path_and_rejection() -> None:
    path = [R.REQUESTED, R.APPROVED, R.RECEIVED, R.REFUNDED]
    assert all(is_allowed(a, b) for a, b in pairwise(path))
    assert is_allowed(R.REQUESTED, R.REJECTED)
    assert is_allowed(R.APPROVED, R.REJECTED)


@pytest.mark.parametrize("current", list(R))
@pytest.mark.parametrize("target", list(R))
def test_only_the_listed_moves(current: R, target: R) -> None:
    assert is_allowed(current, target) == ((current, target) in TRANSITIONS)
    if current in TERMINAL:
        assert not is_allowed(current, target)
    if (current, target) in TRANSITIONS:
        check_move("ret_x", current, target)
    else:
        with pytest.raises(TransitionNotAllowed) as refused:
            check_move("ret_x", current, target)
        assert refused.value.extra == {"return_id": "ret_x", "return_status": current.value}


def test_nothing_is_received_twice_or_before_approval() -> None:
    for current, why in ((R.RECEIVED, "received already"), (R.REQUESTED, "approve it first")):
        with pytest.raises(TransitionNotAllowed, match=why):
            check_move("ret_x", current, R.RECEIVED)


def test_units_held() -> None:
    assert units_held(R.REQUESTED, 3, None) == 3
    assert units_held(R.APPROVED, 3, None) == 3
    assert units_held(R.RECEIVED, 3, 1) == 1
    assert units_held(R.REFUNDED, 3, 0) == 0
    assert units_held(R.REJECTED, 3, None) == 0
    assert R.REJECTED not in HOLDING
