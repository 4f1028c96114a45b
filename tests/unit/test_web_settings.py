"""The settings of the browser-facing side: auth cookies ``Secure`` by default in production,
and ``ORDERFLOW_CORS_ORIGINS`` refused at start-up unless every entry is an origin."""

from __future__ import annotations

import pytest

from orderflow.origins import configured_origin, origin_of
from orderflow.settings import ConfigError, Settings
from orderflow.startup import load_settings

PRODUCTION_SECRET = "a-production-secret-of-at-least-32-chars"


@pytest.fixture(autouse=True)
def _no_orderflow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERFLOW_ENVIRONMENT", raising=False)
    monkeypatch.delenv("ORDERFLOW_COOKIE_SECURE", raising=False)
    monkeypatch.delenv("ORDERFLOW_CORS_ORIGINS", raising=False)


# --- cookies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "secure"), [("production", True), ("development", False), ("test", False)]
)
def test_cookies_are_secure_by_default_in_production_only(
    monkeypatch: pytest.MonkeyPatch, environment: str, secure: bool
) -> None:
    monkeypatch.setenv("ORDERFLOW_ENVIRONMENT", environment)
    monkeypatch.setenv("ORDERFLOW_JWT_SECRET", PRODUCTION_SECRET)
    assert load_settings().cookie_secure is secure
    assert Settings(environment=environment, jwt_secret=PRODUCTION_SECRET).cookie_secure is secure


@pytest.mark.parametrize("environment", ["production", "development"])
@pytest.mark.parametrize("explicit", ["true", "false"])
def test_an_explicit_cookie_secure_wins_in_any_environment(
    monkeypatch: pytest.MonkeyPatch, environment: str, explicit: str
) -> None:
    monkeypatch.setenv("ORDERFLOW_ENVIRONMENT", environment)
    monkeypatch.setenv("ORDERFLOW_JWT_SECRET", PRODUCTION_SECRET)
    monkeypatch.setenv("ORDERFLOW_COOKIE_SECURE", explicit)
    assert load_settings().cookie_secure is (explicit == "true")
    keyword = Settings(
        environment=environment, jwt_secret=PRODUCTION_SECRET, cookie_secure=explicit == "true"
    )
    assert keyword.cookie_secure is (explicit == "true")


# --- CORS origins ----------------------------------------------------------------------------


def test_no_origin_is_allowed_by_default() -> None:
    assert Settings().cors_origins == ()


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("", ()),
        ("https://shop.example", ("https://shop.example",)),
        (
            " https://Shop.Example , http://localhost:5173,",
            ("https://shop.example", "http://localhost:5173"),
        ),
        (
            "https://shop.example:443,http://shop.example:80",
            ("https://shop.example", "http://shop.example"),
        ),
        ("https://shop.example:8443", ("https://shop.example:8443",)),
        ("http://[::1]:3000", ("http://[::1]:3000",)),
        ("https://shop.example,https://SHOP.example", ("https://shop.example",)),
    ],
)
def test_cors_origins_are_read_comma_separated_as_browsers_write_them(
    monkeypatch: pytest.MonkeyPatch, value: str, origins: tuple[str, ...]
) -> None:
    """Lower case, default ports left out: as a browser serialises ``Origin``, which is
    compared with these as a string."""
    monkeypatch.setenv("ORDERFLOW_CORS_ORIGINS", value)
    assert load_settings().cors_origins == origins


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("*", "wildcard"),
        ("https://*.shop.example", "wildcard"),
        ("https://shop.example/", "path"),
        ("https://shop.example/checkout", "path"),
        ("https://shop.example?x=1", "query"),
        ("https://shop.example#top", "fragment"),
        ("shop.example", "http:// or https://"),
        ("ftp://shop.example", "http:// or https://"),
        ("null", "http:// or https://"),
        ("https://", "a host"),
        ("https://shop.example:99999", "valid port"),
        ("https://shop.example:0", "valid port"),
        ("https://user:pw@shop.example", "user name or password"),
        ("https://bücher.example", "punycode"),
        ("https://shop.example,https://ok.example/", "path"),
    ],
)
def test_a_cors_entry_that_is_not_an_origin_stops_start_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str, why: str
) -> None:
    monkeypatch.setenv("ORDERFLOW_CORS_ORIGINS", value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("ORDERFLOW_CORS_ORIGINS: "), message
    assert why in message
    assert "scheme://host[:port]" in message
    assert "\n" not in message


def test_a_bad_origin_given_in_code_is_refused_too() -> None:
    with pytest.raises(ValueError, match="ORDERFLOW_CORS_ORIGINS"):
        Settings(cors_origins=["*"])


# --- origins of requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "origin"),
    [
        ("https://shop.example", "https://shop.example"),
        ("https://shop.example/cart?step=2#pay", "https://shop.example"),  # a Referer
        ("HTTPS://SHOP.EXAMPLE:443", "https://shop.example"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("null", None),
        ("", None),
        ("/relative/referer", None),
        ("file:///etc/passwd", None),
        ("https://shop.example:not-a-port", None),
    ],
)
def test_the_origin_a_request_header_names(header: str, origin: str | None) -> None:
    assert origin_of(header) == origin


def test_a_configured_origin_compares_equal_to_what_a_browser_sends() -> None:
    assert configured_origin("HTTPS://Shop.Example:443") == origin_of("https://shop.example/")
