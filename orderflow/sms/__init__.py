"""SMS: one small interface, a local ``.txt`` writer and a Twilio sender.

Use :func:`sms_sender_from_settings` to get the configured sender; the Twilio SDK is
imported only when Twilio is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orderflow.sms.local import LocalSmsSender
from orderflow.sms.sender import (
    SmsError,
    SmsMessage,
    SmsProviderMisconfigured,
    SmsProviderUnavailable,
    SmsRejected,
    SmsSender,
)

if TYPE_CHECKING:
    from orderflow.settings import Settings

__all__ = [
    "LocalSmsSender",
    "SmsError",
    "SmsMessage",
    "SmsProviderMisconfigured",
    "SmsProviderUnavailable",
    "SmsRejected",
    "SmsSender",
    "sms_sender_from_settings",
]


def sms_sender_from_settings(settings: Settings, *, timeout: float | None = None) -> SmsSender:
    """The sender ``ORDERFLOW_SMS_PROVIDER`` names, built once; reuse the instance.

    ``local`` writes into ``settings.sms_dir``; ``twilio`` uses ``ORDERFLOW_TWILIO_ACCOUNT_SID``,
    ``ORDERFLOW_TWILIO_AUTH_TOKEN``, ``ORDERFLOW_TWILIO_FROM`` and, when set,
    ``ORDERFLOW_TWILIO_API_BASE``.
    """
    if settings.sms_provider == "twilio":
        from orderflow.sms.twilio_sender import DEFAULT_TIMEOUT_SECONDS, TwilioSmsSender

        if settings.twilio_account_sid is None or settings.twilio_auth_token is None:
            raise ValueError("ORDERFLOW_TWILIO_ACCOUNT_SID and _AUTH_TOKEN are required")
        return TwilioSmsSender(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_from,
            api_base=settings.twilio_api_base,
            timeout=DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout,
        )
    return LocalSmsSender(settings.sms_dir, settings.twilio_from)
