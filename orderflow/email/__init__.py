"""Email: one small interface, a local ``.eml`` writer and a SendGrid sender.

Use :func:`email_sender_from_settings` to get the configured sender; the SendGrid SDK is
imported only when SendGrid is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orderflow.email.local import LocalEmailSender
from orderflow.email.sender import (
    EmailError,
    EmailMessage,
    EmailProviderMisconfigured,
    EmailProviderUnavailable,
    EmailRejected,
    EmailSender,
)

if TYPE_CHECKING:
    from orderflow.settings import Settings

__all__ = [
    "EmailError",
    "EmailMessage",
    "EmailProviderMisconfigured",
    "EmailProviderUnavailable",
    "EmailRejected",
    "EmailSender",
    "LocalEmailSender",
    "email_sender_from_settings",
]


def email_sender_from_settings(settings: Settings, *, timeout: float | None = None) -> EmailSender:
    """The sender ``ORDERFLOW_EMAIL_PROVIDER`` names, built once; reuse the instance.

    ``local`` writes into ``settings.emails_dir``; ``sendgrid`` uses
    ``ORDERFLOW_SENDGRID_API_KEY`` and, when set, ``ORDERFLOW_SENDGRID_HOST``.
    """
    if settings.email_provider == "sendgrid":
        from orderflow.email.sendgrid_sender import DEFAULT_TIMEOUT_SECONDS, SendGridEmailSender

        if settings.sendgrid_api_key is None:  # Settings refuses this already; be explicit
            raise ValueError("ORDERFLOW_SENDGRID_API_KEY is required for the sendgrid sender")
        return SendGridEmailSender(
            settings.sendgrid_api_key.get_secret_value(),
            settings.email_from,
            host=settings.sendgrid_host,
            timeout=DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout,
        )
    return LocalEmailSender(settings.emails_dir, settings.email_from)
