from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, EmailStr, Field

from api import examples as ex
from api.schemas.common import NON_BLANK, RequestBody, with_examples
from orderflow.auth.phones import EXAMPLE as PHONE_EXAMPLE
from orderflow.auth.phones import MAX_INPUT_LENGTH, phone_problem

Password = Annotated[str, Field(min_length=1, max_length=128, pattern=NON_BLANK)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NON_BLANK)]


def _valid_phone(value: str) -> str:
    """Refused here (422 naming ``phone``) when ``phonenumbers`` says it is no number; the
    service stores it normalised to E.164."""
    problem = phone_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Phone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_INPUT_LENGTH,
        description="International form (a `+` and the country code); stored as E.164",
        examples=[PHONE_EXAMPLE],
    ),
    AfterValidator(_valid_phone),
]
SmsOptIn = Annotated[
    bool,
    Field(
        strict=True,
        description="Also text the shipped and delivered notices to `phone` (needs a phone)",
    ),
]


class RegisterRequest(RequestBody):
    model_config = with_examples(
        {"email": "jane@example.com", "password": "paper-kite-2718", "name": "Jane"},
        {
            "email": "jane@example.com",
            "password": "paper-kite-2718",
            "name": "Jane",
            "phone": "+1 415 555 0123",
            "sms_opt_in": True,
        },
    )

    email: EmailStr
    password: Password
    name: Name | None = None
    phone: Phone | None = None
    sms_opt_in: SmsOptIn = False


class ProfileUpdate(RequestBody):
    """Only the fields sent change; ``null`` clears ``name`` or ``phone``."""

    model_config = with_examples(
        {"phone": "+44 20 7946 0958", "sms_opt_in": True}, {"phone": None}, {"name": "Jane D."}
    )

    name: Name | None = None
    phone: Phone | None = None
    #: true or false, never null (the spec says so); left out, it stays as it is.
    sms_opt_in: SmsOptIn = None  # type: ignore[assignment]


class LoginRequest(RequestBody):
    model_config = with_examples({"email": "jane@example.com", "password": "paper-kite-2718"})

    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Password


class RefreshRequest(RequestBody):
    model_config = with_examples({"refresh_token": ex.TOKENS["refresh_token"]})

    refresh_token: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class PasswordChangeRequest(RequestBody):
    model_config = with_examples(
        {"current_password": "paper-kite-2718", "new_password": "lantern-moss-3141"}
    )

    current_password: Password
    new_password: Password


class UserOut(BaseModel):
    model_config = with_examples(ex.USER)

    id: str
    email: str
    name: str | None
    role: Literal["client", "admin"]
    phone: str | None = Field(description="E.164, or null")
    sms_opt_in: bool


class TokenOut(BaseModel):
    model_config = with_examples(ex.TOKENS)

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
