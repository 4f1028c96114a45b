"""A worker killed at the worst moment: runs one e-mail or SMS step in this process with a
sender that SIGKILLs the process right after the provider answered, before the step marks
its row sent. The tests run it as a subprocess and then check what a retry does.

``python -m tests.dies_after_sending email DATABASE_URL ORDER_ID SENDGRID_HOST API_KEY``
``python -m tests.dies_after_sending sms DATABASE_URL ORDER_ID TWILIO_BASE SID TOKEN FROM``
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from sqlalchemy import create_engine

from orderflow.db import Database


class DiesAfterTheProviderAnswers:
    """Sends through ``inner``, then dies; looks up through ``inner`` as it would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def find_sent(self, message: Any) -> str | None:
        found: str | None = self.inner.find_sent(message)
        return found

    def send(self, message: Any) -> str:
        self.inner.send(message)
        os.kill(os.getpid(), signal.SIGKILL)  # before the row is marked sent
        raise AssertionError("unreachable")


def main(channel: str, database_url: str, order_id: str, *provider: str) -> None:
    database = Database(create_engine(database_url))
    if channel == "email":
        from orderflow.email.sendgrid_sender import SendGridEmailSender
        from orderflow.fulfilment.notifications import send_email
        from orderflow.steps import EmailKind

        host, api_key = provider
        sendgrid = SendGridEmailSender(api_key, "orders@example.com", host=host, timeout=5)
        send_email(database, DiesAfterTheProviderAnswers(sendgrid), order_id, EmailKind.CANCELLED)
    else:
        from orderflow.fulfilment.sms_notices import send_sms
        from orderflow.sms.twilio_sender import TwilioSmsSender
        from orderflow.steps import SmsKind

        api_base, sid, token, from_ = provider
        twilio = TwilioSmsSender(sid, token, from_, api_base=api_base, timeout=2)
        send_sms(database, DiesAfterTheProviderAnswers(twilio), order_id, SmsKind.SHIPPED)


if __name__ == "__main__":
    main(*sys.argv[1:])
