"""Both payment providers through the same cases: the local one, and the Stripe one driven
through the official SDK against the wire-level Stripe stub.

Network faults (500, 429, hangs, wrong key, refused connections) only exist for the
Stripe provider and are tested against the stub at the end.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stripe

from orderflow.ids import new_id
from orderflow.money import Money
from orderflow.payments import (
    IntentStatus,
    LocalPaymentProvider,
    PaymentIdempotencyConflict,
    PaymentNotFound,
    PaymentProvider,
    PaymentProviderMisconfigured,
    PaymentProviderUnavailable,
    PaymentRejected,
    PaymentResult,
    payment_provider_from_settings,
)
from orderflow.payments.stripe_provider import StripePaymentProvider
from orderflow.settings import Settings
from tests.stubs import ADAPTER_TEST_TIMEOUT, STRIPE_WEBHOOK_SECRET
from tests.stubs.base import Latency
from tests.stubs.stripe_server import DEFAULT_API_KEY as STRIPE_STUB_API_KEY
from tests.stubs.stripe_server import StripeStub

# Until tests/conftest.py imports them for every suite.

USD_50 = Money(5000, "usd")


@dataclass
class PaymentBackend:
    """A provider plus a way to look behind it: the stub's books, or the local store."""

    name: str
    provider: PaymentProvider
    stub: StripeStub | None = None
    local: LocalPaymentProvider | None = None

    def successful_charges(self, order_id: str) -> int:
        if self.stub is not None:
            return len(self.stub.succeeded_charges(order_id))
        assert self.local is not None
        return sum(1 for r in self.local.intents(order_id) if r.succeeded)

    def refund_count(self, intent_id: str) -> int:
        if self.stub is not None:
            return len(self.stub.refunds(payment_intent=intent_id))
        assert self.local is not None
        return len(self.local.refunds(intent_id))

    def complete_action(self, intent_id: str, *, succeed: bool = True) -> None:
        if self.stub is not None:
            self.stub.complete_action(intent_id, succeed=succeed)
        else:
            assert self.local is not None
            self.local.complete_action(intent_id, succeed=succeed)


@pytest.fixture(params=["local", "stripe"])
def payments(request: pytest.FixtureRequest) -> PaymentBackend:
    if request.param == "local":
        local: LocalPaymentProvider = request.getfixturevalue("local_payment_provider")
        return PaymentBackend("local", local, local=local)
    provider: StripePaymentProvider = request.getfixturevalue("stripe_provider")
    stub: StripeStub = request.getfixturevalue("stripe_stub")
    return PaymentBackend("stripe", provider, stub=stub)


@pytest.fixture
def order_id() -> str:
    return new_id("ord")


def charge(
    backend: PaymentBackend,
    order_id: str,
    payment_method: str = "pm_card_visa",
    *,
    amount: Money = USD_50,
    attempt: int = 1,
) -> PaymentResult:
    return backend.provider.charge(
        order_id=order_id,
        amount=amount,
        payment_method=payment_method,
        idempotency_key=f"{order_id}:charge:{attempt}",
    )


# -- behaviour shared by both providers -------------------------------------------------


def test_provider_satisfies_the_protocol(payments: PaymentBackend) -> None:
    assert isinstance(payments.provider, PaymentProvider)


def test_visa_succeeds(payments: PaymentBackend, order_id: str) -> None:
    result = charge(payments, order_id)

    assert result.status is IntentStatus.SUCCEEDED
    assert result.succeeded
    assert result.intent_id.startswith("pi_")
    assert result.amount == USD_50
    assert result.order_id == order_id
    assert result.decline_code is None
    assert payments.successful_charges(order_id) == 1


@pytest.mark.parametrize(
    ("payment_method", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_declines_return_declined_not_raise(
    payments: PaymentBackend, order_id: str, payment_method: str, decline_code: str
) -> None:
    result = charge(payments, order_id, payment_method)

    assert result.status is IntentStatus.DECLINED
    assert result.decline_code == decline_code
    assert result.intent_id.startswith("pi_")
    assert result.order_id == order_id
    assert payments.successful_charges(order_id) == 0
    retrieved = payments.provider.retrieve(result.intent_id)
    assert retrieved.status is IntentStatus.DECLINED
    assert retrieved.decline_code == decline_code


def test_authentication_required_waits_then_completes(
    payments: PaymentBackend, order_id: str
) -> None:
    result = charge(payments, order_id, "pm_card_authenticationRequired")

    assert result.status is IntentStatus.REQUIRES_ACTION
    assert not result.status.is_final
    assert payments.provider.retrieve(result.intent_id).status is IntentStatus.REQUIRES_ACTION
    assert payments.successful_charges(order_id) == 0

    payments.complete_action(result.intent_id)

    after = payments.provider.retrieve(result.intent_id)
    assert after.status is IntentStatus.SUCCEEDED
    assert after.order_id == order_id
    assert payments.successful_charges(order_id) == 1


def test_failed_authentication_is_a_decline(payments: PaymentBackend, order_id: str) -> None:
    result = charge(payments, order_id, "pm_card_authenticationRequired")
    payments.complete_action(result.intent_id, succeed=False)

    after = payments.provider.retrieve(result.intent_id)
    assert after.status is IntentStatus.DECLINED
    assert after.decline_code == "payment_intent_authentication_failure"


def test_same_key_replays_the_charge(payments: PaymentBackend, order_id: str) -> None:
    first = charge(payments, order_id)
    second = charge(payments, order_id)

    assert second == first
    assert payments.successful_charges(order_id) == 1
    if payments.stub is not None:
        assert payments.stub.count("POST", "/v1/payment_intents") == 2
        assert payments.stub.count("POST", "/v1/payment_intents", replayed=True) == 1


def test_same_key_replays_a_decline(payments: PaymentBackend, order_id: str) -> None:
    first = charge(payments, order_id, "pm_card_chargeDeclined")
    second = charge(payments, order_id, "pm_card_chargeDeclined")

    assert second.intent_id == first.intent_id
    assert second.status is IntentStatus.DECLINED
    assert second.decline_code == "generic_decline"


def test_new_attempt_key_is_a_new_intent(payments: PaymentBackend, order_id: str) -> None:
    declined = charge(payments, order_id, "pm_card_chargeDeclined", attempt=1)
    paid = charge(payments, order_id, "pm_card_visa", attempt=2)

    assert paid.intent_id != declined.intent_id
    assert paid.succeeded
    assert payments.successful_charges(order_id) == 1


def test_same_key_other_params_is_a_conflict(payments: PaymentBackend, order_id: str) -> None:
    charge(payments, order_id)
    with pytest.raises(PaymentIdempotencyConflict) as info:
        charge(payments, order_id, amount=Money(6000, "usd"))

    assert isinstance(info.value, PaymentRejected)
    assert payments.successful_charges(order_id) == 1


def test_unknown_payment_method_is_permanent(payments: PaymentBackend, order_id: str) -> None:
    with pytest.raises(PaymentNotFound) as info:
        charge(payments, order_id, "pm_card_doesNotExist")

    assert info.value.code == "resource_missing"
    assert "pm_card_doesNotExist" in str(info.value)


def test_amount_below_minimum_is_rejected(payments: PaymentBackend, order_id: str) -> None:
    with pytest.raises(PaymentRejected) as info:
        charge(payments, order_id, amount=Money(10, "usd"))

    assert info.value.code == "amount_too_small"


def test_retrieve_unknown_intent_is_not_found(payments: PaymentBackend) -> None:
    with pytest.raises(PaymentNotFound):
        payments.provider.retrieve("pi_doesnotexist000000000000")


def test_refund_once(payments: PaymentBackend, order_id: str) -> None:
    paid = charge(payments, order_id)
    key = f"{order_id}:refund"

    refund = payments.provider.refund(
        order_id=order_id, payment_intent_id=paid.intent_id, amount=USD_50, idempotency_key=key
    )
    again = payments.provider.refund(
        order_id=order_id, payment_intent_id=paid.intent_id, amount=USD_50, idempotency_key=key
    )

    assert refund.status == "succeeded"
    assert refund.amount == USD_50
    assert refund.refund_id.startswith("re_")
    assert refund.payment_intent_id == paid.intent_id
    assert again == refund
    assert payments.refund_count(paid.intent_id) == 1


def test_refund_never_exceeds_capture(payments: PaymentBackend, order_id: str) -> None:
    paid = charge(payments, order_id)

    with pytest.raises(PaymentRejected) as too_much:
        payments.provider.refund(
            order_id=order_id,
            payment_intent_id=paid.intent_id,
            amount=Money(5001, "usd"),
            idempotency_key=f"{order_id}:refund:1",
        )
    assert too_much.value.code == "amount_too_large"

    payments.provider.refund(
        order_id=order_id,
        payment_intent_id=paid.intent_id,
        amount=Money(3000, "usd"),
        idempotency_key=f"{order_id}:refund:2",
    )
    with pytest.raises(PaymentRejected) as over_rest:
        payments.provider.refund(
            order_id=order_id,
            payment_intent_id=paid.intent_id,
            amount=Money(2001, "usd"),
            idempotency_key=f"{order_id}:refund:3",
        )
    assert over_rest.value.code == "amount_too_large"

    payments.provider.refund(
        order_id=order_id,
        payment_intent_id=paid.intent_id,
        amount=Money(2000, "usd"),
        idempotency_key=f"{order_id}:refund:4",
    )
    with pytest.raises(PaymentRejected) as exhausted:
        payments.provider.refund(
            order_id=order_id,
            payment_intent_id=paid.intent_id,
            amount=Money(1, "usd"),
            idempotency_key=f"{order_id}:refund:5",
        )
    assert exhausted.value.code == "charge_already_refunded"
    assert payments.refund_count(paid.intent_id) == 2


def test_declined_payment_cannot_be_refunded(payments: PaymentBackend, order_id: str) -> None:
    declined = charge(payments, order_id, "pm_card_chargeDeclined")

    with pytest.raises(PaymentRejected):
        payments.provider.refund(
            order_id=order_id,
            payment_intent_id=declined.intent_id,
            amount=USD_50,
            idempotency_key=f"{order_id}:refund",
        )


def test_refund_of_unknown_intent_is_not_found(payments: PaymentBackend, order_id: str) -> None:
    with pytest.raises(PaymentNotFound):
        payments.provider.refund(
            order_id=order_id,
            payment_intent_id="pi_doesnotexist000000000000",
            amount=USD_50,
            idempotency_key=f"{order_id}:refund",
        )


# -- Stripe only: the wire, and the faults ----------------------------------------------


def test_one_provider_charges_from_32_threads_at_once(stripe_stub: StripeStub) -> None:
    """As on the provider worker's threads: one adapter shared, the calls overlap (0.2 s
    each, 96 of them in well under 96 times 0.2 s), each thread keeps its connection alive, and
    every charge happens once."""
    stripe_stub.set_latency(Latency(0.2, 0.0))
    provider = StripePaymentProvider(STRIPE_STUB_API_KEY, api_base=stripe_stub.url, timeout=5)
    ids = [new_id("ord") for _ in range(96)]
    barrier, backend = threading.Barrier(32), PaymentBackend("stripe", provider, stub=stripe_stub)

    def charge_three(first: int) -> list[PaymentResult]:
        barrier.wait()
        return [charge(backend, order_id) for order_id in ids[first::32]]

    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        results = [r for batch in pool.map(charge_three, range(32)) for r in batch]
    elapsed = time.monotonic() - started
    provider.close()

    assert {r.status for r in results} == {IntentStatus.SUCCEEDED}
    assert sorted(len(stripe_stub.succeeded_charges(i)) for i in ids) == [1] * 96
    assert elapsed < 96 * 0.2 / 4
    assert stripe_stub.connections_opened <= 32


def test_wire_format_of_a_charge(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str
) -> None:
    stripe_provider.charge(
        order_id=order_id, amount=USD_50, payment_method="pm_card_visa", idempotency_key="key-1"
    )

    (request,) = stripe_stub.requests
    assert (request.method, request.path) == ("POST", "/v1/payment_intents")
    assert request.idempotency_key == "key-1"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in request.headers  # the stub never records credentials
    assert request.note["authorized"] is True
    assert request.params == {
        "amount": "5000",
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "automatic_payment_methods": {"enabled": "true", "allow_redirects": "never"},
        "confirm": "true",
        "metadata": {"order_id": order_id},
    }
    (intent,) = stripe_stub.payment_intents(order_id)
    assert intent["metadata"] == {"order_id": order_id}


def test_refund_carries_order_id(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str
) -> None:
    paid = stripe_provider.charge(
        order_id=order_id, amount=USD_50, payment_method="pm_card_visa", idempotency_key="c"
    )
    stripe_provider.refund(
        order_id=order_id, payment_intent_id=paid.intent_id, amount=USD_50, idempotency_key="r"
    )

    (refund,) = stripe_stub.refunds(order_id=order_id)
    assert refund["metadata"] == {"order_id": order_id}
    charge_object = stripe_stub.charge_for_intent(paid.intent_id)
    assert charge_object["refunded"] is True
    assert stripe_stub.captured_amount(order_id) == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_is_unavailable_then_retry_charges_once(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str, status: int
) -> None:
    stripe_stub.fail_next(1, status=status)

    with pytest.raises(PaymentProviderUnavailable) as info:
        charge_via(stripe_provider, order_id)
    assert info.value.http_status == status
    assert stripe_stub.count() == 1  # the SDK did not retry on its own

    assert charge_via(stripe_provider, order_id).succeeded
    assert len(stripe_stub.succeeded_charges(order_id)) == 1


def test_rate_limit_is_unavailable_with_retry_after(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str
) -> None:
    stripe_stub.fail_next(1, status=429, retry_after=7)

    with pytest.raises(PaymentProviderUnavailable) as info:
        charge_via(stripe_provider, order_id)

    assert info.value.http_status == 429
    assert info.value.retry_after == 7.0
    assert stripe_stub.count() == 1


def test_in_flight_conflict_is_unavailable(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str
) -> None:
    stripe_stub.fail_next(1, status=409)

    with pytest.raises(PaymentProviderUnavailable) as info:
        charge_via(stripe_provider, order_id)
    assert info.value.http_status == 409


def test_hang_past_timeout_is_unavailable(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str
) -> None:
    stripe_stub.hang_next(1, seconds=ADAPTER_TEST_TIMEOUT + 2)
    started = time.monotonic()

    with pytest.raises(PaymentProviderUnavailable):
        charge_via(stripe_provider, order_id)

    assert time.monotonic() - started < ADAPTER_TEST_TIMEOUT + 1.5
    assert stripe_stub.payment_intents(order_id) == []  # never reached "Stripe"
    assert charge_via(stripe_provider, order_id).succeeded
    assert len(stripe_stub.succeeded_charges(order_id)) == 1


def test_lost_response_then_retry_is_a_replay(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str
) -> None:
    stripe_stub.hang_next(1, seconds=ADAPTER_TEST_TIMEOUT + 2, after_processing=True)

    with pytest.raises(PaymentProviderUnavailable):
        charge_via(stripe_provider, order_id)
    assert len(stripe_stub.succeeded_charges(order_id)) == 1  # it did happen

    result = charge_via(stripe_provider, order_id)

    assert result.succeeded
    assert stripe_stub.count("POST", "/v1/payment_intents", replayed=True) == 1
    assert len(stripe_stub.succeeded_charges(order_id)) == 1


def test_mode_stays_until_cleared(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str
) -> None:
    stripe_stub.set_mode("503")
    for _ in range(3):
        with pytest.raises(PaymentProviderUnavailable):
            charge_via(stripe_provider, order_id)
    stripe_stub.set_mode("ok")

    assert charge_via(stripe_provider, order_id).succeeded


def test_wrong_api_key_is_permanent_and_secret_free(stripe_stub: StripeStub, order_id: str) -> None:
    wrong_key = "sk_test_wrong_key_do_not_print_me"
    provider = StripePaymentProvider(wrong_key, api_base=stripe_stub.url, timeout=1)

    with pytest.raises(PaymentProviderMisconfigured) as info:
        charge_via(provider, order_id)

    assert isinstance(info.value, PaymentRejected)
    assert info.value.http_status == 401
    assert wrong_key not in str(info.value)
    assert wrong_key not in repr(provider)
    assert stripe_stub.payment_intents() == []


def test_connection_refused_is_unavailable(order_id: str) -> None:
    with StripeStub() as stub:
        address = stub.url  # a port that is free again once the stub stops
    provider = StripePaymentProvider(STRIPE_STUB_API_KEY, api_base=address, timeout=1)

    with pytest.raises(PaymentProviderUnavailable):
        charge_via(provider, order_id)


def test_factory_builds_the_stripe_provider(stripe_stub: StripeStub, order_id: str) -> None:
    settings = Settings(
        payment_provider="stripe",
        stripe_api_key=STRIPE_STUB_API_KEY,
        stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        stripe_api_base=stripe_stub.url,
    )
    provider = payment_provider_from_settings(settings, timeout=1)

    assert isinstance(provider, StripePaymentProvider)
    assert charge_via(provider, order_id).succeeded


def test_factory_defaults_to_local(tmp_path: Path, order_id: str) -> None:
    settings = Settings(payment_provider="local", state_dir=tmp_path)
    provider = payment_provider_from_settings(settings)

    assert isinstance(provider, LocalPaymentProvider)
    paid = charge_via(provider, order_id)
    # Another instance on the same state dir (another process) sees the payment.
    assert payment_provider_from_settings(settings).retrieve(paid.intent_id) == paid


def test_stub_requires_return_url_with_automatic_payment_methods(
    stripe_stub: StripeStub,
) -> None:
    """The stub refuses what Stripe refuses: confirming an intent with automatic payment
    methods (the default) that allow redirects, and no return_url."""
    client = stripe.StripeClient(
        STRIPE_STUB_API_KEY, base_addresses={"api": stripe_stub.url}, max_network_retries=0
    )
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.create(
            {"amount": 5000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
        )
    assert info.value.param == "return_url"


def test_stub_refuses_payment_method_types_on_the_sdk_api_version(
    stripe_stub: StripeStub,
) -> None:
    """stripe 16 pins 2026-10-28.endive, where payment_method_types is no longer writable;
    an older pinned version still takes it. (Why the adapter sends automatic_payment_methods.)"""
    params: Any = {
        "amount": 5000,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "payment_method_types": ["card"],
        "confirm": True,
    }
    current = stripe.StripeClient(
        STRIPE_STUB_API_KEY, base_addresses={"api": stripe_stub.url}, max_network_retries=0
    )
    with pytest.raises(stripe.InvalidRequestError) as info:
        current.v1.payment_intents.create(params)
    assert info.value.code == "payment_method_types_no_longer_supported"

    pinned = stripe.StripeClient(
        STRIPE_STUB_API_KEY,
        base_addresses={"api": stripe_stub.url},
        max_network_retries=0,
        stripe_version="2025-01-27.acacia",
    )
    assert pinned.v1.payment_intents.create(params).status == "succeeded"


@pytest.mark.parametrize("stripe_version", [None, "2024-06-20", "2025-01-27.acacia"])
def test_adapter_works_on_old_and_new_api_versions(
    stripe_stub: StripeStub, order_id: str, stripe_version: str | None
) -> None:
    provider = StripePaymentProvider(
        STRIPE_STUB_API_KEY, api_base=stripe_stub.url, timeout=1, stripe_version=stripe_version
    )
    assert charge_via(provider, order_id).succeeded


# -- webhook signing helper -------------------------------------------------------------


def test_signed_event_verifies_with_the_sdk(
    stripe_provider: StripePaymentProvider, stripe_stub: StripeStub, order_id: str
) -> None:
    paid = charge_via(stripe_provider, order_id)
    payload, header = stripe_stub.intent_event(
        "payment_intent.succeeded", paid.intent_id, STRIPE_WEBHOOK_SECRET
    )

    event = stripe.Webhook.construct_event(payload, header, STRIPE_WEBHOOK_SECRET)

    assert event.type == "payment_intent.succeeded"
    assert event.data.object.id == paid.intent_id
    assert event.data.object.metadata.order_id == order_id


def test_signed_event_refuses_tampering_and_stale_timestamps(stripe_stub: StripeStub) -> None:
    data = {"id": "pi_x", "object": "payment_intent", "status": "succeeded"}
    payload, header = stripe_stub.signed_event("payment_intent.succeeded", data, "whsec_a")

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload + b" ", header, "whsec_a")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_other")

    old_payload, old_header = stripe_stub.signed_event(
        "payment_intent.succeeded", data, "whsec_a", timestamp=int(time.time()) - 301
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(old_payload, old_header, "whsec_a", tolerance=300)


def charge_via(provider: PaymentProvider, order_id: str) -> PaymentResult:
    return provider.charge(
        order_id=order_id,
        amount=USD_50,
        payment_method="pm_card_visa",
        idempotency_key=f"{order_id}:charge:1",
    )


def test_replay_after_authentication_repeats_the_first_answer(
    payments: PaymentBackend, order_id: str
) -> None:
    """Stripe replays the saved response: after 3-D Secure the same key still says
    requires_action; retrieve tells the truth. Both providers behave so."""
    first = charge(payments, order_id, "pm_card_authenticationRequired")
    payments.complete_action(first.intent_id)

    replay = charge(payments, order_id, "pm_card_authenticationRequired")

    assert replay.status is IntentStatus.REQUIRES_ACTION
    assert replay.intent_id == first.intent_id
    assert payments.provider.retrieve(first.intent_id).status is IntentStatus.SUCCEEDED
    assert payments.successful_charges(order_id) == 1
