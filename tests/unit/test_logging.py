"""Log lines: secrets masked by key and cut by value, whatever logged them; request ids."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from api.observability import request_id_from
from orderflow.logging import REDACTED, Redactor, configure_logging, configured_secrets
from orderflow.settings import Settings

JWT = "jwt-secret-for-the-unit-test-0123456789abcdef"
STRIPE = "sk_test_unit_4242424242"


def test_secret_keys_are_masked_and_secret_values_cut(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        jwt_secret=JWT,
        payment_provider="stripe",
        stripe_api_key=STRIPE,
        stripe_webhook_secret="whsec_unit_secret",
        log_json=True,
    )
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging(settings)
        log = structlog.get_logger("unit")
        log.info("login", password="hunter2-pass", access_token="abc.def.ghi", order_id="ord_1")
        log.warning(f"stripe said no to {STRIPE}", headers={"Authorization": f"Bearer {STRIPE}"})
        logging.getLogger("stdlib").error("jwt %s leaked", JWT)
        try:
            raise RuntimeError(f"boom with {STRIPE}")
        except RuntimeError:
            log.exception("failed")
        err = capsys.readouterr().err
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()
    assert STRIPE not in err
    assert JWT not in err
    assert "hunter2-pass" not in err
    assert "abc.def.ghi" not in err
    records = [json.loads(line) for line in err.splitlines()]
    assert records[0]["password"] == REDACTED
    assert records[0]["order_id"] == "ord_1"
    assert records[1]["headers"] == {"Authorization": REDACTED}
    assert REDACTED in records[2]["event"]
    assert "RuntimeError" in records[3]["exception"]


def test_configured_secrets_are_the_real_ones() -> None:
    settings = Settings(jwt_secret=JWT, sendgrid_api_key="SG.unit-key", admin_password="adm1n-pw")
    found = configured_secrets(settings)
    assert {JWT, "SG.unit-key", "adm1n-pw"} <= set(found)


def test_redactor_leaves_ordinary_values_alone() -> None:
    event = Redactor(["s3cret-value"])(
        None, "info", {"event": "ok", "order_id": "ord_1", "count": 3, "nested": ["a", 1]}
    )
    assert event == {"event": "ok", "order_id": "ord_1", "count": 3, "nested": ["a", 1]}


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("abc-123", True),
        ("checkout.7f3a:b_1/2", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        (None, False),
        ("has space", False),
        ("tab\tinside", False),
        ("ünïcode", False),
        ("new\nline", False),
    ],
)
def test_request_ids_are_printable_and_short(given: str | None, kept: bool) -> None:
    made = request_id_from(given)
    assert (made == given) is kept
    if not kept:
        assert len(made) == 32
        assert made.isalnum()
