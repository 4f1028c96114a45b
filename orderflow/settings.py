"""The one settings object. Every knob is an ``ORDERFLOW_*`` environment variable."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orderflow.origins import EXAMPLE as ORIGIN_EXAMPLE
from orderflow.origins import NotAnOrigin, configured_origin

#: Where ``make run`` keeps its embedded servers' data, e-mails and invoices.
DEFAULT_STATE_DIR = Path(".orderflow")
#: Marks a secret nobody chose; refused when a real provider or production is configured.
DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0123456789"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class ConfigError(ValueError):
    """A setting is wrong; the message names the variable and the fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERFLOW_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = ""
    #: A PostgreSQL that does not answer a connection attempt within this long is down:
    #: the API answers 503, a task retries (libpq's ``connect_timeout``; at least 2 s).
    database_connect_timeout_seconds: int = Field(default=3, ge=2, le=60)
    #: A connection whose sent data stays unacknowledged this long, or whose server stops
    #: answering keepalive probes, is dead (libpq's ``tcp_user_timeout`` and keepalives): a
    #: network partition fails the request in seconds instead of hanging it for minutes.
    database_network_timeout_seconds: float = Field(default=5.0, ge=1, le=600)
    #: Off behind a transaction-pooling PgBouncer that cannot keep prepared statements
    #: (before 1.21, or ``max_prepared_statements = 0``): see README, Scaling.
    database_prepared_statements: bool = True
    redis_url: str = ""
    state_dir: Path = DEFAULT_STATE_DIR

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    #: How long the API keeps an idle client connection open (``workers.launcher.api_command``).
    api_keepalive_seconds: int = Field(default=75, ge=1, le=3600)
    #: uvicorn processes of the API under ``make run`` (``--workers`` above 1).
    api_processes: int = Field(default=2, ge=1, le=64)
    #: Scheduling priority (``nice``, 0..19) of everything ``make run`` starts but the API:
    #: on a shared host, accepting orders goes before fulfilling them (issue 20).
    worker_nice: int = Field(default=10, ge=0, le=19)
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_host: str = "127.0.0.1"
    flower_basic_auth: SecretStr | None = None

    admin_email: str = "admin@example.com"
    admin_password: SecretStr = SecretStr("admin-password-change-me")

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    access_token_ttl_seconds: int = Field(default=900, ge=30)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    #: Unset: true in production, false elsewhere (``_cookie_secure_by_environment``).
    cookie_secure: bool = False
    #: Browser origins (``scheme://host[:port]``) of front ends on other origins that may
    #: call the API with credentials (CORS) and write with the cookie (the cross-site check).
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    idempotency_key_ttl_hours: int = Field(default=24, ge=24)
    #: A cart untouched this long expires; an expired or completed cart is purged as long
    #: after its last change (``carts.service.expire_and_purge``).
    cart_ttl_hours: int = Field(default=168, ge=1, le=24 * 366)
    #: Days after delivery (after shipping when delivery is unknown) a unit may be returned.
    return_window_days: int = Field(default=30, ge=0, le=3650)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    payment_provider: Literal["local", "stripe"] = "local"
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None

    shipping_provider: Literal["local", "shippo"] = "local"
    shippo_api_key: SecretStr | None = None
    shippo_api_base: str | None = None
    #: The secret in the URL Shippo's webhook is registered with
    #: (``/api/v1/webhooks/shippo?token=...``); unset: the route refuses every call.
    shippo_webhook_token: SecretStr | None = None
    #: The ``local`` provider's simulated carrier: a parcel whose label it issued is picked
    #: up when first tracked, then reported ``in_transit``, ``out_for_delivery`` and
    #: ``delivered`` this many seconds apart (``shipping.local``); polled by beat.
    local_carrier_step_seconds: float = Field(default=30.0, gt=0)
    #: Where parcels leave from (Shippo's address fields), JSON in the environment.
    ship_from: dict[str, str] = {
        "name": "orderflow warehouse",
        "street1": "1 Warehouse Way",
        "city": "San Francisco",
        "state": "CA",
        "zip": "94107",
        "country": "US",
    }

    email_provider: Literal["local", "sendgrid"] = "local"
    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str | None = None
    email_from: str = "orders@example.com"

    #: Shipped and delivered notices by SMS to customers who opted in (``orderflow.sms``).
    sms_provider: Literal["local", "twilio"] = "local"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    #: The number texts come from (E.164); the local sender writes it into its files.
    twilio_from: str = "+15005550006"
    twilio_api_base: str | None = None

    #: Pipeline pacing. A stalled order is re-driven after ``sweep_stall_seconds``.
    sweep_interval_seconds: float = Field(default=10.0, gt=0)
    sweep_stall_seconds: float = Field(default=30.0, gt=0)
    provider_retry_base_seconds: float = Field(default=1.0, gt=0)
    provider_max_retries: int = Field(default=6, ge=0, le=20)
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    #: A worker runs an order's next step itself when it serves that step's queue, instead
    #: of handing it to the relay and the broker (see ``outbox.Takeover``). Turn off to have
    #: every step travel through its queue, e.g. to spread steps over dedicated workers.
    continue_steps_in_process: bool = True

    #: Threads of the worker that runs the provider-bound steps (``make run``'s
    #: ``worker-io``: charge, refund, e-mail, labels). Each waits on one provider call;
    #: by Little's law, orders a second times the seconds of provider calls an order (about 0.5 s
    #: with Stripe and SendGrid) is how many are busy at once.
    provider_worker_threads: int = Field(default=64, ge=1, le=1000)

    log_level: str = "INFO"
    log_json: bool | None = None

    #: Rate limits, shared by every API process through Redis (fixed windows).
    rate_limit_enabled: bool = True
    rate_limit_window_seconds: int = Field(default=60, ge=1, le=3600)
    rate_limit_orders_per_caller: int = Field(default=300, ge=1)
    rate_limit_login_failures_per_account: int = Field(default=10, ge=1)
    rate_limit_login_attempts_per_address: int = Field(default=100, ge=1)
    #: Requests per window with one integration key (issue 15).
    rate_limit_requests_per_key: int = Field(default=600, ge=1)

    #: Business events (the feed, the webhooks' source) are kept this many days (issue 15).
    event_retention_days: int = Field(default=30, ge=30)

    #: Outgoing webhooks (issue 15). Seconds between attempts, comma-separated; N entries
    #: mean at most N + 1 attempts (default: about three days).
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000,86400,86400"
    #: Connect and read timeout of one delivery: a slow receiver is cut off here.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: Development and tests only: plain http and loopback/private/link-local addresses.
    webhook_allow_private_urls: bool = False
    #: An endpoint that has only failed for this long is disabled.
    webhook_disable_after_days: float = Field(default=5.0, gt=0)
    #: How often a dispatcher looks for due deliveries unasked (retries whose time came,
    #: claims of a killed worker that expired); new deliveries wake it at once.
    webhook_dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    #: Attempts one webhooks worker's dispatcher has in flight at once, all endpoints together.
    webhook_sending_threads: int = Field(default=16, ge=1, le=256)
    #: Notices of an endpoint's disablement not all sent within this long are sent again.
    webhook_redispatch_seconds: float = Field(default=30.0, gt=0)
    #: Deliveries in flight at once per endpoint, whatever the number of its subjects.
    webhook_max_in_flight_per_endpoint: int = Field(default=2, ge=1, le=100)

    #: A Celery worker serves its processes' metrics here (0: off; the API's /metrics then
    #: shows them only when both share ``PROMETHEUS_MULTIPROC_DIR`` on one host).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_only(cls, value: Any) -> Any:
        """Comma-separated in the environment; each entry an origin, never ``*``."""
        entries = value.split(",") if isinstance(value, str) else value
        if not isinstance(entries, list | tuple):
            return value  # pydantic says what is wrong with it
        origins = []
        for entry in entries:
            if not isinstance(entry, str) or not entry.strip():
                continue
            try:
                origins.append(configured_origin(entry))
            except NotAnOrigin as error:
                raise ConfigError(
                    f"ORDERFLOW_CORS_ORIGINS: {entry.strip()[:100]!r} is not an origin: {error}; "
                    f"give comma-separated scheme://host[:port] origins, e.g. {ORIGIN_EXAMPLE}"
                ) from None
        return tuple(dict.fromkeys(origins))

    @model_validator(mode="after")
    def _cookie_secure_by_environment(self) -> Settings:
        """Production serves HTTPS: its auth cookies are ``Secure`` unless told otherwise."""
        if "cookie_secure" not in self.model_fields_set:
            self.cookie_secure = self.environment == "production"
        return self

    @model_validator(mode="after")
    def _real_providers_need_their_secrets(self) -> Settings:
        # An empty variable (``ORDERFLOW_STRIPE_API_KEY=``) is as missing as an unset one.
        for name in (
            "stripe_api_key",
            "stripe_webhook_secret",
            "sendgrid_api_key",
            "shippo_api_key",
            "shippo_webhook_token",
            "twilio_auth_token",
        ):
            secret = getattr(self, name)
            if secret is not None and not secret.get_secret_value():
                setattr(self, name, None)
        if self.payment_provider == "stripe" and not self.stripe_api_key:
            raise ConfigError(
                "ORDERFLOW_PAYMENT_PROVIDER=stripe needs ORDERFLOW_STRIPE_API_KEY: "
                "set it to your Stripe secret key, or use ORDERFLOW_PAYMENT_PROVIDER=local"
            )
        if self.payment_provider == "stripe" and not self.stripe_webhook_secret:
            raise ConfigError(
                "ORDERFLOW_PAYMENT_PROVIDER=stripe needs ORDERFLOW_STRIPE_WEBHOOK_SECRET: "
                "set it to the endpoint's signing secret (whsec_...)"
            )
        if self.email_provider == "sendgrid" and not self.sendgrid_api_key:
            raise ConfigError(
                "ORDERFLOW_EMAIL_PROVIDER=sendgrid needs ORDERFLOW_SENDGRID_API_KEY: "
                "set it to your SendGrid API key, or use ORDERFLOW_EMAIL_PROVIDER=local"
            )
        if self.shipping_provider == "shippo" and not self.shippo_api_key:
            raise ConfigError(
                "ORDERFLOW_SHIPPING_PROVIDER=shippo needs ORDERFLOW_SHIPPO_API_KEY: "
                "set it to your Shippo API token, or use ORDERFLOW_SHIPPING_PROVIDER=local"
            )
        self._check_twilio()
        if self.environment == "production" and (
            self.jwt_secret.get_secret_value() == DEV_JWT_SECRET
        ):
            raise ConfigError(
                "ORDERFLOW_JWT_SECRET is the development default: set a random secret of "
                "at least 32 characters in production"
            )
        try:
            delays = self.webhook_retry_delays
        except ValueError:
            delays = [-1.0]
        if any(delay < 0 for delay in delays):
            raise ConfigError(
                "ORDERFLOW_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds, e.g. 5,300,1800"
            )
        if len(self.jwt_secret.get_secret_value()) < 32:
            raise ConfigError("ORDERFLOW_JWT_SECRET is too short: use at least 32 characters")
        return self

    def _check_twilio(self) -> None:
        """Twilio needs its account, its token and our number, all from the environment (the
        default from-number is Twilio's test number, good for the local sender only)."""
        if not self.twilio_account_sid:
            self.twilio_account_sid = None
        if not _E164.match(self.twilio_from):
            raise ConfigError(
                "ORDERFLOW_TWILIO_FROM must be a phone number in E.164 (a + and up to 15 "
                "digits, e.g. +14155550123): the Twilio number texts are sent from"
            )
        if self.sms_provider != "twilio":
            return
        missing = [
            (variable, what)
            for variable, given, what in (
                ("ORDERFLOW_TWILIO_ACCOUNT_SID", self.twilio_account_sid, "your account SID"),
                ("ORDERFLOW_TWILIO_AUTH_TOKEN", self.twilio_auth_token, "your auth token"),
                (
                    "ORDERFLOW_TWILIO_FROM",
                    "twilio_from" in self.model_fields_set,
                    "the Twilio number texts are sent from (E.164)",
                ),
            )
            if not given
        ]
        if missing:
            variable, what = missing[0]
            raise ConfigError(
                f"ORDERFLOW_SMS_PROVIDER=twilio needs {variable}: set it to {what}, "
                "or use ORDERFLOW_SMS_PROVIDER=local"
            )

    @property
    def webhook_retry_delays(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_schedule.split(",") if part.strip()]

    @property
    def emails_dir(self) -> Path:
        return self.state_dir / "emails"

    @property
    def sms_dir(self) -> Path:
        return self.state_dir / "sms"

    @property
    def ship_from_address(self) -> dict[str, str]:
        return dict(self.ship_from)

    @property
    def carrier_dir(self) -> Path:
        """The local shipping provider's parcels (its simulated carrier's records)."""
        return self.state_dir / "carrier"

    @property
    def local_carrier_poll_seconds(self) -> float:
        """How often beat asks the simulated carrier about the parcels it carries: a few
        times a step, so a status is seen soon after it is due."""
        return max(0.5, min(self.local_carrier_step_seconds / 3, 10.0))

    @property
    def invoices_dir(self) -> Path:
        return self.state_dir / "invoices"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def describe_settings_error(error: Exception) -> str:
    """One line naming the ``ORDERFLOW_*`` variable at fault and the fix, for a ``ConfigError``
    or the ``ValidationError`` pydantic raises while reading the environment. Never echoes
    the offending value: it may be a secret."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    first = errors()[0] if errors() else {}
    message = str(first.get("msg", "invalid value"))
    if message.startswith("Value error, "):  # a ConfigError raised by a validator
        return message.removeprefix("Value error, ")
    fields = [str(part) for part in first.get("loc", ()) if isinstance(part, str)]
    if not fields:
        return message
    variable = f"ORDERFLOW_{fields[0].upper()}"
    return f"{variable} is invalid ({message}): fix or unset {variable} (see README, Configuration)"
