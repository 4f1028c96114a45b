from __future__ import annotations

from fastapi import APIRouter, Response, status

from api import examples as ex
from api.deps import DEFAULT_PAGE_LIMIT, AdminUser, Limit, Offset, SessionDep
from api.schemas.common import (
    BODY_PROBLEMS,
    ListPage,
    json_answer,
    problem_example,
    problem_responses,
)
from api.schemas.products import ProductCreate, ProductOut, ProductPatch
from orderflow.catalogue import service as catalogue
from orderflow.money import Money

router = APIRouter(prefix="/products", tags=["products"])

_NO_PRODUCT = {
    404: {
        "unknown-product": problem_example(
            404, "not-found", "Not found", f"product {ex.PRODUCT_ID} does not exist"
        )
    }
}
_SKU_TAKEN = {
    409: {
        "sku-taken": problem_example(
            409, "conflict", "Conflict", "a product with sku 'PEN-001' already exists"
        )
    }
}
_ADMIN_ONLY = (
    " Admins only (a client gets 403). Prices are integer minor units of `currency` "
    "(`5025` `usd` is $50.25)."
)


@router.get(
    "",
    response_model=ListPage[ProductOut],
    summary="List products",
    description=(
        "The catalogue's active products, oldest first, paged with `limit` (1 to 100, "
        "default 20) and `offset`. No login needed. Archived products are not listed."
    ),
    responses={
        **json_answer(200, "A page of products", page=ex.page(ex.PRODUCT)),
        **problem_responses(),
    },
)
def list_products(
    session: SessionDep, limit: Limit = DEFAULT_PAGE_LIMIT, offset: Offset = 0
) -> ListPage[ProductOut]:
    page = catalogue.list_products(session, limit=limit, offset=offset)
    return ListPage(
        items=[ProductOut.of(p) for p in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get(
    "/{product_id}",
    response_model=ProductOut,
    summary="Get a product",
    description=(
        "One product by id, archived ones included (`active: false`), so an old order's "
        "lines can still be looked up. No login needed."
    ),
    responses={
        **json_answer(200, "The product", product=ex.PRODUCT),
        **problem_responses(404, examples=_NO_PRODUCT),
    },
)
def get_product(product_id: str, session: SessionDep) -> ProductOut:
    return ProductOut.of(catalogue.get_product(session, product_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductOut,
    summary="Create a product",
    description="Adds a product to the catalogue; `sku` must be unique." + _ADMIN_ONLY,
    responses={
        **json_answer(201, "The new product; `Location` names it", product=ex.PRODUCT),
        **problem_responses(*BODY_PROBLEMS, 401, 403, 409, examples=_SKU_TAKEN),
    },
)
def create_product(
    body: ProductCreate, admin: AdminUser, session: SessionDep, response: Response
) -> ProductOut:
    new = catalogue.NewProduct(
        sku=body.sku,
        name=body.name,
        description=body.description,
        price=Money(body.price, body.currency),
        stock=body.stock,
        active=body.active,
    )
    product = catalogue.create_product(session, new)
    response.headers["Location"] = f"/api/v1/products/{product.id}"
    return ProductOut.of(product)


@router.patch(
    "/{product_id}",
    response_model=ProductOut,
    summary="Change a product",
    description=(
        "Changes the fields sent, leaves the others. A new price applies to orders placed "
        "from now on; placed orders keep the price they were placed at. Setting `stock` "
        "replaces the count." + _ADMIN_ONLY
    ),
    responses={
        **json_answer(200, "The product as changed", product={**ex.PRODUCT, "stock": 120}),
        **problem_responses(
            *BODY_PROBLEMS, 401, 403, 404, 409, examples={**_NO_PRODUCT, **_SKU_TAKEN}
        ),
    },
)
def update_product(
    product_id: str, body: ProductPatch, admin: AdminUser, session: SessionDep
) -> ProductOut:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return ProductOut.of(catalogue.update_product(session, product_id, changes))


@router.delete(
    "/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Archive a product",
    description=(
        "Archives the product (`active: false`): it is no longer listed or orderable, and "
        "orders that hold it keep their snapshot of it. Admins only."
    ),
    responses={
        204: {"description": "Archived"},
        **problem_responses(401, 403, 404, examples=_NO_PRODUCT),
    },
)
def archive_product(product_id: str, admin: AdminUser, session: SessionDep) -> Response:
    catalogue.archive_product(session, product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
