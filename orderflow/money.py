"""Money: integer minor units plus a lowercase ISO 4217 currency code. Never floats.

Which currencies exist and how many decimals their minor unit has (JPY 0, USD 2, KWD 3) is
ISO 4217's table as the ``iso4217`` package ships it; how an amount is written for a person
(symbol, grouping, decimal mark) is CLDR's, through ``babel``. Only ``format`` turns money
into text, and only at the edges (invoice, e-mail)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from babel import Locale
from babel.numbers import NumberPattern, parse_pattern
from iso4217 import Currency

#: Minor-unit exponent of every ISO 4217 currency that has one, by lowercase code. Codes
#: without a minor unit (gold ``XAU``, ``XDR``, the test code ``XTS``, ``XXX``) are no money
#: an order can be paid in.
EXPONENTS: dict[str, int] = {
    currency.code.lower(): currency.exponent
    for currency in Currency
    if currency.exponent is not None
}
CURRENCIES = frozenset(EXPONENTS)

#: The locale amounts are written in for people (the shop's: see ``invoices.document.SELLER``).
DISPLAY_LOCALE = "en_US"

#: CLDR's currency spacing, which babel does not apply: a code written next to a digit is
#: kept apart from it by a no-break space ("KWD 1.500", but "$15.00").
_LETTER_NEXT_TO_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def is_currency(code: str) -> bool:
    """Whether ``code`` is a lowercase ISO 4217 currency code with a minor unit."""
    return code in EXPONENTS


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


@dataclass(frozen=True, slots=True, order=False)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money amount must be an int of minor units, not {self.amount!r}")
        if not is_currency(self.currency):
            raise ValueError(f"currency must be a lowercase ISO 4217 code, not {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @property
    def exponent(self) -> int:
        """Decimals of the currency's minor unit: 100 cents to the dollar is 2, yen is 0."""
        return EXPONENTS[self.currency]

    @property
    def decimal(self) -> Decimal:
        """The amount in major units, exactly (1500 JPY is 1500, 1500 KWD is 1.500)."""
        return Decimal(self.amount).scaleb(-self.exponent)

    def format(self, locale: str = DISPLAY_LOCALE, *, code: bool = False) -> str:
        """The amount as a person reads it: ``$15.00``, ``¥1,500``, ``KWD 1.500``; with
        ``code``, the ISO code instead of a symbol (``USD 15.00``) for places that cannot
        draw every symbol. Always the ISO number of decimals, whatever the locale's habit."""
        pattern = _pattern(locale, self.exponent, code)
        text = pattern.apply(
            self.decimal,
            Locale.parse(locale),
            currency=self.currency.upper(),
            currency_digits=False,
        )
        return _LETTER_NEXT_TO_DIGIT.sub("\u00a0", text)

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise TypeError("Money can only be multiplied by an integer quantity")
        return Money(self.amount * quantity, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount >= other.amount

    @classmethod
    def sum(cls, amounts: list[Money], currency: str) -> Money:
        total = cls.zero(currency)
        for amount in amounts:
            total = total + amount
        return total

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


@cache
def _pattern(locale: str, decimals: int, code: bool) -> NumberPattern:
    """The locale's currency pattern with exactly ``decimals`` fraction digits (CLDR's own
    digits differ from ISO 4217's for some currencies: IQD, HUF, COP, ...)."""
    standard = Locale.parse(locale).currency_formats["standard"].pattern
    pattern = parse_pattern(standard.replace("¤", "¤¤") if code else standard)
    pattern.frac_prec = (decimals, decimals)
    return pattern
