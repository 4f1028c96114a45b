"""Carts: a customer's own (anyone else gets 404), priced live, checked out by
``POST /orders {cart_id, …}`` (api.routers.orders)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import SessionDep, SettingsDep, ViewerDep
from api.schemas.carts import CartCreate, CartOut, ItemQuantity
from api.schemas.common import BODY_PROBLEMS, problem_responses
from orderflow.carts import service as carts

router = APIRouter(prefix="/carts", tags=["carts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CartOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 404, 409),
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


@router.get("/{cart_id}", response_model=CartOut, responses=problem_responses(401, 404))
def get_cart(cart_id: str, viewer: ViewerDep, session: SessionDep) -> CartOut:
    return CartOut.of(carts.get_cart(session, cart_id, viewer.user_id))


@router.delete(
    "/{cart_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 404)
)
def delete_cart(cart_id: str, viewer: ViewerDep, session: SessionDep) -> Response:
    carts.delete_cart(session, cart_id, viewer.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{cart_id}/items/{product_id}",
    response_model=CartOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 404, 409),
)
def put_item(
    cart_id: str,
    product_id: str,
    body: ItemQuantity,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> CartOut:
    """Add the product or set its quantity (0 removes it); 409 once the cart is completed or
    expired."""
    item = carts.ItemRequest(product_id, body.quantity)
    return CartOut.of(
        carts.put_item(session, cart_id, viewer.user_id, item, settings.cart_ttl_hours)
    )


@router.delete(
    "/{cart_id}/items/{product_id}",
    response_model=CartOut,
    responses=problem_responses(401, 404, 409),
)
def remove_item(
    cart_id: str, product_id: str, viewer: ViewerDep, session: SessionDep, settings: SettingsDep
) -> CartOut:
    """Remove the product (a product the cart does not hold: nothing changes)."""
    view = carts.remove_item(session, cart_id, viewer.user_id, product_id, settings.cart_ttl_hours)
    return CartOut.of(view)
