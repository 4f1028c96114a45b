"""Carts: a customer's own (anyone else gets 404), priced live, checked out by
``POST /orders {cart_id, …}`` (api.routers.orders)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from api import examples as ex
from api.deps import SessionDep, SettingsDep, ViewerDep
from api.schemas.carts import CartCreate, CartOut, ItemQuantity
from api.schemas.common import BODY_PROBLEMS, json_answer, problem_example, problem_responses
from orderflow.carts import service as carts

router = APIRouter(prefix="/carts", tags=["carts"])

_UNKNOWN_CART = problem_example(
    404, "not-found", "Not found", f"cart {ex.CART_ID} does not exist", cart_id=ex.CART_ID
)
_UNKNOWN_PRODUCT = problem_example(
    404,
    "not-found",
    "Not found",
    f"product {ex.PRODUCT_ID} does not exist or is no longer sold",
    product_id=ex.PRODUCT_ID,
)
_COMPLETED = problem_example(
    409,
    "cart-completed",
    "Cart already checked out",
    f"cart {ex.CART_ID} has already become order {ex.ORDER_ID}",
    cart_id=ex.CART_ID,
    order_id=ex.ORDER_ID,
)
_EXPIRED = problem_example(
    409,
    "cart-expired",
    "Cart expired",
    f"cart {ex.CART_ID} expired at 2026-03-21T09:26:54+00:00; start a new cart",
    cart_id=ex.CART_ID,
)
_OTHER_CURRENCY = problem_example(
    409,
    "currency-mismatch",
    "Another currency than the cart's",
    f"product {ex.PRODUCT_ID} is priced in eur; the cart is in usd",
    product_id=ex.PRODUCT_ID,
    currency="usd",
)
_CART_ANSWER = json_answer(200, "The cart, priced now", cart=ex.CART)
_CLOSED: dict[int, dict[str, dict[str, Any]]] = {
    409: {"completed": _COMPLETED, "expired": _EXPIRED}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CartOut,
    summary="Create a cart",
    description=(
        "A new cart of yours, empty or with `items` (one per product, 1 to 1000 of each, at "
        "most 100 products). Its `currency` is the one given, else its products'. It holds "
        "no stock and shows live prices; it expires `ORDERFLOW_CART_TTL_HOURS` (a week by "
        "default) after its last change. Order it with `POST /orders {cart_id, …}`."
    ),
    responses={
        **json_answer(201, "Created; `Location` names the cart", cart=ex.CART),
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            404,
            409,
            examples={
                404: {"unknown-product": _UNKNOWN_PRODUCT},
                409: {"currency": _OTHER_CURRENCY},
            },
        ),
    },
)
def create_cart(
    body: CartCreate,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> CartOut:
    items = [carts.ItemRequest(line.product_id, line.quantity) for line in body.items]
    view = carts.create_cart(session, viewer.user_id, body.currency, items, settings.cart_ttl_hours)
    response.headers["Location"] = f"/api/v1/carts/{view.state.cart.id}"
    return CartOut.of(view)


@router.get(
    "/{cart_id}",
    response_model=CartOut,
    summary="Read a cart",
    description=(
        "Your cart with today's catalogue prices and availability (`in_stock`: still sold "
        "and enough stock for the quantity now; nothing is held). `version` grows with every "
        "change. A cart past `expires_at` reads `expired`; a checked-out one `completed`, "
        "with its `order_id`. Someone else's cart is 404."
    ),
    responses={
        **_CART_ANSWER,
        **problem_responses(401, 404, examples={404: {"cart": _UNKNOWN_CART}}),
    },
)
def get_cart(cart_id: str, viewer: ViewerDep, session: SessionDep) -> CartOut:
    return CartOut.of(carts.get_cart(session, cart_id, viewer.user_id))


@router.delete(
    "/{cart_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a cart",
    description=(
        "Throws the cart away, whatever its status; an order placed from it keeps its "
        "`cart_id`. Afterwards the cart is 404."
    ),
    responses={
        204: {"description": "Deleted"},
        **problem_responses(401, 404, examples={404: {"cart": _UNKNOWN_CART}}),
    },
)
def delete_cart(cart_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    carts.delete_cart(session, cart_id, viewer.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{cart_id}/items/{product_id}",
    response_model=CartOut,
    summary="Put a product in a cart",
    description=(
        "Adds the product or sets its quantity (1 to 1000; 0 removes it) and answers the "
        "cart. 404 naming an unknown or archived product; 409 once the cart is completed or "
        "expired, for a product in another currency than the cart's, or a 101st product."
    ),
    responses={
        **_CART_ANSWER,
        **problem_responses(
            *BODY_PROBLEMS,
            401,
            404,
            409,
            examples={
                404: {"unknown-product": _UNKNOWN_PRODUCT, "cart": _UNKNOWN_CART},
                409: {**_CLOSED[409], "currency": _OTHER_CURRENCY},
            },
        ),
    },
)
def put_item(
    cart_id: str,
    product_id: str,
    body: ItemQuantity,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> CartOut:
    item = carts.ItemRequest(product_id, body.quantity)
    return CartOut.of(
        carts.put_item(session, cart_id, viewer.user_id, item, settings.cart_ttl_hours)
    )


@router.delete(
    "/{cart_id}/items/{product_id}",
    response_model=CartOut,
    summary="Remove a product from a cart",
    description=(
        "Removes the product and answers the cart; a product the cart does not hold changes "
        "nothing (same `version`). 409 once the cart is completed or expired."
    ),
    responses={
        **_CART_ANSWER,
        **problem_responses(401, 404, 409, examples={404: {"cart": _UNKNOWN_CART}, **_CLOSED}),
    },
)
def remove_item(
    cart_id: str, product_id: str, viewer: ViewerDep, session: SessionDep, settings: SettingsDep
) -> CartOut:
    view = carts.remove_item(session, cart_id, viewer.user_id, product_id, settings.cart_ttl_hours)
    return CartOut.of(view)
