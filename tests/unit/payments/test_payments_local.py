"""The local payment provider's pure logic: outcome table, id derivation, refund rules,
and its store (in memory, and on disk shared between instances/threads)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orderflow.money import Money
from orderflow.payments import (
    IntentStatus,
    LocalPaymentProvider,
    PaymentIdempotencyConflict,
    PaymentNotFound,
    PaymentProvider,
    PaymentRejected,
)
from orderflow.payments.local import (
    TEST_PAYMENT_METHODS,
    derive_object_id,
    outcome_for,
    validate_charge_amount,
)

USD = Money(5000, "usd")


@pytest.mark.parametrize(
    ("payment_method", "status", "decline_code"),
    [
        ("pm_card_visa", IntentStatus.SUCCEEDED, None),
        ("pm_card_mastercard", IntentStatus.SUCCEEDED, None),
        ("pm_card_chargeDeclined", IntentStatus.DECLINED, "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", IntentStatus.DECLINED, "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", IntentStatus.DECLINED, "expired_card"),
        ("pm_card_authenticationRequired", IntentStatus.REQUIRES_ACTION, None),
    ],
)
def test_outcome_table(payment_method: str, status: IntentStatus, decline_code: str | None) -> None:
    outcome = outcome_for(payment_method)

    assert outcome.status is status
    assert outcome.decline_code == decline_code


def test_every_test_card_maps_to_a_status() -> None:
    for outcome in TEST_PAYMENT_METHODS.values():
        assert isinstance(outcome.status, IntentStatus)


@pytest.mark.parametrize("payment_method", ["pm_card_nope", "", "tok_visa", "PM_CARD_VISA"])
def test_unknown_payment_method_is_refused_like_stripe(payment_method: str) -> None:
    with pytest.raises(PaymentNotFound) as info:
        outcome_for(payment_method)

    assert info.value.code == "resource_missing"
    assert repr(payment_method) in str(info.value)


def test_derived_ids_are_deterministic_and_namespaced() -> None:
    first = derive_object_id("pi_local_", "charge", "ord_1:charge:1")

    assert first == derive_object_id("pi_local_", "charge", "ord_1:charge:1")
    assert first != derive_object_id("pi_local_", "charge", "ord_1:charge:2")
    assert (
        first[len("pi_local_") :] != derive_object_id("re_local_", "refund", "ord_1:charge:1")[9:]
    )
    assert len(first) == len("pi_local_") + 24


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (Money(0, "usd"), "parameter_invalid_integer"),
        (Money(-5, "usd"), "parameter_invalid_integer"),
        (Money(49, "usd"), "amount_too_small"),
        (Money(29, "gbp"), "amount_too_small"),
    ],
)
def test_charge_amount_rules(amount: Money, code: str) -> None:
    with pytest.raises(PaymentRejected) as info:
        validate_charge_amount(amount)
    assert info.value.code == code


@pytest.mark.parametrize("amount", [Money(50, "usd"), Money(30, "gbp"), Money(1, "sek")])
def test_minimum_amounts_pass(amount: Money) -> None:
    validate_charge_amount(amount)


def test_local_provider_is_a_payment_provider() -> None:
    assert isinstance(LocalPaymentProvider(), PaymentProvider)


def test_same_key_same_intent_across_instances_without_a_store() -> None:
    """Two processes with in-memory stores still agree on the intent id and outcome."""
    a = LocalPaymentProvider().charge(
        order_id="ord_1", amount=USD, payment_method="pm_card_visa", idempotency_key="k"
    )
    b = LocalPaymentProvider().charge(
        order_id="ord_1", amount=USD, payment_method="pm_card_visa", idempotency_key="k"
    )
    assert a == b


def test_validation_failures_are_not_remembered() -> None:
    provider = LocalPaymentProvider()
    with pytest.raises(PaymentRejected):
        provider.charge(
            order_id="ord_1",
            amount=Money(10, "usd"),
            payment_method="pm_card_visa",
            idempotency_key="k",
        )

    fixed = provider.charge(
        order_id="ord_1", amount=USD, payment_method="pm_card_visa", idempotency_key="k"
    )
    assert fixed.succeeded


def test_refund_in_another_currency_is_rejected() -> None:
    provider = LocalPaymentProvider()
    paid = provider.charge(
        order_id="ord_1", amount=USD, payment_method="pm_card_visa", idempotency_key="k"
    )

    with pytest.raises(PaymentRejected) as info:
        provider.refund(
            order_id="ord_1",
            payment_intent_id=paid.intent_id,
            amount=Money(100, "eur"),
            idempotency_key="r",
        )
    assert info.value.code == "currency_mismatch"


def test_refund_key_reused_for_another_amount_is_a_conflict() -> None:
    provider = LocalPaymentProvider()
    paid = provider.charge(
        order_id="ord_1", amount=USD, payment_method="pm_card_visa", idempotency_key="k"
    )
    provider.refund(
        order_id="ord_1",
        payment_intent_id=paid.intent_id,
        amount=Money(100, "usd"),
        idempotency_key="r",
    )

    with pytest.raises(PaymentIdempotencyConflict):
        provider.refund(
            order_id="ord_1",
            payment_intent_id=paid.intent_id,
            amount=Money(200, "usd"),
            idempotency_key="r",
        )


def test_complete_action_only_from_requires_action() -> None:
    provider = LocalPaymentProvider()
    paid = provider.charge(
        order_id="ord_1", amount=USD, payment_method="pm_card_visa", idempotency_key="k"
    )

    with pytest.raises(PaymentRejected) as info:
        provider.complete_action(paid.intent_id)
    assert info.value.code == "payment_intent_unexpected_state"


# -- the file store: shared between instances (processes) and threads -------------------


def test_file_store_is_shared_between_instances(tmp_path: Path) -> None:
    writer = LocalPaymentProvider(store_dir=tmp_path)
    reader = LocalPaymentProvider(store_dir=tmp_path)
    action = writer.charge(
        order_id="ord_1",
        amount=USD,
        payment_method="pm_card_authenticationRequired",
        idempotency_key="k",
    )

    reader.complete_action(action.intent_id)

    assert writer.retrieve(action.intent_id).status is IntentStatus.SUCCEEDED
    assert [r.intent_id for r in reader.intents("ord_1")] == [action.intent_id]


@pytest.mark.parametrize("intent_id", ["../../etc/passwd", "pi_local_../x", "pi_123", ""])
def test_file_store_refuses_foreign_ids(tmp_path: Path, intent_id: str) -> None:
    with pytest.raises(PaymentNotFound):
        LocalPaymentProvider(store_dir=tmp_path).retrieve(intent_id)


def test_file_store_leaves_no_temp_files(tmp_path: Path) -> None:
    provider = LocalPaymentProvider(store_dir=tmp_path)
    paid = provider.charge(
        order_id="ord_1", amount=USD, payment_method="pm_card_visa", idempotency_key="k"
    )
    provider.refund(
        order_id="ord_1", payment_intent_id=paid.intent_id, amount=USD, idempotency_key="r"
    )

    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [".lock", f"{paid.intent_id}.json", *(f"{r.refund_id}.json" for r in provider.refunds())]
    )


def test_concurrent_charges_with_one_key_make_one_payment(tmp_path: Path) -> None:
    providers = [LocalPaymentProvider(store_dir=tmp_path) for _ in range(4)]
    barrier = threading.Barrier(16)

    def charge(i: int) -> str:
        barrier.wait()
        return (
            providers[i % 4]
            .charge(
                order_id="ord_1", amount=USD, payment_method="pm_card_visa", idempotency_key="k"
            )
            .intent_id
        )

    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(charge, range(16)))

    assert len(ids) == 1
    assert len(providers[0].intents("ord_1")) == 1


def test_concurrent_refunds_never_exceed_the_capture(tmp_path: Path) -> None:
    providers = [LocalPaymentProvider(store_dir=tmp_path) for _ in range(4)]
    paid = providers[0].charge(
        order_id="ord_1",
        amount=Money(1000, "usd"),
        payment_method="pm_card_visa",
        idempotency_key="k",
    )
    barrier = threading.Barrier(20)

    def refund(i: int) -> bool:
        barrier.wait()
        try:
            providers[i % 4].refund(
                order_id="ord_1",
                payment_intent_id=paid.intent_id,
                amount=Money(300, "usd"),
                idempotency_key=f"r{i}",
            )
        except PaymentRejected:
            return False
        return True

    with ThreadPoolExecutor(20) as pool:
        accepted = sum(pool.map(refund, range(20)))

    assert accepted == 3  # 3 x 300 <= 1000 < 4 x 300
    assert sum(r.amount.amount for r in providers[0].refunds(paid.intent_id)) == 900


def test_replay_repeats_the_first_answer_like_stripe() -> None:
    provider = LocalPaymentProvider()
    first = provider.charge(
        order_id="ord_1",
        amount=USD,
        payment_method="pm_card_authenticationRequired",
        idempotency_key="k",
    )
    provider.complete_action(first.intent_id)

    replay = provider.charge(
        order_id="ord_1",
        amount=USD,
        payment_method="pm_card_authenticationRequired",
        idempotency_key="k",
    )

    assert replay == first
    assert replay.status is IntentStatus.REQUIRES_ACTION
    assert provider.retrieve(first.intent_id).status is IntentStatus.SUCCEEDED
