"""Shipping labels: buy one for a shipment (retried like a charge), give one back."""

from __future__ import annotations

from celery import Task, shared_task

from orderflow.fulfilment import labels, tracking
from orderflow.shipping import ShippingProviderUnavailable, ShippingRejected
from orderflow.steps import Step
from tasks import pipeline, runtime
from tasks.retrying import STEP_OPTIONS, retry_or_give_up


@shared_task(name=Step.BUY_LABEL.value, **STEP_OPTIONS)
def buy_label(self: Task, order_id: str, shipment_id: str) -> None:
    with pipeline.continuing():
        try:
            labels.buy_label(runtime.database(), runtime.shipping_provider(), shipment_id)
        except ShippingRejected as error:
            labels.give_up_label(runtime.database(), shipment_id, str(error))
        except ShippingProviderUnavailable as error:
            reason = str(error)
            retry_or_give_up(
                self, error, lambda: labels.give_up_label(runtime.database(), shipment_id, reason)
            )


@shared_task(name=Step.VOID_LABEL.value, **STEP_OPTIONS)
def void_label(self: Task, order_id: str, shipment_id: str) -> None:
    try:
        labels.void_label(runtime.database(), runtime.shipping_provider(), shipment_id)
    except ShippingProviderUnavailable as error:
        retry_or_give_up(self, error, lambda: None)


@shared_task(name=Step.TRACK_SHIPMENT.value, **STEP_OPTIONS)
def track_shipment(self: Task, order_id: str, shipment_id: str) -> None:
    """Read the shipment's tracking back from the provider (its webhook said it changed)."""
    try:
        tracking.refresh_tracking(runtime.database(), runtime.shipping_provider(), shipment_id)
    except ShippingProviderUnavailable as error:
        retry_or_give_up(self, error, lambda: None)
