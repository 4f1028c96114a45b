"""Domain errors. Each carries the HTTP status and problem type it is rendered with, so one
handler in the API turns any of them into an RFC 9457 problem response."""

from __future__ import annotations

from typing import Any, ClassVar


class OrderflowError(Exception):
    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    #: Changes made before the error must still be committed (a revoked session, say).
    keeps_changes: ClassVar[bool] = False

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(OrderflowError):
    pass


class NotAuthenticated(OrderflowError):
    status, slug, title = 401, "not-authenticated", "Not authenticated"


class RefreshTokenReused(NotAuthenticated):
    keeps_changes = True


class Forbidden(OrderflowError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(OrderflowError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(OrderflowError):
    status, slug, title = 409, "conflict", "Conflict"


class TransitionNotAllowed(Conflict):
    slug, title = "transition-not-allowed", "Transition not allowed"


class InsufficientStock(Conflict):
    slug, title = "insufficient-stock", "Insufficient stock"


class RefundExceedsRefundable(Conflict):
    slug, title = "refund-exceeds-refundable", "More than is left to refund"


class PriceChanged(Conflict):
    """``expected_total`` differs from what the cart costs now; ``lines`` says which moved."""

    slug, title = "price-changed", "Prices changed"


class CartCompleted(Conflict):
    """The cart already became an order (``order_id``)."""

    slug, title = "cart-completed", "Cart already checked out"


class CartExpired(Conflict):
    slug, title = "cart-expired", "Cart expired"


class CurrencyMismatch(Conflict):
    """A product priced in another currency than the cart it is put in."""

    slug, title = "currency-mismatch", "Another currency than the cart's"


class IdempotencyKeyInFlight(Conflict):
    slug, title = "idempotency-key-in-use", "Request with this Idempotency-Key is in progress"


class Unprocessable(OrderflowError):
    status, slug, title = 422, "unprocessable", "Unprocessable request"


class IdempotencyKeyReused(Unprocessable):
    slug, title = "idempotency-key-reused", "Idempotency-Key reused with a different request"


class RateLimited(OrderflowError):
    status, slug, title = 429, "rate-limited", "Too many requests"
