from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field

from api.schemas.common import NON_BLANK, RequestBody

Password = Annotated[str, Field(min_length=1, max_length=128, pattern=NON_BLANK)]


class RegisterRequest(RequestBody):
    email: EmailStr
    password: Password
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NON_BLANK)] | None = None


class LoginRequest(RequestBody):
    email: Annotated[str, Field(min_length=3, max_length=320)]
    password: Password


class RefreshRequest(RequestBody):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class PasswordChangeRequest(RequestBody):
    current_password: Password
    new_password: Password


class UserOut(BaseModel):
    id: str
    email: str
    name: str | None
    role: Literal["client", "admin"]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
