"""Standard Webhooks signatures (standardwebhooks.com), made by the specification's own
Python library: ``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``,
one per active secret, space-separated (during a rotation both secrets sign)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """``whsec_`` and 24 random bytes in base64, as the specification's libraries expect."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def headers(event_id: str, timestamp: datetime, body: str, secrets_: list[str]) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(event_id, timestamp, body) for secret in secrets_)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
