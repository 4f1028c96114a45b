"""structlog set-up: JSON lines in production, readable lines in a terminal.

Every line carries what is bound in the context: ``request_id`` (from the HTTP request, or
the task header that carried it into a worker) and ``order_id`` when the work concerns one.
Two guards keep secrets out: values under secret-sounding keys are masked, and any
configured secret (JWT secret, provider keys, admin password) is cut out of every line,
tracebacks included, whatever logged it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

from orderflow.settings import Settings

REDACTED = "[redacted]"
#: Keys whose values never reach a log line.
SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|api_?key|cookie|card|cvc|credential",
    re.IGNORECASE,
)
#: Loggers of libraries that would print request bodies or headers at DEBUG.
_QUIET_LOGGERS = ("stripe", "urllib3", "httpx", "httpcore", "python_http_client")
REQUEST_ID = "request_id"


def configured_secrets(settings: Settings) -> list[str]:
    """The secret values configured in ``settings``, long enough to search for safely."""
    found: list[SecretStr | None] = [
        settings.jwt_secret,
        settings.admin_password,
        settings.stripe_api_key,
        settings.stripe_webhook_secret,
        settings.sendgrid_api_key,
        settings.flower_basic_auth,
    ]
    return [s.get_secret_value() for s in found if s is not None and len(s.get_secret_value()) >= 6]


class Redactor:
    """A structlog processor masking secret keys and cutting configured secret values."""

    #: Keys remembered as secret-sounding or not; the same few keys recur on every line.
    KNOWN_KEYS = 4096

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        self._secret_keys: dict[str, bool] = {}

    def _secret_key(self, key: str) -> bool:
        known = self._secret_keys.get(key)
        if known is None:
            known = SECRET_KEYS.search(key) is not None
            if len(self._secret_keys) < self.KNOWN_KEYS:
                self._secret_keys[key] = known
        return known

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = self._clean(key, value)
        return event_dict

    def _clean(self, key: str, value: Any) -> Any:
        if isinstance(key, str) and self._secret_key(key) and value not in (None, "", False):
            return REDACTED
        if isinstance(value, str):
            return self._cut(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean("", item) for item in value]
        return value

    def _cut(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def configure_logging(settings: Settings) -> None:
    as_json = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                Redactor(configured_secrets(settings)),
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    _route_library_loggers()


def _route_library_loggers() -> None:
    """uvicorn's loggers go through ours (one format); its access log is replaced by the
    API's own (``api.access``); chatty HTTP clients stay at INFO even when we debug."""
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.disabled = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))


def current_request_id() -> str | None:
    """The request id bound to this context (an HTTP request, or a task it caused)."""
    value = structlog.contextvars.get_contextvars().get(REQUEST_ID)
    return value if isinstance(value, str) else None
