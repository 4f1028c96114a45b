from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import DEFAULT_PAGE_LIMIT, AdminUser, Limit, Offset, SessionDep
from api.schemas.common import BODY_PROBLEMS, ListPage, problem_responses
from api.schemas.products import ProductCreate, ProductOut, ProductPatch
from orderflow.catalogue import service as catalogue
from orderflow.money import Money

router = APIRouter(prefix="/products", tags=["products"])


@router.get("", response_model=ListPage[ProductOut], responses=problem_responses())
def list_products(
    session: SessionDep, limit: Limit = DEFAULT_PAGE_LIMIT, offset: Offset = 0
) -> ListPage[ProductOut]:
    page = catalogue.list_products(session, limit=limit, offset=offset)
    return ListPage(
        items=[ProductOut.of(p) for p in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get("/{product_id}", response_model=ProductOut, responses=problem_responses(404))
def get_product(product_id: str, session: SessionDep) -> ProductOut:
    return ProductOut.of(catalogue.get_product(session, product_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProductOut,
    responses=problem_responses(*BODY_PROBLEMS, 401, 403, 409),
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
    responses=problem_responses(*BODY_PROBLEMS, 401, 403, 404, 409),
)
def update_product(
    product_id: str, body: ProductPatch, admin: AdminUser, session: SessionDep
) -> ProductOut:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return ProductOut.of(catalogue.update_product(session, product_id, changes))


@router.delete(
    "/{product_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
def archive_product(product_id: str, admin: AdminUser, session: SessionDep) -> Response:
    catalogue.archive_product(session, product_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
