"""Settings: every bad value becomes one line naming its ORDERFLOW_* variable, and the README
documents every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.settings import ConfigError, Settings
from orderflow.startup import load_settings

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ORDERFLOW_PORT": "99999"}, "ORDERFLOW_PORT"),
        ({"ORDERFLOW_LOG_JSON": "sometimes"}, "ORDERFLOW_LOG_JSON"),
        ({"ORDERFLOW_PAYMENT_PROVIDER": "paypal"}, "ORDERFLOW_PAYMENT_PROVIDER"),
        ({"ORDERFLOW_RATE_LIMIT_ORDERS_PER_CALLER": "0"}, "ORDERFLOW_RATE_LIMIT_ORDERS_PER_CALLER"),
        ({"ORDERFLOW_PAYMENT_PROVIDER": "stripe"}, "ORDERFLOW_STRIPE_API_KEY"),
        (
            {"ORDERFLOW_PAYMENT_PROVIDER": "stripe", "ORDERFLOW_STRIPE_API_KEY": ""},
            "ORDERFLOW_STRIPE_API_KEY",
        ),
        (
            {"ORDERFLOW_PAYMENT_PROVIDER": "stripe", "ORDERFLOW_STRIPE_API_KEY": "sk_test_x"},
            "ORDERFLOW_STRIPE_WEBHOOK_SECRET",
        ),
        ({"ORDERFLOW_EMAIL_PROVIDER": "sendgrid"}, "ORDERFLOW_SENDGRID_API_KEY"),
        ({"ORDERFLOW_SMS_PROVIDER": "twilio"}, "needs ORDERFLOW_TWILIO_ACCOUNT_SID"),
        (
            {"ORDERFLOW_SMS_PROVIDER": "twilio", "ORDERFLOW_TWILIO_ACCOUNT_SID": "AC1"},
            "needs ORDERFLOW_TWILIO_AUTH_TOKEN",
        ),
        (
            {
                "ORDERFLOW_SMS_PROVIDER": "twilio",
                "ORDERFLOW_TWILIO_ACCOUNT_SID": "AC1",
                "ORDERFLOW_TWILIO_AUTH_TOKEN": "",
            },
            "needs ORDERFLOW_TWILIO_AUTH_TOKEN",
        ),
        (
            {
                "ORDERFLOW_SMS_PROVIDER": "twilio",
                "ORDERFLOW_TWILIO_ACCOUNT_SID": "AC1",
                "ORDERFLOW_TWILIO_AUTH_TOKEN": "secret",
            },
            "needs ORDERFLOW_TWILIO_FROM",
        ),
        ({"ORDERFLOW_TWILIO_FROM": "orderflow"}, "ORDERFLOW_TWILIO_FROM must be a phone number"),
        ({"ORDERFLOW_ENVIRONMENT": "production"}, "ORDERFLOW_JWT_SECRET"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert named in message
    assert "Traceback" not in message


def test_a_secret_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERFLOW_FLOWER_BASIC_AUTH", "ops:pw")
    monkeypatch.setenv("ORDERFLOW_ACCESS_TOKEN_TTL_SECONDS", "sup3r-secret-value")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "sup3r-secret-value" not in str(raised.value)


def test_the_readme_documents_every_setting() -> None:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for name in Settings.model_fields:
        assert f"`ORDERFLOW_{name.upper()}`" in section, name


def test_twilio_with_its_three_settings_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ORDERFLOW_SMS_PROVIDER": "twilio",
        "ORDERFLOW_TWILIO_ACCOUNT_SID": "AC1",
        "ORDERFLOW_TWILIO_AUTH_TOKEN": "tw-token-4f1b9",
        "ORDERFLOW_TWILIO_FROM": "+14155550123",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.sms_provider == "twilio"
    assert "tw-token-4f1b9" not in repr(settings)
