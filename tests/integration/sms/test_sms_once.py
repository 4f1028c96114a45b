"""The SMS step against the Twilio stand-in, through the SDK: a text is owed only to a
customer who opted in with a phone, and goes once per order and kind whatever happens: the
step run twice or at once by two workers, a 500, the answer lost after Twilio accepted it,
a worker killed between Twilio's answer and the commit. Twilio has no idempotency key: the
``sms_messages`` row (unique per order and kind), its claim and the look-up before any
second attempt are what keep it to one."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text, update

from orderflow.auth.service import update_profile
from orderflow.db import Database
from orderflow.fulfilment.sms_notices import SmsOutcome, send_sms
from orderflow.fulfilment.sweeper import find_stalled_work
from orderflow.models import OrderEvent, OutboxMessage, SmsRecord, User
from orderflow.sms import LocalSmsSender, SmsProviderMisconfigured, SmsProviderUnavailable
from orderflow.sms.twilio_sender import TwilioSmsSender
from orderflow.statuses import OrderStatus, SmsStatus
from orderflow.steps import SmsKind, Step
from tests.integration.sms.conftest import PHONE, MakeOwed
from tests.stubs import ADAPTER_TEST_TIMEOUT
from tests.stubs.fixtures import TWILIO_STUB_ACCOUNT_SID, TWILIO_STUB_AUTH_TOKEN, TWILIO_STUB_FROM
from tests.stubs.twilio_server import TwilioStub

SHIPPED = SmsKind.SHIPPED


def _row(database: Database, order_id: str, kind: SmsKind = SHIPPED) -> SmsRecord | None:
    with database.unit_of_work() as session:
        return session.scalar(
            select(SmsRecord).where(SmsRecord.order_id == order_id, SmsRecord.kind == kind.value)
        )


def _sms_events(database: Database, order_id: str) -> int:
    with database.unit_of_work() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OrderEvent)
                .where(OrderEvent.order_id == order_id, OrderEvent.type == "sms_sent")
            )
            or 0
        )


def _counted(kind: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("orderflow_sms_total", {"kind": kind, "outcome": outcome}) or 0


def test_a_text_is_owed_only_to_customers_who_opted_in_with_a_phone(
    order_owing_sms: MakeOwed, clean_database: Database
) -> None:
    owed = order_owing_sms()
    not_opted = order_owing_sms(sms_opt_in=False)
    no_phone = order_owing_sms(phone=None, sms_opt_in=False)
    confirmed = order_owing_sms(OrderStatus.CONFIRMED)  # no text for this move
    row = _row(clean_database, owed.order_id)
    assert row is not None
    assert (row.status, row.recipient) == (SmsStatus.PENDING, PHONE)
    for other in (not_opted, no_phone, confirmed):
        assert _row(clean_database, other.order_id) is None
    with clean_database.unit_of_work() as session:
        steps = session.execute(
            select(OutboxMessage.order_id, OutboxMessage.payload).where(
                OutboxMessage.topic == Step.SEND_SMS.value
            )
        ).all()
    assert [(order_id, payload["kind"]) for order_id, payload in steps] == [
        (owed.order_id, "shipped")
    ]


def test_the_step_run_twice_sends_once(
    order_owing_sms: MakeOwed,
    clean_database: Database,
    twilio_stub: TwilioStub,
    twilio_sender: TwilioSmsSender,
) -> None:
    owed = order_owing_sms()
    sent_before = _counted("shipped", "sent")
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.SENT
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.NOTHING
    (sent,) = twilio_stub.texts(PHONE)
    assert owed.order_id in sent.body
    assert "has shipped" in sent.body
    row = _row(clean_database, owed.order_id)
    assert row is not None
    assert (row.status, row.provider_message_id, row.attempts) == (SmsStatus.SENT, sent.sid, 1)
    assert row.sent_at is not None
    assert row.claimed_at is None
    assert _sms_events(clean_database, owed.order_id) == 1
    assert _counted("shipped", "sent") == sent_before + 1
    assert twilio_stub.count("GET") == 0  # a first attempt sends without looking up


def test_two_workers_at_once_send_once(
    order_owing_sms: MakeOwed,
    clean_database: Database,
    twilio_stub: TwilioStub,
    twilio_sender: TwilioSmsSender,
) -> None:
    owed = order_owing_sms()
    outcomes: list[SmsOutcome] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        outcomes.append(send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == sorted([SmsOutcome.SENT] + [SmsOutcome.NOTHING] * 3)
    assert twilio_stub.sent_to(PHONE) == 1


def test_a_500_leaves_the_text_owed_and_the_retry_sends_it(
    order_owing_sms: MakeOwed,
    clean_database: Database,
    twilio_stub: TwilioStub,
    twilio_sender: TwilioSmsSender,
) -> None:
    owed = order_owing_sms()
    twilio_stub.fail_next(status=500)
    with pytest.raises(SmsProviderUnavailable):
        send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED)
    row = _row(clean_database, owed.order_id)
    assert row is not None
    assert (row.status, row.claimed_at, row.attempts) == (
        SmsStatus.PENDING,
        None,
        1,
    )
    assert twilio_stub.sent_to(PHONE) == 0
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.SENT
    assert twilio_stub.count("GET") == 1  # the retry asked first, found nothing, sent
    assert twilio_stub.sent_to(PHONE) == 1


def test_a_timeout_after_twilio_accepted_is_found_by_the_retry_not_sent_twice(
    order_owing_sms: MakeOwed,
    clean_database: Database,
    twilio_stub: TwilioStub,
    twilio_sender: TwilioSmsSender,
) -> None:
    owed = order_owing_sms()
    twilio_stub.hang_next(seconds=ADAPTER_TEST_TIMEOUT * 3, after_processing=True)
    with pytest.raises(SmsProviderUnavailable):
        send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED)
    (accepted,) = twilio_stub.texts(PHONE)  # Twilio has it: the customer's phone will ring
    found_before = _counted("shipped", "found")
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.FOUND
    assert twilio_stub.sent_to(PHONE) == 1
    row = _row(clean_database, owed.order_id)
    assert row is not None
    assert (row.status, row.provider_message_id, row.attempts) == (
        SmsStatus.SENT, accepted.sid, 2,
    )  # fmt: skip
    assert _sms_events(clean_database, owed.order_id) == 1
    assert _counted("shipped", "found") == found_before + 1


def test_a_worker_killed_after_twilio_accepted_leaves_one_text(
    order_owing_sms: MakeOwed,
    clean_database: Database,
    database_url: str,
    twilio_stub: TwilioStub,
    twilio_sender: TwilioSmsSender,
) -> None:
    owed = order_owing_sms()
    died = subprocess.run(
        [sys.executable, "-m", "tests.dies_after_sending", "sms", database_url, owed.order_id,
         twilio_stub.url, TWILIO_STUB_ACCOUNT_SID, TWILIO_STUB_AUTH_TOKEN, TWILIO_STUB_FROM],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()[-2000:]
    assert twilio_stub.sent_to(PHONE) == 1
    # The dead worker's claim still holds: a redelivery now does nothing...
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.NOTHING
    # ...until the lease runs out (moved back here instead of waiting two minutes).
    with clean_database.unit_of_work() as session:
        session.execute(
            update(SmsRecord)
            .where(SmsRecord.order_id == owed.order_id)
            .values(claimed_at=func.now() - text("interval '3 minutes'"))
        )
        session.commit()
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.FOUND
    assert twilio_stub.sent_to(PHONE) == 1
    row = _row(clean_database, owed.order_id)
    assert row is not None
    assert (row.status, row.attempts) == (SmsStatus.SENT, 2)


def test_a_refused_text_fails_for_good_and_is_not_swept(
    order_owing_sms: MakeOwed,
    clean_database: Database,
    twilio_stub: TwilioStub,
    twilio_sender: TwilioSmsSender,
) -> None:
    owed = order_owing_sms()
    twilio_stub.unsubscribed.add(PHONE)  # the customer replied STOP to our number
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.FAILED
    row = _row(clean_database, owed.order_id)
    assert row is not None
    assert row.status is SmsStatus.FAILED
    assert row.error is not None
    assert "21610" in row.error
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.NOTHING
    with clean_database.unit_of_work() as session:
        assert not [w for w in find_stalled_work(session, 0) if w.step is Step.SEND_SMS]


def test_refused_credentials_leave_the_text_owed(
    order_owing_sms: MakeOwed, clean_database: Database, twilio_stub: TwilioStub
) -> None:
    owed = order_owing_sms()
    wrong = TwilioSmsSender(
        TWILIO_STUB_ACCOUNT_SID, "revoked-token", TWILIO_STUB_FROM, api_base=twilio_stub.url
    )
    with pytest.raises(SmsProviderMisconfigured):
        send_sms(clean_database, wrong, owed.order_id, SHIPPED)
    row = _row(clean_database, owed.order_id)
    assert row is not None
    assert (row.status, row.claimed_at) == (SmsStatus.PENDING, None)
    with clean_database.unit_of_work() as session:
        assert [w.order_id for w in find_stalled_work(session, 0) if w.step is Step.SEND_SMS] == [
            owed.order_id
        ]


def test_a_customer_who_opted_out_before_it_went_is_not_texted(
    order_owing_sms: MakeOwed,
    clean_database: Database,
    twilio_stub: TwilioStub,
    twilio_sender: TwilioSmsSender,
) -> None:
    owed = order_owing_sms()
    with clean_database.unit_of_work() as session:
        customer = session.get(User, owed.customer_id)
        assert customer is not None
        update_profile(session, customer, {"sms_opt_in": False})
        session.commit()
    assert send_sms(clean_database, twilio_sender, owed.order_id, SHIPPED) is SmsOutcome.SKIPPED
    row = _row(clean_database, owed.order_id)
    assert row is not None
    assert row.status is SmsStatus.SKIPPED
    assert twilio_stub.sent_to(PHONE) == 0


def test_a_lost_step_is_swept_again_until_the_text_is_settled(
    order_owing_sms: MakeOwed, clean_database: Database, tmp_path: Path
) -> None:
    owed = order_owing_sms(OrderStatus.DELIVERED)
    with clean_database.unit_of_work() as session:
        work = [w for w in find_stalled_work(session, 0) if w.step is Step.SEND_SMS]
    assert [(w.order_id, w.kwargs) for w in work] == [(owed.order_id, {"kind": "delivered"})]
    sender = LocalSmsSender(tmp_path / "sms", TWILIO_STUB_FROM)
    outcome = send_sms(clean_database, sender, owed.order_id, SmsKind.DELIVERED)
    assert outcome is SmsOutcome.SENT
    stored = sender.read(f"{owed.order_id}:sms:delivered")
    assert stored is not None
    assert stored.to == PHONE
    assert stored.body == f"orderflow: your order {owed.order_id} was delivered. Enjoy! " + (
        "Reply STOP to opt out."
    )
    with clean_database.unit_of_work() as session:
        assert not [w for w in find_stalled_work(session, 0) if w.step is Step.SEND_SMS]
