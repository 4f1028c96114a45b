"""Phone numbers as customers type them: normalised to E.164, or refused naming the field."""

from __future__ import annotations

import pytest

from orderflow.auth.phones import InvalidPhone, normalise_phone, phone_problem


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("+14155550123", "+14155550123"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("  +1.415.555.0123 ", "+14155550123"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+81 90-1234-5678", "+819012345678"),
    ],
)
def test_valid_numbers_are_stored_in_e164(typed: str, stored: str) -> None:
    assert phone_problem(typed) is None
    assert normalise_phone(typed) == stored


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("4155550123", "international form"),  # no country: London or elsewhere?
        ("+1 555", "numbering plan"),
        ("+44 20 7946", "numbering plan"),
        ("+999 1234567", "cannot be read"),
        ("+1 415 555 01", "numbering plan"),
        ("call me", "international form"),
        ("", "at most"),
        ("+1" + "2" * 40, "at most"),
    ],
)
def test_invalid_numbers_are_refused_naming_the_field(typed: str, reason: str) -> None:
    problem = phone_problem(typed)
    assert problem is not None
    assert reason in problem
    with pytest.raises(InvalidPhone) as raised:
        normalise_phone(typed, field="phone")
    assert raised.value.status == 422
    assert raised.value.extra["errors"][0]["field"] == "phone"
