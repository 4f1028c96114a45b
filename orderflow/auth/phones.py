"""Customers' phone numbers: parsed and validated with ``phonenumbers`` (Google's
libphonenumber data), stored in E.164 (``+14155550123``), the form SMS providers take.

A number is taken in international form only (a leading ``+`` and the country code):
without a country to assume, ``020 7946 0958`` could be London or elsewhere. Spaces,
dashes, dots and brackets are allowed as people write them and dropped."""

from __future__ import annotations

import phonenumbers

from orderflow.errors import Unprocessable

#: E.164 allows at most 15 digits after the ``+``; what people type around them is allowed
#: up to this length.
MAX_INPUT_LENGTH = 32
EXAMPLE = "+14155550123"


class InvalidPhone(Unprocessable):
    """A phone number that is not a valid, dialable international number."""


def normalise_phone(raw: str, *, field: str = "phone") -> str:
    """``raw`` in E.164, or :class:`InvalidPhone` (422 naming ``field``)."""
    reason = phone_problem(raw)
    if reason is not None:
        raise InvalidPhone(
            f"{field} is not a valid phone number: {reason}",
            errors=[{"field": field, "message": reason}],
        )
    number = phonenumbers.parse(raw.strip(), None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_problem(raw: str) -> str | None:
    """Why ``raw`` is not a valid international phone number, or None."""
    text = raw.strip()
    if not text or len(text) > MAX_INPUT_LENGTH:
        return f"give an international number of at most {MAX_INPUT_LENGTH} characters"
    if not text.startswith("+"):
        return f"give it in international form with a + and the country code, e.g. {EXAMPLE}"
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return f"it cannot be read as a phone number; e.g. {EXAMPLE}"
    if not phonenumbers.is_valid_number(number):
        return "no such number exists in that country's numbering plan"
    return None
