from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field

from api import examples as ex
from api.schemas.common import NON_BLANK, RequestBody, with_examples

Password = Annotated[str, Field(min_length=1, max_length=128, pattern=NON_BLANK)]


class RegisterRequest(RequestBody):
    model_config = with_examples(
        {"email": "jane@example.com", "password": "paper-kite-2718", "name": "Jane"}
    )

    email: EmailStr
    password: Password
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NON_BLANK)] | None = None


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


class TokenOut(BaseModel):
    model_config = with_examples(ex.TOKENS)

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
