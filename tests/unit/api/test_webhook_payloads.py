"""The webhook body guard on its own: what it refuses, and that it measures nesting the way
a parser would descend, without recursing itself."""

from __future__ import annotations

import json

import pytest

from api.webhook_payloads import MAX_DEPTH, nests_deeper_than, webhook_object
from orderflow.errors import BadRequest


def test_an_object_is_returned_as_parsed() -> None:
    document = {"id": "evt_1", "data": {"object": {"tags": ["[", "{", '"]']}}}
    assert webhook_object(json.dumps(document).encode()) == document


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        (b"[]", "not an array"),
        (b'"str"', "not a string"),
        (b"1", "not a number"),
        (b"1.5", "not a number"),
        (b"true", "not a boolean"),
        (b"null", "not null"),
        (b"{", "not JSON"),
        (b"", "not JSON"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "not JSON"),  # past Python's int digits limit
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, f"deeper than {MAX_DEPTH}"),
        (b'{"a":' * 100_000 + b"0" + b"}" * 100_000, f"deeper than {MAX_DEPTH}"),
    ],
)
def test_what_is_not_a_usable_object_is_a_bad_request(payload: bytes, said: str) -> None:
    with pytest.raises(BadRequest) as raised:
        webhook_object(payload)
    assert said in raised.value.detail
    assert raised.value.status == 400


def _object_around_arrays(depth: int) -> bytes:
    """An object holding arrays nested ``depth - 1`` deep: ``depth`` levels in all."""
    return ('{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()


def test_the_limit_is_inclusive() -> None:
    assert webhook_object(_object_around_arrays(MAX_DEPTH)) == {
        "a": json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    }
    with pytest.raises(BadRequest):
        webhook_object(_object_around_arrays(MAX_DEPTH + 1))
    assert webhook_object(b"{}", max_depth=1) == {}


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[", "{{{{"]', 1),  # inside strings
        (r'["\"[[[[", "\\"]', 1),  # escaped quotes do not end a string
        (r'["\\", [[[]]]]', 4),  # an escaped backslash does
        ("[][][][][][][][][]", 1),
        ('"[[[[', 4),  # an unterminated string is not taken out: counted, never missed
    ],
)
def test_nesting_is_measured_outside_strings(text: str, depth: int) -> None:
    assert nests_deeper_than(text, depth - 1)
    assert not nests_deeper_than(text, depth)


@pytest.mark.parametrize(
    ("text", "descent"),
    [
        ('[[[[[[ "x" ]]', 6),  # unbalanced: a parser descends 6 levels before failing
        ('{"a": [[[[[[', 7),
        ('["\\q[[[[[[', 1),  # a bad escape stops a parser inside the first string
        ('{"a": "x\nb", "c": [[[', 1),  # a raw newline in a string stops it too
    ],
)
def test_the_measure_never_falls_short_of_a_parsers_descent(text: str, descent: int) -> None:
    """On invalid JSON, where a parser stops at the first error, the guard still counts at
    least as deep as the parser went."""
    assert nests_deeper_than(text, descent - 1)
