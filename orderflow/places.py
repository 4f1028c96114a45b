"""Countries: the ISO 3166-1 alpha-2 codes, from the ``pycountry`` package's copy of the
standard (Debian's iso-codes), so a new or withdrawn code arrives with an upgrade."""

from __future__ import annotations

import pycountry

COUNTRIES = frozenset(country.alpha_2 for country in pycountry.countries)


def is_country(code: str) -> bool:
    """Whether ``code`` is an assigned ISO 3166-1 alpha-2 code, in capitals (``US``, ``JP``)."""
    return code in COUNTRIES
