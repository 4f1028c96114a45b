import time

import pytest

from orderflow import idempotency
from orderflow.errors import BadRequest
from orderflow.ids import new_id


def test_ids_carry_their_prefix_and_sort_by_creation() -> None:
    ids = [new_id("ord") for _ in range(200)]
    assert all(i.startswith("ord_") and len(i) == 30 for i in ids)
    assert len(set(ids)) == 200
    time.sleep(0.002)
    assert new_id("ord") > max(ids)


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    a = idempotency.fingerprint("POST", "/orders", {"a": 1, "b": [1, 2]})
    assert a == idempotency.fingerprint("POST", "/orders", {"b": [1, 2], "a": 1})
    assert a != idempotency.fingerprint("POST", "/orders", {"a": 2, "b": [1, 2]})


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey"])
def test_refuses_unusable_keys(key: str) -> None:
    with pytest.raises(BadRequest):
        idempotency.check_key(key)


def test_accepts_a_key_of_255_characters() -> None:
    idempotency.check_key("k" * 255)
