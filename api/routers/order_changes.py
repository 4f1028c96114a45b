"""After the sale: changing an order (``PATCH /orders/{id}``) and its credit notes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api import examples as ex
from api.deps import SessionDep, ViewerDep
from api.routers.orders import RenderOrder
from api.schemas.common import BODY_PROBLEMS, json_answer, problem_example, problem_responses
from api.schemas.orders import CreditNoteOut, OrderChangeIn, OrderOut
from orderflow.fulfilment import crediting
from orderflow.fulfilment.changes import OrderChange, change_order
from orderflow.orders.service import LineRequest

router = APIRouter(prefix="/orders", tags=["orders"])

_NO_ORDER = {
    "unknown-order": problem_example(
        404, "not-found", "Not found", f"order {ex.ORDER_ID} does not exist"
    )
}
_OWNER_OR_ADMIN = (
    " A client acts only on its own orders (anyone else's is 404, as if it did not exist); "
    "an admin on every order."
)


@router.patch(
    "/{order_id}",
    response_model=OrderOut,
    summary="Change an order: its address, or fewer items",
    description=(
        "`shipping_address` may change until the order's first shipment. `items` lists the "
        "lines to lower (`quantity` below the current one) or remove (`0`); the other lines "
        "stay. A line may change only while none of its units is in a shipment. In one "
        "transaction: the stock of the difference goes back, a paid order is refunded the "
        "difference at the prices it was placed with (a refund of its own, with a credit "
        "note once it succeeds if the order was invoiced), an `order.updated` event is "
        "written and the customer gets an e-mail. Raising a quantity or adding a product is "
        "409 (place another order); so is any change once the order shipped or ended, or "
        "while its payment is under way. Every line to 0 cancels the order (as `DELETE`). "
        "The body holds absolute values: sending it again changes nothing more." + _OWNER_OR_ADMIN
    ),
    responses={
        **json_answer(200, "The order, changed", fewer_items=ex.CHANGED_ORDER),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            404,
            409,
            examples={
                404: _NO_ORDER,
                409: {
                    "raised": problem_example(
                        409,
                        "order-not-changeable",
                        "This change is not possible",
                        f"the line of product {ex.PRODUCT_ID} has 3; quantities can only go "
                        "down (4 asked): place another order for more",
                    ),
                    "shipped": problem_example(
                        409,
                        "order-not-changeable",
                        "This change is not possible",
                        f"order {ex.ORDER_ID} has a shipment: its address can no longer change",
                    ),
                },
            },
        ),
    },
)
def patch_order(
    order_id: str, body: OrderChangeIn, viewer: ViewerDep, session: SessionDep, render: RenderOrder
) -> OrderOut:
    change = OrderChange(
        shipping_address=(
            body.shipping_address.model_dump(mode="json") if body.shipping_address else None
        ),
        items=(
            None
            if body.items is None
            else [LineRequest(item.product_id, item.quantity) for item in body.items]
        ),
    )
    return render(change_order(session, viewer, order_id, change))


@router.get(
    "/{order_id}/credit-notes",
    response_model=list[CreditNoteOut],
    summary="An order's credit notes",
    description=(
        "The invoice never changes: each refund that succeeded after the order was invoiced "
        "(a partial refund, an order change, a return, a cancellation) gets a credit note "
        "numbered `CN-YYYY-NNNNNN` without gaps, for the refund's amount. Oldest first."
        + _OWNER_OR_ADMIN
    ),
    responses={
        **json_answer(200, "The credit notes", credit_notes=[ex.CREDIT_NOTE]),
        **problem_responses(401, 404, examples={404: _NO_ORDER}),
    },
)
def order_credit_notes(
    order_id: str, viewer: ViewerDep, session: SessionDep
) -> list[CreditNoteOut]:
    return [CreditNoteOut.of(n) for n in crediting.list_credit_notes(session, viewer, order_id)]


@router.get(
    "/{order_id}/credit-notes/{number}.pdf",
    response_class=Response,
    summary="Download a credit note",
    description=(
        "The credit note PDF (`application/pdf`) by its number; 404 for a number the order "
        "does not have." + _OWNER_OR_ADMIN
    ),
    responses={
        200: {
            "description": "The credit note PDF",
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
                    "unknown": problem_example(
                        404,
                        "not-found",
                        "Not found",
                        f"order {ex.ORDER_ID} has no credit note CN-2026-000009",
                    )
                }
            },
        ),
    },
)
def credit_note_pdf(order_id: str, number: str, viewer: ViewerDep, session: SessionDep) -> Response:
    note = crediting.credit_note(session, viewer, order_id, number)
    return Response(
        note.pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{note.number}.pdf"'},
    )
