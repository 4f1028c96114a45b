"""The body of an inbound webhook, read safely: every webhook route (Stripe's, and any other
provider's) reads its verified body with :func:`webhook_object` and then checks the fields it
needs with its own models, so that a signed body we cannot use is a 400, never a 500.

Why not ``json.loads`` alone: Python's parser recurses once per level of nesting, so a body
of ten thousand ``[`` answers ``RecursionError`` (and a provider retries a 5xx for days);
and a valid JSON document need not be an object (``[]``, ``"str"``, ``1``). The nesting is
therefore measured first, without recursion, on the text with its strings taken out.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orderflow.errors import BadRequest

#: Deepest nesting accepted. A Stripe event is about 8 levels deep (event, data, object,
#: charges, data, [ ], payment_method_details, card, checks); Python's parser and pydantic
#: handle many hundreds. 32 leaves room for any provider's payload and none for an attack.
MAX_DEPTH = 32

#: A JSON string literal, escapes included (the unrolled form: linear, no backtracking).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")


def webhook_object(payload: bytes, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The JSON object a verified webhook body holds, or :class:`BadRequest`: not UTF-8,
    nested deeper than ``max_depth``, not JSON, or JSON but not an object."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("invalid webhook payload: not UTF-8 text") from None
    if nests_deeper_than(text, max_depth):
        raise BadRequest(f"invalid webhook payload: nested deeper than {max_depth} levels")
    try:
        document = json.loads(text)
    except ValueError as error:  # JSONDecodeError, or an integer too long to convert
        raise BadRequest(f"invalid webhook payload: not JSON ({type(error).__name__})") from None
    if not isinstance(document, dict):
        raise BadRequest(
            f"invalid webhook payload: a JSON object was expected, not {_kind(document)}"
        )
    return document


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether ``[`` and ``{`` nest more than ``limit`` deep in JSON ``text``, brackets inside
    strings not counted. Never says no where a parser would descend deeper: the first error
    stops a parser, and up to it strings are found alike (an unterminated string is not taken
    out, so its brackets count). Linear in the text, no recursion."""
    if text.count("[") + text.count("{") <= limit:  # the usual case: too few to nest deeper
        return False
    depth = 0
    for bracket in _NOT_A_BRACKET.sub("", _STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _kind(document: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(document), "a number")
