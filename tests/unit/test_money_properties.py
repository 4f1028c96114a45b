"""Money's arithmetic, as properties over generated amounts and currencies: exact integer
minor units in one currency, never floats, never two currencies mixed."""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import reduce
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderflow.money import CURRENCIES as ISO_CURRENCIES
from orderflow.money import CurrencyMismatch, Money

#: Far beyond any order (the API caps a price at 10^10), and beyond a float's exact range, so
#: a float sneaking into the arithmetic would lose digits and show.
AMOUNTS = st.integers(min_value=-(10**20), max_value=10**20)
CURRENCIES = st.sampled_from(sorted(ISO_CURRENCIES))
QUANTITIES = st.integers(min_value=-(10**6), max_value=10**6)


@st.composite
def monies(draw: st.DrawFn, currency: str | None = None) -> Money:
    return Money(draw(AMOUNTS), currency or draw(CURRENCIES))


@st.composite
def same_currency(draw: st.DrawFn, count: int) -> list[Money]:
    currency = draw(CURRENCIES)
    return [draw(monies(currency)) for _ in range(count)]


@st.composite
def two_currencies(draw: st.DrawFn) -> tuple[Money, Money]:
    first, second = draw(st.lists(CURRENCIES, min_size=2, max_size=2, unique=True))
    return draw(monies(first)), draw(monies(second))


def _exact(money: Money) -> Money:
    """The amount is a true int (not a float, not a bool) and the currency is kept."""
    assert type(money.amount) is int, f"{money.amount!r} is a {type(money.amount).__name__}"
    return money


@given(same_currency(3))
def test_addition_is_associative(values: list[Money]) -> None:
    a, b, c = values
    assert _exact((a + b) + c) == _exact(a + (b + c))


@given(same_currency(2))
def test_addition_is_commutative(values: list[Money]) -> None:
    a, b = values
    assert _exact(a + b) == _exact(b + a)


@given(monies())
def test_zero_is_the_identity_and_subtraction_undoes_addition(a: Money) -> None:
    zero = Money.zero(a.currency)
    assert a + zero == zero + a == a - zero == a
    assert _exact(a - a) == zero


@given(same_currency(2))
def test_subtraction_undoes_addition(values: list[Money]) -> None:
    a, b = values
    assert _exact((a + b) - b) == a


@given(same_currency(2), QUANTITIES)
def test_multiplication_distributes_over_addition(values: list[Money], k: int) -> None:
    a, b = values
    assert _exact((a + b) * k) == _exact(a * k + b * k)
    assert k * (a + b) == (a + b) * k  # __rmul__ is the same operation


@given(monies(), QUANTITIES, QUANTITIES)
def test_quantities_add_up_like_lines(a: Money, k: int, m: int) -> None:
    assert _exact(a * (k + m)) == a * k + a * m
    assert _exact(a * k * m) == a * (k * m)
    assert a * 1 == a
    assert a * 0 == Money.zero(a.currency)


@given(monies(), QUANTITIES)
def test_multiplication_is_exact_in_minor_units(a: Money, k: int) -> None:
    assert _exact(a * k).amount == a.amount * k
    assert (a * k).currency == a.currency


@given(st.data(), st.integers(min_value=0, max_value=20))
def test_sum_is_the_fold_of_addition(data: st.DataObject, count: int) -> None:
    values = data.draw(same_currency(count)) if count else []
    currency = values[0].currency if values else data.draw(CURRENCIES)
    total = Money.sum(values, currency)
    assert _exact(total) == reduce(operator.add, values, Money.zero(currency))
    assert total.amount == sum(value.amount for value in values)


_COMBINATIONS: list[Callable[[Money, Money], Any]] = [
    operator.add,
    operator.sub,
    operator.lt,
    operator.le,
    operator.gt,
    operator.ge,
    lambda a, b: Money.sum([a, b], a.currency),
]


@pytest.mark.parametrize("combine", _COMBINATIONS)
@given(pair=two_currencies())
def test_mixing_currencies_always_raises(
    combine: Callable[[Money, Money], Any], pair: tuple[Money, Money]
) -> None:
    a, b = pair
    with pytest.raises(CurrencyMismatch):
        combine(a, b)
    with pytest.raises(CurrencyMismatch):
        combine(b, a)


@given(two_currencies())
def test_different_currencies_are_never_equal(pair: tuple[Money, Money]) -> None:
    a, b = pair
    assert a != b
    assert Money(a.amount, b.currency) != a


@given(same_currency(2))
def test_comparisons_order_amounts_within_a_currency(values: list[Money]) -> None:
    a, b = values
    assert (a < b) == (a.amount < b.amount)
    assert (a <= b) == (a.amount <= b.amount)
    assert (a > b) == (a.amount > b.amount)
    assert (a >= b) == (a.amount >= b.amount)
    assert (a == b) == (a.amount == b.amount)
    if a == b:
        assert hash(a) == hash(b)


@given(st.floats(allow_nan=True, allow_infinity=True), CURRENCIES)
def test_a_float_is_never_an_amount(amount: float, currency: str) -> None:
    with pytest.raises(TypeError):
        Money(amount, currency)  # type: ignore[arg-type]


@given(monies(), st.floats(allow_nan=True, allow_infinity=True) | st.booleans() | st.decimals())
def test_quantities_are_integers_only(a: Money, quantity: object) -> None:
    with pytest.raises(TypeError):
        a * quantity  # type: ignore[operator]
    with pytest.raises(TypeError):
        quantity * a  # type: ignore[operator]


@given(AMOUNTS, st.text(max_size=5).filter(lambda text: text not in ISO_CURRENCIES))
def test_only_iso_4217_codes_are_currencies(amount: int, currency: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(amount, currency)


@given(AMOUNTS, CURRENCIES)
def test_a_currency_code_with_a_trailing_newline_is_refused(amount: int, currency: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(amount, currency + "\n")
