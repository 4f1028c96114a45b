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


@pytest.mark.parametrize("currency", ["xyz", "usx", "xau", "xts", "xxx"])
def test_refuses_codes_iso_4217_does_not_list_as_money(currency: str) -> None:
    # Shaped like a code but no currency (xyz), or ISO codes without a minor unit (gold,
    # the test code, "no currency"): nothing an order is paid in.
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(1, currency)


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("jpy", 0), ("krw", 0), ("usd", 2), ("eur", 2), ("kwd", 3), ("bhd", 3), ("clf", 4)],
)
def test_minor_units_follow_iso_4217(currency: str, exponent: int) -> None:
    assert Money(1, currency).exponent == exponent


@pytest.mark.parametrize(
    ("money", "shown"),
    [
        (Money(1500, "jpy"), "¥1,500"),
        (Money(1500, "kwd"), "KWD\u00a01.500"),
        (Money(1, "kwd"), "KWD\u00a00.001"),
        (Money(1500, "usd"), "$15.00"),
        (Money(5, "usd"), "$0.05"),
        (Money(123456789, "eur"), "€1,234,567.89"),
        (Money(-1250, "eur"), "-€12.50"),
        (Money(0, "jpy"), "¥0"),
        # CLDR says IQD and HUF take no decimals; ISO 4217 (and so the amount) says 3 and 2.
        (Money(1234, "iqd"), "IQD\u00a01.234"),
        (Money(1234, "huf"), "HUF\u00a012.34"),
    ],
)
def test_formats_each_currency_in_its_own_way(money: Money, shown: str) -> None:
    assert money.format() == shown


def test_formats_with_the_iso_code_when_asked() -> None:
    assert Money(1500, "jpy").format(code=True) == "JPY\u00a01,500"
    assert Money(1000, "inr").format(code=True) == "INR\u00a010.00"


def test_formats_in_another_locale() -> None:
    assert Money(123456, "eur").format("de_DE") == "1.234,56\u00a0€"


def test_a_very_large_amount_is_formatted_exactly() -> None:
    # Decimal all the way: no float rounds the last digits away.
    assert Money(10**20 + 1, "usd").format() == "$1,000,000,000,000,000,000.01"
