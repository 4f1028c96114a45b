from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from api.schemas.common import NON_BLANK, RequestBody, with_examples
from orderflow.integrations.keys import Scope
from orderflow.integrations.models import ApiKey


class ApiKeyCreate(RequestBody):
    model_config = with_examples({"name": "erp", "scopes": ["orders:read", "events:read"]})

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NON_BLANK)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(Scope))]


class ApiKeyOut(BaseModel):
    id: str
    name: str
    scopes: list[Scope]
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            scopes=[Scope(scope) for scope in key.scopes],
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    #: Shown only in this answer; only its hash is stored.
    secret: str
