"""Celery settings, read from the environment through orderflow's one settings object.

Delivery is at-least-once on purpose: a task is acknowledged only after it ran
(``task_acks_late``), goes back to the queue if its worker process dies
(``task_reject_on_worker_lost``), and a worker holds one message per process at a
time (``worker_prefetch_multiplier = 1``), so a SIGKILL loses nothing it had not
started. Every task is idempotent, which makes redelivery harmless.
"""

from __future__ import annotations

from kombu import Queue

from orderflow.settings import get_settings
from workers.redis_broker import TRANSPORT

_settings = get_settings()

broker_url = _settings.redis_url or "redis://127.0.0.1:6379/0"
if broker_url.startswith("redis://"):
    #: kombu's Redis transport, keeping one client per pool instead of one per command.
    broker_transport = TRANSPORT
result_backend = broker_url
broker_connection_retry_on_startup = True

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_expires = 3600
task_ignore_result = True

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

#: Longest a step may run: soft limit raises inside the task, hard limit kills the process.
task_soft_time_limit = 60
task_time_limit = 90
#: Redis redelivers an unacknowledged message after this long; it must exceed the hard
#: time limit, or a long task would be handed to a second worker while still running.
broker_transport_options = {"visibility_timeout": 300}

worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False

#: One queue per pipeline step, so each can be scaled on its own.
STEP_QUEUES = (
    "reserve_stock",
    "charge_payment",
    "generate_invoice",
    "send_email",
    "send_sms",
    "labels",
    "maintenance",
)
task_default_queue = "maintenance"
#: Outgoing webhooks have a queue and a worker of their own (``workers.launcher``): a slow
#: receiver never holds a worker of the order pipeline.
WEBHOOK_QUEUE = "webhooks"

#: The queues of the steps that wait on a provider (charge and refund, e-mail, labels): a
#: worker of their own with Celery's ``threads`` pool (``workers.launcher``, compose's
#: ``worker-io``), where a thread waiting 300 ms on Stripe holds a thread, not a process.
#: A killed threads worker cuts off every call it had in flight, so each of these steps finds
#: out before calling again whether the provider took the first call: Stripe and Shippo by
#: our idempotency key, Twilio and SendGrid by a lookup (``find_sent``).
PROVIDER_QUEUES = ("charge_payment", "send_email", "send_sms", "labels")
#: The steps that work with our own CPU and database (the reservation, the invoice PDF) and
#: the upkeep: the prefork pool, one process a core.
CPU_QUEUES = tuple(queue for queue in STEP_QUEUES if queue not in PROVIDER_QUEUES)

task_queues = tuple(Queue(name) for name in (*STEP_QUEUES, WEBHOOK_QUEUE))
task_routes = {
    "orderflow.reserve_stock": {"queue": "reserve_stock"},
    "orderflow.charge_payment": {"queue": "charge_payment"},
    "orderflow.generate_invoice": {"queue": "generate_invoice"},
    "orderflow.send_email": {"queue": "send_email"},
    "orderflow.send_sms": {"queue": "send_sms"},
    "orderflow.refund_payment": {"queue": "charge_payment"},
    "orderflow.issue_credit_note": {"queue": "generate_invoice"},
    "orderflow.buy_label": {"queue": "labels"},
    "orderflow.void_label": {"queue": "labels"},
    "orderflow.track_shipment": {"queue": "labels"},
    "orderflow.maintenance.*": {"queue": "maintenance"},
    "orderflow.webhooks.*": {"queue": WEBHOOK_QUEUE},
}

beat_schedule: dict[str, dict[str, object]] = {
    "sweep-stalled-orders": {
        "task": "orderflow.maintenance.sweep",
        "schedule": _settings.sweep_interval_seconds,
        "options": {"expires": _settings.sweep_interval_seconds},
    },
    "purge-expired-records": {"task": "orderflow.maintenance.purge", "schedule": 3600.0},
    "expire-and-purge-carts": {
        "task": "orderflow.maintenance.carts",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
    # Business events past their retention (issue 15).
    "purge-old-events": {"task": "orderflow.maintenance.purge_events", "schedule": 3600.0},
    # Deliveries are the webhooks workers' dispatchers' own; only lost notices need beat.
    "reschedule-webhook-notices": {
        "task": "orderflow.webhooks.reschedule_notices",
        "schedule": _settings.webhook_redispatch_seconds,
        "options": {"expires": _settings.webhook_redispatch_seconds},
    },
}

if _settings.shipping_provider == "local":
    # The local provider's simulated carrier, polled; Shippo tells us (``/webhooks/shippo``).
    beat_schedule["local-carrier"] = {
        "task": "orderflow.maintenance.local_carrier",
        "schedule": _settings.local_carrier_poll_seconds,
        "options": {"expires": _settings.local_carrier_poll_seconds},
    }
