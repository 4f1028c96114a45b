from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import examples as ex
from api.deps import (
    DEFAULT_PAGE_LIMIT,
    CallerWorkDep,
    Limit,
    Offset,
    SessionDep,
    SettingsDep,
    ViewerDep,
)
from api.idempotent import IdempotencyKeyHeader, answer_of, created, keyed_request
from api.ratelimit import OrderRateLimit
from api.routers import local_payments
from api.schemas.common import (
    BODY_PROBLEMS,
    ListPage,
    Rfc3339DateTime,
    json_answer,
    problem_example,
    problem_responses,
)
from api.schemas.orders import (
    EventOut,
    OrderCreate,
    OrderOut,
    RefundCreate,
    RefundOut,
    StatusChange,
)
from orderflow import idempotency
from orderflow.errors import NotFound, Unprocessable
from orderflow.fulfilment import moves
from orderflow.fulfilment import refund_requests as refunds
from orderflow.fulfilment.invoicing import invoice_pdf, why_no_invoice
from orderflow.models import Order, Refund
from orderflow.orders import service as orders
from orderflow.orders.service import Viewer
from orderflow.payments.local import TEST_PAYMENT_METHODS
from orderflow.statuses import OrderStatus, PaymentStatus

router = APIRouter(prefix="/orders", tags=["orders"])

_NO_ORDER = {
    404: {
        "unknown-order": problem_example(
            404, "not-found", "Not found", f"order {ex.ORDER_ID} does not exist"
        )
    }
}
_OWNER_OR_ADMIN = (
    " A client sees only its own orders (anyone else's is 404, as if it did not exist); "
    "an admin sees every order."
)
_ORDER_EXAMPLES = {
    "visa": {
        "summary": "Pay with a card that succeeds",
        "value": ex.ORDER_REQUEST,
    },
    "3-d-secure": {
        "summary": "A card that asks the customer to authenticate (3-D Secure)",
        "value": {**ex.ORDER_REQUEST, "payment_method": "pm_card_authenticationRequired"},
    },
    "declined": {
        "summary": "A card that is declined: the order ends failed",
        "value": {**ex.ORDER_REQUEST, "payment_method": "pm_card_chargeDeclined"},
    },
    "for-a-customer": {
        "summary": "An admin ordering for a customer",
        "value": {**ex.ORDER_REQUEST, "customer_id": ex.USER_ID},
    },
}


def awaits_local_authentication(order: Order) -> bool:
    """The order waits for the customer to authenticate its payment with the local
    provider: pending, its charge answered with an intent that is neither paid nor
    declined, and a payment method that asks for 3-D Secure."""
    outcome = TEST_PAYMENT_METHODS.get(order.payment_method)
    return (
        order.status == OrderStatus.PENDING.value
        and order.payment_status == PaymentStatus.PROCESSING.value
        and order.payment_intent_id is not None
        and order.failure_reason is None
        and outcome is not None
        and outcome.stripe_status == "requires_action"
    )


async def order_renderer(request: Request, settings: SettingsDep) -> Callable[[Order], OrderOut]:
    """How this request shows an order: with the local provider, an order waiting for 3-D
    Secure carries the address of the local page that plays the customer's part."""
    local = settings.payment_provider == "local"

    def render(order: Order) -> OrderOut:
        url = None
        if local and awaits_local_authentication(order):
            url = str(request.url_for(local_payments.PAGE_ROUTE, intent_id=order.payment_intent_id))
        return OrderOut.of(order, next_action_url=url)

    return render


RenderOrder = Annotated[Callable[[Order], OrderOut], Depends(order_renderer)]


def order_page(page: orders.Page[Order], render: Callable[[Order], OrderOut]) -> ListPage[OrderOut]:
    return ListPage(
        items=[render(order) for order in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


def _render_created(order: Order) -> idempotency.StoredResponse:
    return created(OrderOut.of(order).model_dump(mode="json"), f"/orders/{order.id}")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    summary="Place an order",
    description=(
        "Prices the lines from the catalogue (prices are snapshotted now), stores the order "
        "and answers at once with `status: pending` and `Location`. Stock, payment, invoice "
        "and e-mail follow in the background: poll `GET /orders/{order_id}` until `status` "
        "is `confirmed` or `failed`. Payment methods are Stripe's test ids: `pm_card_visa` "
        "succeeds, `pm_card_chargeDeclined` is declined, `pm_card_authenticationRequired` "
        "waits for 3-D Secure (see `next_action_url`).\n\n"
        "**Idempotency-Key** (recommended): the same key with the same body answers the "
        "first answer again with `Idempotent-Replayed: true`; with another body 422; while "
        "the first request is still running 409. Keys belong to the caller and are kept at "
        "least 24 hours; only successful answers are stored.\n\n"
        "Clients order for themselves; an admin may name `customer_id`. Rate-limited per "
        "caller (429 with `Retry-After`).\n\n"
        "**From a cart**: send `cart_id` (one of your carts) instead of `items`, and "
        "optionally `expected_total`, the total you showed the customer. The order takes "
        "the cart's lines at today's prices and the cart becomes `completed` with its "
        "`order_id`, in one transaction. 409 `price-changed` (each line's price when put in "
        "the cart and now; nothing is ordered) when the cart costs another amount; 409 "
        "`cart-completed` naming the order when the cart already became one (at most one "
        "order per cart, whatever the concurrency); 409 `cart-expired`; 422 for an empty "
        "cart, or for `items` and `cart_id` together."
    ),
    responses={
        201: {
            "description": "Placed; `Location` names the order",
            "headers": {
                "Location": {
                    "description": "The order's address",
                    "schema": {"type": "string"},
                    "example": f"/api/v1/orders/{ex.ORDER_ID}",
                },
                "Idempotent-Replayed": {
                    "description": "`true` when this is the stored answer to a repeated key",
                    "schema": {"type": "string"},
                },
            },
            "content": {
                "application/json": {
                    "examples": {
                        "placed": {"value": ex.PENDING_ORDER},
                        "from-a-cart": {"value": ex.CART_ORDER},
                    }
                }
            },
        },
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            404,
            409,
            429,
            examples={
                400: {
                    "bad-key": problem_example(
                        400,
                        "bad-request",
                        "Bad request",
                        "Idempotency-Key must be 1 to 255 printable characters",
                        errors=[
                            {"field": "Idempotency-Key", "message": "invalid length or characters"}
                        ],
                    )
                },
                403: {
                    "not-admin": problem_example(
                        403,
                        "forbidden",
                        "Forbidden",
                        "only admins may place an order for another customer",
                    )
                },
                404: {
                    "unknown-product": problem_example(
                        404,
                        "not-found",
                        "Not found",
                        f"product {ex.PRODUCT_ID} does not exist or is no longer sold",
                        product_id=ex.PRODUCT_ID,
                    ),
                    "unknown-cart": problem_example(
                        404,
                        "not-found",
                        "Not found",
                        f"cart {ex.CART_ID} does not exist",
                        cart_id=ex.CART_ID,
                    ),
                },
                409: {
                    "price-changed": problem_example(
                        409,
                        "price-changed",
                        "Prices changed",
                        "the cart costs 16500 usd now, not 15075; read the cart again and "
                        "confirm its total",
                        expected_total=15075,
                        current_total=16500,
                        currency="usd",
                        lines=[
                            {
                                "product_id": ex.PRODUCT_ID,
                                "quantity": 3,
                                "expected_unit_price": 5025,
                                "current_unit_price": 5500,
                            }
                        ],
                    ),
                    "cart-completed": problem_example(
                        409,
                        "cart-completed",
                        "Cart already checked out",
                        f"cart {ex.CART_ID} has already become order {ex.ORDER_ID}",
                        cart_id=ex.CART_ID,
                        order_id=ex.ORDER_ID,
                    ),
                    "short-stock": problem_example(
                        409,
                        "insufficient-stock",
                        "Insufficient stock",
                        f"product {ex.PRODUCT_ID} has 2 in stock, 3 requested",
                        product_id=ex.PRODUCT_ID,
                    ),
                    "key-in-flight": problem_example(
                        409,
                        "idempotency-key-in-use",
                        "Request with this Idempotency-Key is in progress",
                        "a request with this Idempotency-Key is still in progress",
                    ),
                },
                422: {
                    "bad-field": problem_example(
                        422,
                        "validation-error",
                        "Validation failed",
                        "invalid input in items.0.quantity",
                        errors=[
                            {
                                "field": "items.0.quantity",
                                "message": "Input should be greater than or equal to 1",
                                "type": "greater_than_equal",
                            }
                        ],
                    ),
                    "key-reused": problem_example(
                        422,
                        "idempotency-key-reused",
                        "Idempotency-Key reused with a different request",
                        "this Idempotency-Key was used with a different request body; "
                        "use a new key",
                    ),
                },
            },
        ),
    },
    dependencies=[OrderRateLimit],
)
async def place_order(
    body: Annotated[OrderCreate, Body(openapi_examples=_ORDER_EXAMPLES)],
    work: CallerWorkDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    _one_source_of_lines(body)
    ttl_hours = settings.idempotency_key_ttl_hours
    return answer_of(await work.run(functools.partial(_place, body, idempotency_key, ttl_hours)))


def _place(
    body: OrderCreate,
    idempotency_key: str | None,
    ttl_hours: int,
    session: Session,
    viewer: Viewer,
) -> idempotency.Answer:
    """Place, in the caller's unit of work (``CallerWork``)."""
    request = keyed_request(
        idempotency_key, viewer.user_id, "/orders", _fingerprinted(body), ttl_hours
    )
    command = orders.PlaceOrder(
        customer_id=body.customer_id or viewer.user_id,
        items=[orders.LineRequest(line.product_id, line.quantity) for line in body.items or ()],
        shipping_address=body.shipping_address.model_dump(mode="json"),
        payment_method=body.payment_method,
        cart_id=body.cart_id,
        expected_total=body.expected_total,
    )
    return orders.place_order_idempotently(session, viewer, command, request, _render_created)


def _one_source_of_lines(body: OrderCreate) -> None:
    """The lines come from ``items`` or from the caller's cart ``cart_id``, never both."""
    problems = []
    if (body.items is None) == (body.cart_id is None):
        problems.append(("items", "give either items or cart_id (exactly one)"))
    if body.cart_id is not None and body.customer_id is not None:
        problems.append(("customer_id", "an order from a cart is its owner's: no customer_id"))
    if body.expected_total is not None and body.cart_id is None:
        problems.append(("expected_total", "only with cart_id"))
    if problems:
        names = ", ".join(field for field, _ in problems)
        raise Unprocessable(
            f"invalid input in {names}",
            errors=[{"field": field, "message": message} for field, message in problems],
        )


#: Fields an order body gained with carts: left out of a body's fingerprint when unset, so
#: a key first used before they existed still matches the same body.
_NEWER_FIELDS = ("cart_id", "expected_total")


def _fingerprinted(body: OrderCreate) -> dict[str, object]:
    return body.model_dump(
        mode="json", exclude={name for name in _NEWER_FIELDS if getattr(body, name) is None}
    )


@router.get(
    "",
    response_model=ListPage[OrderOut],
    summary="List orders",
    description=(
        "Newest first, paged with `limit` (1 to 100, default 20) and `offset`. Filters: "
        "`status`, `customer_id`, `created_after`, `created_before` (RFC 3339 with a zone, "
        "e.g. `2026-03-14T00:00:00Z`). A client sees only its own orders (a `customer_id` "
        "filter then narrows within them); an admin sees every customer's."
    ),
    responses={
        **json_answer(200, "A page of orders", page=ex.page(ex.ORDER)),
        **problem_responses(401),
    },
)
def list_orders(
    viewer: ViewerDep,
    session: SessionDep,
    render: RenderOrder,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    customer_id: Annotated[str | None, Query(max_length=40)] = None,
    created_after: Rfc3339DateTime | None = None,
    created_before: Rfc3339DateTime | None = None,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    offset: Offset = 0,
) -> ListPage[OrderOut]:
    filters = orders.OrderFilter(customer_id, status_, created_after, created_before)
    return order_page(orders.list_orders(session, viewer, filters, limit, offset), render)


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    summary="Get an order",
    description=(
        "The order as it stands: `status` (`pending`, `confirmed`, `shipped`, `delivered`, "
        "`cancelled`, `failed`), `payment_status`, lines, totals, invoice number, "
        "`failure_reason` and, while it waits for 3-D Secure with the local payment "
        "provider, `next_action_url`." + _OWNER_OR_ADMIN
    ),
    responses={
        **json_answer(
            200,
            "The order",
            confirmed=ex.ORDER,
            awaiting_customer_action=ex.AWAITING_ORDER,
            failed={
                **ex.PENDING_ORDER,
                "status": "failed",
                "payment_status": "failed",
                "failure_reason": "payment_declined",
            },
        ),
        **problem_responses(401, 404, examples=_NO_ORDER),
    },
)
def get_order(
    order_id: str, viewer: ViewerDep, session: SessionDep, render: RenderOrder
) -> OrderOut:
    return render(orders.get_order(session, order_id, viewer))


@router.put(
    "/{order_id}/status",
    response_model=OrderOut,
    summary="Move an order (admin)",
    description=(
        "Admins move orders along the life cycle: `confirmed → shipped → delivered`, and "
        "`pending`/`confirmed → cancelled` (stock released, refund if paid). `confirmed` "
        "and `failed` belong to the pipeline: asking for them is 409, as is any move the "
        "life cycle does not allow. The e-mail of the new status follows."
    ),
    responses={
        **json_answer(200, "The order, moved", shipped={**ex.ORDER, "status": "shipped"}),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            404,
            409,
            examples={
                **_NO_ORDER,
                409: {
                    "not-allowed": problem_example(
                        409,
                        "transition-not-allowed",
                        "Transition not allowed",
                        "an order that is pending cannot become shipped",
                    )
                },
            },
        ),
    },
)
def change_status(
    order_id: str, body: StatusChange, viewer: ViewerDep, session: SessionDep, render: RenderOrder
) -> OrderOut:
    return render(moves.change_status(session, order_id, body.status, viewer))


@router.delete(
    "/{order_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Cancel an order",
    description=(
        "Cancels a `pending` or `confirmed` order: its stock is released at once, a paid "
        "order is refunded in full in the background, and the cancellation e-mail follows. "
        "Cancelling again is 204; once shipped it is 409." + _OWNER_OR_ADMIN
    ),
    responses={
        204: {"description": "Cancelled (or it already was)"},
        **problem_responses(
            401,
            403,
            404,
            409,
            examples={
                **_NO_ORDER,
                409: {
                    "shipped": problem_example(
                        409,
                        "transition-not-allowed",
                        "Transition not allowed",
                        "an order that is shipped can no longer be cancelled",
                    )
                },
            },
        ),
    },
)
def cancel_order(order_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    moves.cancel_order(session, order_id, viewer)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{order_id}/events",
    response_model=ListPage[EventOut],
    summary="An order's timeline",
    description=(
        "Every event of the order, oldest first: `order_placed`, `stock_reserved`, "
        "`payment_requires_action`, `payment_succeeded`, `payment_failed`, "
        "`invoice_generated`, `email_sent`, `status_changed` (with `from`, `to` and "
        "`reason`), ... Each names its `actor`: the customer's id, an admin's, `system` "
        "or `operator`." + _OWNER_OR_ADMIN
    ),
    responses={
        **json_answer(200, "A page of events", timeline=ex.page(*ex.EVENTS)),
        **problem_responses(401, 404, examples=_NO_ORDER),
    },
)
def order_events(
    order_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    offset: Offset = 0,
) -> ListPage[EventOut]:
    page = orders.list_events(session, order_id, viewer, limit, offset)
    return ListPage(
        items=[EventOut.of(e) for e in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get(
    "/{order_id}/invoice",
    response_class=Response,
    summary="Download an order's invoice",
    description=(
        "The invoice PDF (`application/pdf`), numbered `INV-YYYY-NNNNNN` without gaps. It "
        "is issued once the order is confirmed; until then, and for an order that never "
        "was, 404." + _OWNER_OR_ADMIN
    ),
    responses={
        200: {
            "description": "The invoice PDF",
            "content": {
                "application/pdf": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": "%PDF-1.4 …",
                }
            },
        },
        **problem_responses(
            401,
            404,
            examples={
                404: {
                    "not-yet": problem_example(
                        404, "not-found", "Not found", f"order {ex.ORDER_ID} has no invoice yet"
                    )
                }
            },
        ),
    },
)
def order_invoice(order_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    order = orders.get_order(session, order_id, viewer)
    pdf = invoice_pdf(session, order.id)
    if pdf is None:
        raise NotFound(why_no_invoice(order), order_id=order.id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{order.invoice_number}.pdf"'},
    )


def _render_refund(refund: Refund) -> idempotency.StoredResponse:
    return created(
        RefundOut.of(refund).model_dump(mode="json"), f"/orders/{refund.order_id}/refunds"
    )


@router.post(
    "/{order_id}/refunds",
    status_code=status.HTTP_201_CREATED,
    response_model=RefundOut,
    summary="Refund part or all of an order's payment",
    description=(
        "Admins only. `amount` (minor units of the order's currency) must fit in what is "
        "left to refund: captured, less refunds succeeded or pending; more is 409 "
        "`refund-exceeds-refundable`, under any concurrency (checked under the order's row "
        "lock; a database constraint keeps it too). The refund is written `pending` and "
        "sent to the payment provider in the background, once, with an idempotency key "
        "derived from its id; it becomes `succeeded` or `failed`, and the order's "
        "`refunded_amount`, `refundable_amount` and `payment_status` "
        "(`partially_refunded`, `refunded`) follow. An `Idempotency-Key` replays the first "
        "answer, as for orders."
    ),
    responses={
        **json_answer(201, "The refund, pending", refund=ex.REFUND),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            404,
            409,
            examples={
                **_NO_ORDER,
                409: {
                    "too-much": problem_example(
                        409,
                        "refund-exceeds-refundable",
                        "More than is left to refund",
                        f"order {ex.ORDER_ID} has 1000 usd left to refund (captured 15075, "
                        "refunded 14075, pending 0); 5025 asked",
                    )
                },
            },
        ),
    },
)
def refund_order(
    order_id: str,
    body: RefundCreate,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Refund part or all of what is left of the capture; 409 when more than that."""
    request = keyed_request(
        idempotency_key,
        viewer.user_id,
        f"/orders/{order_id}/refunds",
        body.model_dump(mode="json"),
        settings.idempotency_key_ttl_hours,
    )
    return answer_of(
        refunds.refund_order(
            session, viewer, order_id, body.amount, body.reason, request, _render_refund
        )
    )


@router.get(
    "/{order_id}/refunds",
    response_model=list[RefundOut],
    summary="An order's refunds",
    description="Every refund of the order, oldest first, whatever its status." + _OWNER_OR_ADMIN,
    responses={
        **json_answer(200, "The refunds", refunds=[{**ex.REFUND, "status": "succeeded"}]),
        **problem_responses(401, 404, examples=_NO_ORDER),
    },
)
def order_refunds(order_id: str, viewer: ViewerDep, session: SessionDep) -> list[RefundOut]:
    return [RefundOut.of(refund) for refund in refunds.list_refunds(session, viewer, order_id)]


customers_router = APIRouter(prefix="/customers", tags=["orders"])


@customers_router.get(
    "/{customer_id}/orders",
    response_model=ListPage[OrderOut],
    summary="A customer's orders",
    description=(
        "The customer's orders, newest first. That customer or an admin; for anyone "
        "else, and for a customer that does not exist, 404."
    ),
    responses={
        **json_answer(200, "A page of orders", page=ex.page(ex.ORDER)),
        **problem_responses(
            401,
            404,
            examples={
                404: {
                    "unknown-customer": problem_example(
                        404, "not-found", "Not found", f"customer {ex.USER_ID} does not exist"
                    )
                }
            },
        ),
    },
)
def customer_orders(
    customer_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    render: RenderOrder,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    offset: Offset = 0,
) -> ListPage[OrderOut]:
    page = orders.list_customer_orders(session, viewer, customer_id, limit, offset)
    return order_page(page, render)
