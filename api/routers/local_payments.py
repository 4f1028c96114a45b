"""The local customer-action page (only with ``ORDERFLOW_PAYMENT_PROVIDER=local``).

An order paid with ``pm_card_authenticationRequired`` waits for 3-D Secure: at Stripe the
customer authenticates on their bank's page and Stripe then posts a signed webhook. Locally
this page plays both parts: its Complete and Fail buttons move the local provider's intent
(so ``retrieve`` agrees) and post the webhook Stripe would send, signed with
``ORDERFLOW_STRIPE_WEBHOOK_SECRET``, through the API's own ``POST /webhooks/stripe`` route:
the same signature check, shape check and handler as a real delivery. The order gives the
page's address as ``next_action_url``."""

from __future__ import annotations

import html
from typing import Annotated, Any, Literal

import anyio.to_thread
import httpx
from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import SettingsDep
from api.schemas.common import problem_example, problem_responses
from orderflow.errors import Conflict, NotFound, OrderflowError
from orderflow.payments import PaymentNotFound, PaymentRejected
from orderflow.payments.local import LocalPaymentProvider
from orderflow.payments.local_action import settle, signed_event

router = APIRouter(prefix="/local-payments", tags=["local payments"])

PAGE_ROUTE = "local_payment_page"
WEBHOOK_ROUTE = "stripe_webhook"

IntentId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^pi_local_[0-9a-f]{24}$",
        description="The local PaymentIntent id (the order's `payment_intent_id`).",
        examples=["pi_local_3f9c2a71b0d44e8c9a1f0b2c"],
    ),
]
#: What the webhook route answered (``outcome``), shown by the page after a button.
Delivered = Literal["applied", "duplicate", "ignored", "verifying", "anomaly"]

_PAGE_EXAMPLE = (
    "<!doctype html><html><head><title>Authenticate payment</title></head><body>"
    "<h1>Authenticate this payment</h1><p>15075 USD (minor units)</p>"
    '<form method="post" action="/api/v1/local-payments/pi_local_…/complete">'
    "<button>Complete</button></form>"
    '<form method="post" action="/api/v1/local-payments/pi_local_…/fail">'
    "<button>Fail</button></form></body></html>"
)


_SETTLE_PROBLEMS = {
    404: {
        "unknown-payment": problem_example(
            404, "not-found", "Not found", "no local payment pi_local_3f9c2a71b0d44e8c9a1f0b2c"
        )
    },
    409: {
        "already-paid": problem_example(
            409,
            "conflict",
            "Conflict",
            "PaymentIntent pi_local_3f9c2a71b0d44e8c9a1f0b2c is succeeded: there is nothing "
            "for the customer to authenticate",
        ),
        "no-secret": problem_example(
            409,
            "conflict",
            "Conflict",
            "no webhook secret to sign with: set ORDERFLOW_STRIPE_WEBHOOK_SECRET (make run "
            "makes one and keeps it in the state dir)",
        ),
    },
    502: {
        "webhook-refused": problem_example(
            502,
            "local-webhook-refused",
            "Webhook refused",
            "POST /webhooks/stripe answered 400: invalid webhook: SignatureVerificationError",
        )
    },
}


class WebhookRefused(OrderflowError):
    """The API's own webhook route refused what this page sent (a wrong secret, say)."""

    status, slug, title = 502, "local-webhook-refused", "Webhook refused"


def _provider(request: Request) -> LocalPaymentProvider:
    provider: LocalPaymentProvider = request.app.state.local_payments
    return provider


@router.get(
    "/{intent_id}",
    name=PAGE_ROUTE,
    response_class=Response,  # HTML; its errors are problem+json like everywhere else
    summary="Local 3-D Secure page for a payment",
    description=(
        "Only with the local payment provider. The page a customer would see at their bank: "
        "the amount, the order, and two buttons. **Complete** authenticates the payment, "
        "**Fail** fails it; either moves the local PaymentIntent and posts the signed "
        "`payment_intent.succeeded` / `payment_intent.payment_failed` webhook Stripe would "
        "send through `POST /api/v1/webhooks/stripe`. An order waiting here gives this "
        "address as `next_action_url`. No login: like Stripe's hosted page, the intent id is "
        "the key. `webhook` (set by the buttons' redirect) shows what the webhook route did."
    ),
    responses={
        200: {
            "description": "The page",
            "content": {"text/html": {"example": _PAGE_EXAMPLE}},
        },
        **problem_responses(404, examples={404: _SETTLE_PROBLEMS[404]}),
    },
)
async def local_payment_page(
    intent_id: IntentId,
    request: Request,
    settings: SettingsDep,
    webhook: Annotated[
        Delivered | None, Query(description="What the last webhook sent from here did.")
    ] = None,
) -> HTMLResponse:
    intent = await _intent(request, intent_id)
    configured = settings.stripe_webhook_secret is not None
    return HTMLResponse(_page(request, intent, webhook, configured))


@router.post(
    "/{intent_id}/complete",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    summary="Authenticate a local payment",
    description=(
        "Plays the customer completing 3-D Secure: the local PaymentIntent becomes "
        "`succeeded` and a signed `payment_intent.succeeded` webhook goes through "
        "`POST /api/v1/webhooks/stripe`, which confirms the order. Answers 303 back to the "
        "page. Repeating it re-sends the same event (acknowledged as a duplicate)."
    ),
    responses={
        303: {
            "description": "Done; back to the page, which shows the outcome",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **problem_responses(404, 409, 502, examples=_SETTLE_PROBLEMS),
    },
)
async def complete_local_payment(
    intent_id: IntentId, request: Request, settings: SettingsDep
) -> RedirectResponse:
    return await _settle_and_notify(request, settings, intent_id, succeed=True)


@router.post(
    "/{intent_id}/fail",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    summary="Fail a local payment's authentication",
    description=(
        "Plays the customer failing 3-D Secure: the local PaymentIntent goes back to "
        "`requires_payment_method` with `payment_intent_authentication_failure` and a signed "
        "`payment_intent.payment_failed` webhook goes through `POST /api/v1/webhooks/stripe`, "
        "which fails the order (`payment_declined`, stock given back). Answers 303 back to "
        "the page."
    ),
    responses={
        303: {
            "description": "Done; back to the page, which shows the outcome",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **problem_responses(404, 409, 502, examples=_SETTLE_PROBLEMS),
    },
)
async def fail_local_payment(
    intent_id: IntentId, request: Request, settings: SettingsDep
) -> RedirectResponse:
    return await _settle_and_notify(request, settings, intent_id, succeed=False)


async def _intent(request: Request, intent_id: str) -> dict[str, Any]:
    try:
        return await anyio.to_thread.run_sync(_provider(request).payment_intent, intent_id)
    except PaymentNotFound:
        raise NotFound(f"no local payment {intent_id}") from None


async def _settle_and_notify(
    request: Request, settings: SettingsDep, intent_id: str, *, succeed: bool
) -> RedirectResponse:
    if settings.stripe_webhook_secret is None:
        raise Conflict(
            "no webhook secret to sign with: set ORDERFLOW_STRIPE_WEBHOOK_SECRET "
            "(make run makes one and keeps it in the state dir)"
        )
    await _intent(request, intent_id)  # 404 first
    provider = _provider(request)
    try:
        intent = await anyio.to_thread.run_sync(
            lambda: settle(provider, intent_id, succeed=succeed)
        )
    except PaymentRejected as error:
        raise Conflict(str(error)) from None
    _, payload, signature = signed_event(intent, settings.stripe_webhook_secret.get_secret_value())
    outcome = await _post_webhook(request, payload, signature)
    page = request.url_for(PAGE_ROUTE, intent_id=intent_id).include_query_params(webhook=outcome)
    return RedirectResponse(str(page), status_code=status.HTTP_303_SEE_OTHER)


async def _post_webhook(request: Request, payload: bytes, signature: str) -> str:
    """Through the app itself (in process, every middleware and the real route), as if
    Stripe had sent it; answers what the route did (``applied``, ``duplicate``, ...)."""
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as client:
        answer = await client.post(
            request.app.url_path_for(WEBHOOK_ROUTE),
            content=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        )
    if answer.status_code != 200:
        detail = answer.json().get("detail", answer.text) if answer.content else ""
        raise WebhookRefused(f"POST /webhooks/stripe answered {answer.status_code}: {detail}")
    return str(answer.json()["outcome"])


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; color: #222; }
.card { border: 1px solid #ccc; border-radius: 8px; padding: 1.5rem; }
.amount { font-size: 2rem; margin: .5rem 0; }
dl { display: grid; grid-template-columns: max-content auto; gap: .3rem 1rem; }
dt { color: #666; }
form { display: inline; }
button { font-size: 1rem; padding: .6rem 1.4rem; margin-right: .5rem; border-radius: 6px;
         border: 1px solid #888; cursor: pointer; }
button.complete { background: #1a7f37; color: white; border-color: #1a7f37; }
button.fail { background: #fff; color: #b42318; border-color: #b42318; }
.note { background: #f4f4f4; padding: .6rem .8rem; border-radius: 6px; }
"""

_STATUS_WORDS = {
    "requires_action": "waiting for you to authenticate",
    "succeeded": "authenticated: paid",
    "requires_payment_method": "authentication failed",
}


def _page(request: Request, intent: dict[str, Any], delivered: str | None, configured: bool) -> str:
    intent_id = str(intent["id"])
    waiting = intent["status"] == "requires_action"
    amount = f"{int(intent['amount'])} {str(intent['currency']).upper()}"
    escape = html.escape
    rows = {
        "Order": intent["metadata"].get("order_id") or "",
        "Payment": intent_id,
        "Status": _STATUS_WORDS.get(intent["status"], intent["status"]),
    }
    details = "".join(
        f"<dt>{escape(k)}</dt><dd id='{escape(k.lower())}'>{escape(str(v))}</dd>"
        for k, v in rows.items()
    )
    if waiting and configured:
        complete = request.url_for("complete_local_payment", intent_id=intent_id).path
        fail = request.url_for("fail_local_payment", intent_id=intent_id).path
        actions = (
            f'<form method="post" action="{escape(complete)}">'
            '<button class="complete" type="submit">Complete</button></form>'
            f'<form method="post" action="{escape(fail)}">'
            '<button class="fail" type="submit">Fail</button></form>'
        )
    elif waiting:
        actions = (
            "<p class='note'>Webhooks are not configured: set "
            "<code>ORDERFLOW_STRIPE_WEBHOOK_SECRET</code> (make run makes one).</p>"
        )
    else:
        actions = "<p class='note'>Nothing left to do here.</p>"
    notice = ""
    if delivered is not None:
        notice = (
            f"<p class='note' id='webhook'>Webhook sent to POST /api/v1/webhooks/stripe: "
            f"{escape(delivered)}.</p>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Authenticate payment (local)</title>"
        f"<style>{_STYLE}</style></head><body><div class='card'>"
        "<h1>Authenticate this payment</h1>"
        "<p>Local payment provider: this page plays the customer's bank (3-D Secure).</p>"
        f"<p class='amount'>{escape(amount)} <small>(minor units)</small></p>"
        f"<dl>{details}</dl>{actions}{notice}"
        "</div></body></html>"
    )
