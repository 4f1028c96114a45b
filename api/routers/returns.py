"""Returns of an order's shipped units (DESIGN.md, "Changing an order, refunds and returns").
Thin: parse, call one service of ``returns.service``, serialise."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import examples as ex
from api.deps import DEFAULT_PAGE_LIMIT, Limit, Offset, SessionDep, SettingsDep, ViewerDep
from api.idempotent import IdempotencyKeyHeader, answer_of, created, keyed_request
from api.schemas.common import (
    BODY_PROBLEMS,
    ListPage,
    json_answer,
    problem_example,
    problem_responses,
)
from api.schemas.returns import ReturnCreate, ReturnOut, ReturnReceiveIn, ReturnRejectIn
from orderflow import idempotency
from orderflow.fulfilment import returning as returns
from orderflow.returns.models import Return

orders_router = APIRouter(prefix="/orders", tags=["returns"])
router = APIRouter(prefix="/returns", tags=["returns"])

_OWNER_OR_ADMIN = " The order's customer or an admin; anyone else gets 404."
_NO_ORDER = {
    404: {
        "no-order": problem_example(
            404, "not-found", "Not found", f"order {ex.ORDER_ID} does not exist"
        )
    }
}
_NO_RETURN = {
    404: {
        "no-return": problem_example(
            404, "not-found", "Not found", f"return {ex.RETURN_ID} does not exist"
        )
    }
}
_ADMINS = {
    403: {
        "not-admin": problem_example(
            403, "forbidden", "Forbidden", "only admins may approve, reject or receive a return"
        )
    }
}


def _moved(return_id: str, current: str, target: str, why: str) -> dict[str, Any]:
    return problem_example(
        409,
        "transition-not-allowed",
        "Transition not allowed",
        f"return {return_id} is {current} and cannot become {target}: {why}",
        return_id=return_id,
        return_status=current,
    )


def _render_created(session: Session, return_: Return) -> idempotency.StoredResponse:
    session.flush()
    session.refresh(return_)
    return created(ReturnOut.of(return_).model_dump(mode="json"), f"/returns/{return_.id}")


def _shown(session: Session, return_: Return) -> ReturnOut:
    session.flush()
    session.refresh(return_)
    return ReturnOut.of(return_)


@orders_router.post(
    "/{order_id}/returns",
    status_code=status.HTTP_201_CREATED,
    response_model=ReturnOut,
    summary="Ask to return shipped units",
    description=(
        "A return of units of the order that were shipped (in transit or later), "
        "`requested`. Each line may hold at most what was shipped of it less what other "
        "returns hold (409 `return-exceeds-shipped`), and only units delivered, or shipped "
        "while delivery is unknown, within `ORDERFLOW_RETURN_WINDOW_DAYS` days (30 by "
        "default; 409 `return-window-closed`). 422 for a product the order does not have. "
        "`Idempotency-Key` as for `POST /orders`." + _OWNER_OR_ADMIN
    ),
    responses={
        **json_answer(201, "The return, requested", requested=ex.RETURN),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            404,
            409,
            examples={
                **_NO_ORDER,
                409: {
                    "more-than-shipped": problem_example(
                        409,
                        "return-exceeds-shipped",
                        "More than was shipped would be returned",
                        f"product {ex.PRODUCT_ID}: 3 asked, 2 shipped and 1 returned already",
                        product_id=ex.PRODUCT_ID,
                        returnable=1,
                    ),
                    "window-closed": problem_example(
                        409,
                        "return-window-closed",
                        "Outside the return window",
                        f"product {ex.PRODUCT_ID}: 1 asked, 0 may still be returned (30 days "
                        "after delivery)",
                        product_id=ex.PRODUCT_ID,
                        returnable=0,
                    ),
                },
            },
        ),
    },
)
def request_return(
    order_id: str,
    body: Annotated[
        ReturnCreate,
        Body(
            openapi_examples={"one-unit": {"summary": "One pen back", "value": ex.RETURN_REQUEST}}
        ),
    ],
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """The order's customer or an admin: a return of shipped units, ``requested``."""
    request = keyed_request(
        idempotency_key,
        viewer.user_id,
        f"/orders/{order_id}/returns",
        body.model_dump(mode="json"),
        settings.idempotency_key_ttl_hours,
    )
    lines = [returns.RequestedLine(line.product_id, line.quantity, line.reason)
             for line in body.lines]  # fmt: skip
    answer = returns.request_return_idempotently(
        session,
        viewer,
        order_id,
        lines,
        settings.return_window_days,
        request,
        lambda return_: _render_created(session, return_),
    )
    return answer_of(answer)


@orders_router.get(
    "/{order_id}/returns",
    response_model=ListPage[ReturnOut],
    summary="An order's returns",
    description="The order's returns, oldest first, whatever their status." + _OWNER_OR_ADMIN,
    responses={
        **json_answer(200, "A page of returns", returns=ex.page(ex.RETURN)),
        **problem_responses(401, 404, examples=_NO_ORDER),
    },
)
def list_returns(
    order_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    offset: Offset = 0,
) -> ListPage[ReturnOut]:
    page = returns.list_returns(session, order_id, viewer, limit, offset)
    return ListPage(
        items=[ReturnOut.of(r) for r in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get(
    "/{return_id}",
    response_model=ReturnOut,
    summary="Get a return",
    description="One return: its status, its lines as asked for and as received, and the "
    "refund its receipt made." + _OWNER_OR_ADMIN,
    responses={
        **json_answer(200, "The return", received=ex.RECEIVED_RETURN),
        **problem_responses(401, 404, examples=_NO_RETURN),
    },
)
def get_return(return_id: str, viewer: ViewerDep, session: SessionDep) -> ReturnOut:
    return ReturnOut.of(returns.get_return(session, return_id, viewer))


@router.post(
    "/{return_id}/approve",
    response_model=ReturnOut,
    summary="Approve a return (admin)",
    description=(
        "`requested → approved`: the customer may send the units back. Approving it "
        "again is 200 and changes nothing; any other status is 409."
    ),
    responses={
        **json_answer(200, "The return, approved", approved={**ex.RETURN, "status": "approved"}),
        **problem_responses(
            401,
            403,
            404,
            409,
            examples={
                **_NO_RETURN,
                **_ADMINS,
                409: {"rejected": _moved(ex.RETURN_ID, "rejected", "approved", "it was rejected")},
            },
        ),
    },
)
def approve_return(return_id: str, viewer: ViewerDep, session: SessionDep) -> ReturnOut:
    return _shown(session, returns.approve_return(session, viewer, return_id))


@router.post(
    "/{return_id}/reject",
    response_model=ReturnOut,
    summary="Reject a return (admin)",
    description=(
        "`requested | approved → rejected`, with an optional `reason` kept as the return's "
        "`note`: its units may be asked for again. Rejecting it again is 200; a received "
        "return is 409."
    ),
    responses={
        **json_answer(
            200,
            "The return, rejected",
            rejected={**ex.RETURN, "status": "rejected", "note": "bought more than 30 days ago"},
        ),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            404,
            409,
            examples={
                **_NO_RETURN,
                **_ADMINS,
                409: {"received": _moved(ex.RETURN_ID, "received", "rejected", "")},
            },
        ),
    },
)
def reject_return(
    return_id: str,
    viewer: ViewerDep,
    session: SessionDep,
    body: Annotated[
        ReturnRejectIn | None,
        Body(
            openapi_examples={
                "with-reason": {
                    "summary": "Why",
                    "value": {"reason": "bought more than 30 days ago"},
                }
            }
        ),
    ] = None,
) -> ReturnOut:
    note = body.reason if body is not None else None
    return _shown(session, returns.reject_return(session, viewer, return_id, note or None))


@router.post(
    "/{return_id}/receive",
    response_model=ReturnOut,
    summary="Receive a return (admin)",
    description=(
        "`approved → received`: what came back of each product (products not named: "
        "nothing). Units with `restock: true` go back on the shelf, once (the stock ledger "
        "records it); a refund of every received unit at the price the order was placed at "
        "is asked for, within what is left to refund, and the return becomes `refunded` "
        "when it succeeds (at once when nothing was left to refund). Receiving it again is "
        "409; more than the return asked for, or nothing at all, is 422."
    ),
    responses={
        **json_answer(200, "The return, received", received=ex.RECEIVED_RETURN),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            403,
            404,
            409,
            examples={
                **_NO_RETURN,
                **_ADMINS,
                409: {
                    "twice": _moved(
                        ex.RETURN_ID, "received", "received", "it was received already"
                    ),
                    "not-approved": _moved(
                        ex.RETURN_ID, "requested", "received", "approve it first"
                    ),
                },
            },
        ),
    },
)
def receive_return(
    return_id: str,
    body: Annotated[
        ReturnReceiveIn,
        Body(
            openapi_examples={
                "sellable": {"summary": "Back and sellable", "value": ex.RETURN_RECEIVE}
            }
        ),
    ],
    viewer: ViewerDep,
    session: SessionDep,
) -> ReturnOut:
    lines = [returns.ReceivedLine(line.product_id, line.quantity, line.restock)
             for line in body.lines]  # fmt: skip
    return _shown(session, returns.receive_return(session, viewer, return_id, lines))
