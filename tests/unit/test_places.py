import pytest

from orderflow.places import COUNTRIES, is_country


@pytest.mark.parametrize("code", ["US", "DE", "JP", "GB", "KW", "AX", "SS"])
def test_assigned_iso_3166_codes_are_countries(code: str) -> None:
    assert is_country(code)


@pytest.mark.parametrize("code", ["XX", "UK", "EU", "ZZ", "AA", "us", "USA", "", "U"])
def test_anything_else_is_not(code: str) -> None:
    # UK and EU are reserved, not assigned; XX, ZZ and AA are for private use.
    assert not is_country(code)


def test_the_list_is_the_standard_not_a_guess() -> None:
    assert len(COUNTRIES) >= 249
    assert all(len(code) == 2 and code.isupper() for code in COUNTRIES)
