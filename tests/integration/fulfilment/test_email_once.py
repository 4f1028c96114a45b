"""The e-mail step against the SendGrid stand-in, through the SDK, when a worker dies between
SendGrid's 202 and our commit. SendGrid takes no idempotency key: the ``emails`` row (unique
per order and kind), its claim and the Email Activity look-up before any second attempt are
what keep it to one message."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable

from sqlalchemy import func, select, text, update

from orderflow.auth.service import register_user
from orderflow.db import Database
from orderflow.email.sendgrid_sender import SendGridEmailSender
from orderflow.fulfilment.notifications import send_email
from orderflow.models import EmailRecord, Order, Product
from orderflow.orders import service as orders
from orderflow.statuses import OrderStatus
from orderflow.steps import EmailKind
from tests.conftest import PASSWORD, place_command
from tests.stubs.sendgrid_server import DEFAULT_API_KEY, SendGridStub


def _cancelled_order(database: Database, make_product: Callable[..., Product]) -> str:
    """An order moved to cancelled in the database (the e-mail step is under test here)."""
    product = make_product()
    with database.unit_of_work() as session:
        customer = register_user(
            session, f"mail-{uuid.uuid4().hex[:8]}@example.com", PASSWORD, "Jane"
        )
        order = orders.place_order(session, place_command(customer.id, (product.id, 1)))
        session.execute(
            update(Order).where(Order.id == order.id).values(status=OrderStatus.CANCELLED)
        )
        session.commit()
        return order.id


def _status(database: Database, order_id: str) -> str | None:
    with database.unit_of_work() as session:
        return session.scalar(select(EmailRecord.status).where(EmailRecord.order_id == order_id))


def test_a_worker_killed_after_sendgrid_accepted_leaves_one_email(
    clean_database: Database,
    database_url: str,
    make_product: Callable[..., Product],
    sendgrid_stub: SendGridStub,
    sendgrid_sender: SendGridEmailSender,
) -> None:
    order_id = _cancelled_order(clean_database, make_product)
    died = subprocess.run(
        [sys.executable, "-m", "tests.dies_after_sending", "email", database_url, order_id,
         sendgrid_stub.url, DEFAULT_API_KEY],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]
    key = f"{order_id}:cancelled"
    assert len(sendgrid_stub.messages(key)) == 1
    # The dead worker's claim still holds: a redelivery now does nothing...
    send_email(clean_database, sendgrid_sender, order_id, EmailKind.CANCELLED)
    assert (len(sendgrid_stub.messages(key)), _status(clean_database, order_id)) == (1, "sending")
    # ...until the lease runs out (moved back here instead of waiting two minutes); then the
    # look-up finds SendGrid's message and the e-mail is marked sent without a second one.
    with clean_database.unit_of_work() as session:
        session.execute(
            update(EmailRecord)
            .where(EmailRecord.order_id == order_id)
            .values(claimed_at=func.now() - text("interval '3 minutes'"))
        )
        session.commit()
    send_email(clean_database, sendgrid_sender, order_id, EmailKind.CANCELLED)
    assert (len(sendgrid_stub.messages(key)), _status(clean_database, order_id)) == (1, "sent")


def test_without_activity_access_the_email_is_sent_again(
    clean_database: Database,
    make_product: Callable[..., Product],
    sendgrid_stub: SendGridStub,
) -> None:
    """The look-up's limit: an account without Email Activity cannot tell, so a claim whose
    attempt may have reached SendGrid is sent again (the same Message-ID)."""
    order_id = _cancelled_order(clean_database, make_product)
    sender = SendGridEmailSender(DEFAULT_API_KEY, "orders@example.com", host=sendgrid_stub.url)
    sendgrid_stub.fail_next(1, 403, path="/v3/messages")
    with clean_database.unit_of_work() as session:  # an earlier attempt claimed it and died
        session.add(EmailRecord(order_id=order_id, kind="cancelled", status="sending",
                                recipient="jane@example.com"))  # fmt: skip
        session.commit()

    send_email(clean_database, sender, order_id, EmailKind.CANCELLED)

    assert len(sendgrid_stub.messages(f"{order_id}:cancelled")) == 1
    assert _status(clean_database, order_id) == "sent"
