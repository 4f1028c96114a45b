from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.deps import (
    DEFAULT_PAGE_LIMIT,
    CallerWorkDep,
    Limit,
    Offset,
    SessionDep,
    SettingsDep,
    ViewerDep,
)
from api.ratelimit import OrderRateLimit
from api.routers import local_payments
from api.schemas.common import BODY_PROBLEMS, ListPage, Rfc3339DateTime, problem_responses
from api.schemas.orders import EventOut, OrderCreate, OrderOut, StatusChange
from orderflow import idempotency
from orderflow.errors import NotFound
from orderflow.fulfilment import moves
from orderflow.fulfilment.invoicing import invoice_pdf
from orderflow.models import Order
from orderflow.orders import service as orders
from orderflow.orders.service import Viewer
from orderflow.payments.local import TEST_PAYMENT_METHODS
from orderflow.statuses import OrderStatus, PaymentStatus

router = APIRouter(prefix="/orders", tags=["orders"])

#: What ``idempotency.check_key`` accepts of a header value: printable (Latin-1, as headers
#: are read) characters; HTTP strips spaces at either end.
_PRINTABLE = r"\x21-\x7e\xa1-\xac\xae-\xff"
IDEMPOTENCY_KEY_PATTERN = f"^[{_PRINTABLE}]([ {_PRINTABLE}]*[{_PRINTABLE}])?$"

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Optional, recommended; 1 to 255 printable characters. Scoped to the caller.",
        # Documented here, enforced by the service: a bad key is a 400 (DESIGN.md), not a 422.
        json_schema_extra={"minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
    ),
]


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
    return idempotency.StoredResponse(
        status=status.HTTP_201_CREATED,
        body=OrderOut.of(order).model_dump(mode="json"),
        location=f"/api/v1/orders/{order.id}",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 403, 404, 409, 429),
    dependencies=[OrderRateLimit],
)
async def place_order(
    body: OrderCreate,
    work: CallerWorkDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    ttl_hours = settings.idempotency_key_ttl_hours
    placement = await work.run(functools.partial(_place, body, idempotency_key, ttl_hours))
    headers = {"Location": placement.response.location or ""}
    if placement.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(placement.response.body, placement.response.status, headers=headers)


def _place(
    body: OrderCreate,
    idempotency_key: str | None,
    ttl_hours: int,
    session: Session,
    viewer: Viewer,
) -> orders.Placement:
    """Place, in the caller's unit of work (``CallerWork``)."""
    request = None
    if idempotency_key is not None:
        request = orders.IdempotentRequest(
            caller_id=viewer.user_id,
            key=idempotency_key,
            fingerprint=idempotency.fingerprint("POST", "/orders", body.model_dump(mode="json")),
            ttl_hours=ttl_hours,
        )
    command = orders.PlaceOrder(
        customer_id=body.customer_id or viewer.user_id,
        items=[orders.LineRequest(line.product_id, line.quantity) for line in body.items],
        shipping_address=body.shipping_address.model_dump(mode="json"),
        payment_method=body.payment_method,
    )
    return orders.place_order_idempotently(session, viewer, command, request, _render_created)


@router.get("", response_model=ListPage[OrderOut], responses=problem_responses(401))
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


@router.get("/{order_id}", response_model=OrderOut, responses=problem_responses(401, 404))
def get_order(
    order_id: str, viewer: ViewerDep, session: SessionDep, render: RenderOrder
) -> OrderOut:
    return render(orders.get_order(session, order_id, viewer))


@router.put(
    "/{order_id}/status",
    response_model=OrderOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 403, 404, 409),
)
def change_status(
    order_id: str, body: StatusChange, viewer: ViewerDep, session: SessionDep, render: RenderOrder
) -> OrderOut:
    return render(moves.change_status(session, order_id, body.status, viewer))


@router.delete(
    "/{order_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
def cancel_order(order_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    moves.cancel_order(session, order_id, viewer)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{order_id}/events", response_model=ListPage[EventOut], responses=problem_responses(401, 404)
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
    responses={
        200: {"content": {"application/pdf": {}}, "description": "The invoice PDF"},
        **problem_responses(401, 404),
    },
)
def order_invoice(order_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    order = orders.get_order(session, order_id, viewer)
    pdf = invoice_pdf(session, order.id)
    if pdf is None:
        raise NotFound(f"order {order_id} has no invoice yet")
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{order.invoice_number}.pdf"'},
    )


customers_router = APIRouter(prefix="/customers", tags=["orders"])


@customers_router.get(
    "/{customer_id}/orders",
    response_model=ListPage[OrderOut],
    responses=problem_responses(401, 404),
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
