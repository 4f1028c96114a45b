"""The shipment state machine and the order's shipping status, without services."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.errors import TransitionNotAllowed
from orderflow.shipments.state import (
    CANCELLABLE,
    TERMINAL,
    TRANSITIONS,
    UNDER_WAY,
    LineProgress,
    check_cancel,
    derive_shipping_status,
    every_unit_under_way,
    is_allowed,
    moves_to,
)
from orderflow.statuses import OrderStatus, ShipmentStatus, ShippingStatus

S = ShipmentStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_moves_are_closed_under_chaining() -> None:
    """If a → b and b → c are allowed, so is a → c (or a is c): a carrier may skip statuses."""
    for (a, b), (b2, c) in itertools.product(TRANSITIONS, TRANSITIONS):
        if b == b2 and a != c:
            assert (a, c) in TRANSITIONS, (a, b, c)


def test_terminal_statuses_have_no_way_out_and_nothing_comes_back_to_pending() -> None:
    assert not [pair for pair in TRANSITIONS if pair[0] in TERMINAL]
    assert not [pair for pair in TRANSITIONS if pair[1] is S.PENDING]
    assert {pair[0] for pair in TRANSITIONS if pair[1] is S.CANCELLED} == CANCELLABLE
    assert not [pair for pair in TRANSITIONS if pair[0] in UNDER_WAY and pair[1] not in UNDER_WAY]


@pytest.mark.parametrize("status", list(S))
def test_cancel_only_before_in_transit(status: S) -> None:
    if status in CANCELLABLE:
        check_cancel(status)
    else:
        with pytest.raises(TransitionNotAllowed):
            check_cancel(status)


def test_an_update_dated_before_the_latest_never_moves() -> None:
    assert moves_to(S.PENDING, None, S.IN_TRANSIT, T0)
    assert not moves_to(S.OUT_FOR_DELIVERY, T0, S.DELIVERED, T0 - timedelta(seconds=1))
    assert moves_to(S.OUT_FOR_DELIVERY, T0, S.IN_TRANSIT, T0 + timedelta(hours=1))
    assert moves_to(S.IN_TRANSIT, T0, S.OUT_FOR_DELIVERY, T0)  # same instant: forward only
    assert not moves_to(S.OUT_FOR_DELIVERY, T0, S.IN_TRANSIT, T0)
    assert not moves_to(S.DELIVERED, T0, S.IN_TRANSIT, T0 + timedelta(days=1))
    assert not is_allowed(S.IN_TRANSIT, S.CANCELLED)


P = LineProgress
N, PR, PS, SH, PD, D = (ShippingStatus.NOT_SHIPPED, ShippingStatus.PROCESSING,
                        ShippingStatus.PARTIALLY_SHIPPED, ShippingStatus.SHIPPED,
                        ShippingStatus.PARTIALLY_DELIVERED, ShippingStatus.DELIVERED)  # fmt: skip


@pytest.mark.parametrize(
    ("order_status", "lines", "expected"),
    [
        (OrderStatus.PENDING, [P(2, 0, 0)], N),
        (OrderStatus.CANCELLED, [P(2, 0, 0)], N),
        (OrderStatus.FAILED, [P(2, 0, 0)], N),
        (OrderStatus.CONFIRMED, [P(2, 0, 0)], PR),
        (OrderStatus.CONFIRMED, [P(2, 0, 0), P(1, 0, 0)], PR),
        (OrderStatus.CONFIRMED, [P(2, 1, 0)], PS),
        (OrderStatus.CONFIRMED, [P(2, 2, 0), P(1, 0, 0)], PS),
        (OrderStatus.CONFIRMED, [P(2, 2, 0), P(1, 1, 0)], SH),
        (OrderStatus.SHIPPED, [P(2, 2, 0), P(1, 1, 0)], SH),
        (OrderStatus.SHIPPED, [P(2, 2, 1), P(1, 1, 0)], PD),
        (OrderStatus.CONFIRMED, [P(2, 2, 2), P(1, 0, 0)], PD),
        (OrderStatus.SHIPPED, [P(2, 2, 2), P(1, 1, 1)], D),
        (OrderStatus.DELIVERED, [P(2, 2, 2), P(1, 1, 1)], D),
        (OrderStatus.CONFIRMED, [], PR),
    ],
)
def test_shipping_status_is_derived_from_line_quantities(
    order_status: OrderStatus, lines: list[LineProgress], expected: ShippingStatus
) -> None:
    assert derive_shipping_status(order_status, lines) is expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], False),
        ([P(2, 0, 0)], False),
        ([P(2, 1, 0)], False),
        ([P(2, 2, 2), P(1, 0, 0)], False),  # one parcel arrived, the other never left
        ([P(2, 2, 0), P(1, 1, 1)], True),
        ([P(2, 2, 2), P(1, 1, 1)], True),
    ],
)
def test_an_order_is_shipped_only_when_every_unit_is_under_way(
    lines: list[LineProgress], expected: bool
) -> None:
    assert every_unit_under_way(lines) is expected


def tracking_walks() -> st.SearchStrategy[list[S]]:
    """Time-ordered tracking reports a carrier could send: each step an allowed move."""

    @st.composite
    def walk(draw: st.DrawFn) -> list[S]:
        path, current = [], S.PENDING
        for _ in range(draw(st.integers(1, 8))):
            options = sorted(b for a, b in TRANSITIONS if a is current and b is not S.CANCELLED)
            if not options:
                break
            current = draw(st.sampled_from(options))
            path.append(current)
        return path

    return walk()


@settings(max_examples=300, deadline=None)
@given(walk=tracking_walks(), seed=st.integers(0, 2**32), repeats=st.integers(0, 4))
def test_any_arrival_order_of_the_same_updates_ends_in_the_same_state(
    walk: list[S], seed: int, repeats: int
) -> None:
    """Updates shuffled and some repeated (redelivered) end where the latest one says."""
    updates = [(status, T0 + timedelta(minutes=i)) for i, status in enumerate(walk)]
    rng = random.Random(seed)
    arrivals = updates + [rng.choice(updates) for _ in range(repeats)]
    rng.shuffle(arrivals)
    status, at = S.PENDING, None
    seen: set[tuple[S, datetime]] = set()
    for reported, occurred in arrivals:
        if (reported, occurred) in seen:
            continue
        seen.add((reported, occurred))
        if moves_to(status, at, reported, occurred):
            status, at = reported, occurred
    assert status is walk[-1]
