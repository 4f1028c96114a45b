from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictBool

from api import examples as ex
from api.schemas.common import NON_BLANK, Amount, Currency, RequestBody, WholeNumber, with_examples
from orderflow.models import Product

Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NON_BLANK)]
Description = Annotated[str, Field(max_length=5000)]
Stock = Annotated[int, Field(ge=0, le=1_000_000_000, strict=True), WholeNumber]


class ProductCreate(RequestBody):
    model_config = with_examples({k: v for k, v in ex.PRODUCT.items() if k != "id"})

    sku: Sku
    name: Name
    description: Description = ""
    price: Amount
    currency: Currency = "usd"
    stock: Stock = 0
    active: StrictBool = True


class ProductPatch(RequestBody):
    model_config = with_examples({"price": 4500, "stock": 120})

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    price: Amount | None = None
    currency: Currency | None = None
    stock: Stock | None = None
    active: StrictBool | None = None


class ProductOut(BaseModel):
    model_config = with_examples(ex.PRODUCT)

    id: str
    sku: str
    name: str
    description: str
    price: int
    currency: str
    stock: int
    active: bool

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        return cls(
            id=product.id,
            sku=product.sku,
            name=product.name,
            description=product.description,
            price=product.price_amount,
            currency=product.currency,
            stock=product.stock,
            active=product.active,
        )
