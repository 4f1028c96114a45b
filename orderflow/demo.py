"""Demo catalogue for ``orderflow seed-demo``: a few products, created once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from orderflow.catalogue.service import NewProduct, create_product
from orderflow.models import Product
from orderflow.money import Money

DEMO_PRODUCTS = (
    NewProduct("MUG-001", "Enamel mug", Money(1250, "usd"), 100, "Camp mug, 350 ml."),
    NewProduct("TEE-001", "Organic tee", Money(2500, "usd"), 250, "Heavy cotton, unisex."),
    NewProduct("BAG-001", "Canvas tote", Money(1800, "usd"), 80, "Holds a week of groceries."),
    NewProduct("PEN-001", "Fountain pen", Money(5025, "usd"), 40, "Steel nib, refillable."),
    NewProduct("CAP-001", "Wool cap", Money(3000, "usd"), 10, "Merino, one size."),
)


def seed_demo_products(session: Session) -> int:
    """Create the demo products whose sku is not taken yet; return how many were created."""
    existing = set(session.scalars(select(Product.sku)))
    created = 0
    for product in DEMO_PRODUCTS:
        if product.sku not in existing:
            create_product(session, product)
            created += 1
    return created
