import pytest

from orderflow.money import CurrencyMismatch, Money


def test_adds_and_multiplies_in_minor_units() -> None:
    assert Money(5025, "usd") * 2 + Money(5025, "usd") == Money(15075, "usd")
    assert 3 * Money(10, "eur") == Money(30, "eur")


def test_sum_of_nothing_is_zero_in_that_currency() -> None:
    assert Money.sum([], "usd") == Money.zero("usd")
    assert Money.sum([Money(1, "usd"), Money(2, "usd")], "usd") == Money(3, "usd")


@pytest.mark.parametrize("amount", [1.5, "10", True, None])
def test_refuses_anything_but_integer_minor_units(amount: object) -> None:
    with pytest.raises(TypeError):
        Money(amount, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["USD", "us", "usdd", "", "12a"])
def test_refuses_currency_codes_that_are_not_lowercase_iso(currency: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(1, currency)


def test_never_mixes_currencies() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(1, "usd") + Money(1, "eur")
    with pytest.raises(CurrencyMismatch):
        _ = Money(1, "usd") < Money(2, "eur")


def test_refuses_fractional_quantities() -> None:
    with pytest.raises(TypeError):
        Money(100, "usd") * 1.5  # type: ignore[operator]


def test_compares_within_a_currency() -> None:
    assert Money(1, "usd") < Money(2, "usd") <= Money(2, "usd")
    assert Money(3, "usd") > Money(2, "usd") >= Money(2, "usd")
