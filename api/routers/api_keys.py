"""Integration keys: only a logged-in admin manages them (no key can, ``api/scopes.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api import examples as ex
from api import integration_examples as ix
from api.deps import DEFAULT_PAGE_LIMIT, AdminUser, Limit, Offset, SessionDep
from api.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from api.schemas.common import BODY_PROBLEMS, ListPage, json_answer, problem_responses
from orderflow.integrations import keys

router = APIRouter(prefix="/api-keys", tags=["integration keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    summary="Create an integration key",
    description=(
        "A new key with `scopes`; its `secret` (`ofk_…`) is shown only in this answer and "
        "stored only as a SHA-256. Only a logged-in admin may create keys (no key can)."
    ),
    responses={
        **json_answer(201, "The key, with its secret", key=ix.KEY_CREATED),
        **problem_responses(*BODY_PROBLEMS, 401, 403),
    },
)
def create_key(body: ApiKeyCreate, admin: AdminUser, session: SessionDep) -> ApiKeyCreated:
    created = keys.create_key(session, body.name, body.scopes, admin.id)
    return ApiKeyCreated(**ApiKeyOut.of(created.key).model_dump(), secret=created.secret)


@router.get(
    "",
    response_model=ListPage[ApiKeyOut],
    summary="List integration keys",
    description=(
        "Every key, newest first, with `last_used_at` (written at most once a minute) and "
        "`revoked_at`; never a secret. Logged-in admins only."
    ),
    responses={
        **json_answer(200, "A page of keys", page=ex.page(ix.KEY)),
        **problem_responses(401, 403),
    },
)
def list_keys(
    admin: AdminUser, session: SessionDep, limit: Limit = DEFAULT_PAGE_LIMIT, offset: Offset = 0
) -> ListPage[ApiKeyOut]:
    page = keys.list_keys(session, limit, offset)
    items = [ApiKeyOut.of(key) for key in page.items]
    return ListPage(items=items, total=page.total, limit=limit, offset=offset)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an integration key",
    description=(
        "The key is refused (401) from the next request on. Revoking it again changes "
        "nothing. Logged-in admins only."
    ),
    responses={204: {"description": "Revoked"}, **problem_responses(401, 403, 404)},
)
def revoke_key(key_id: str, admin: AdminUser, session: SessionDep) -> Response:
    keys.revoke_key(session, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
