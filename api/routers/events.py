"""The event feed: admins and integration keys with ``events:read`` (``api/scopes.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import integration_examples as ix
from api.deps import SessionDep, ViewerDep
from api.schemas.common import json_answer, problem_responses
from api.schemas.events import EventOut, FeedPageOut
from orderflow.errors import Forbidden
from orderflow.events import feed
from orderflow.orders.service import Viewer

router = APIRouter(prefix="/events", tags=["events"])


def _admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise Forbidden("only admins and integration keys with events:read read the feed")


@router.get(
    "",
    response_model=FeedPageOut,
    summary="Read the event feed",
    description=(
        "Business events oldest first. Pass the last page's `next_cursor` as `after` to go "
        "on (it may be stored and reused later; the cursor never skips an event that commits "
        "late). `types` is a comma-separated list; `order.*` is a wildcard. Admins and keys "
        "with `events:read`."
    ),
    responses={
        **json_answer(200, "A page of events", page=ix.FEED_PAGE),
        **problem_responses(401, 403),
    },
)
def list_events(
    viewer: ViewerDep,
    session: SessionDep,
    after: Annotated[str | None, Query(max_length=200, description="next_cursor of a page")] = None,
    types: Annotated[
        str | None,
        Query(max_length=1000, description="comma-separated types; order.* is a wildcard"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=feed.MAX_LIMIT)] = feed.DEFAULT_LIMIT,
) -> FeedPageOut:
    _admin_only(viewer)
    page = feed.read_page(session, after, feed.parse_types(types), limit)
    return FeedPageOut.model_validate(
        {"items": page.items, "next_cursor": page.next_cursor, "has_more": page.has_more}
    )


@router.get(
    "/{event_id}",
    response_model=EventOut,
    summary="Get an event",
    description=(
        "One event by id, as the feed and the webhooks show it: type, subject, per-subject "
        "sequence and the subject as it was. Admins and keys with `events:read`."
    ),
    responses={
        **json_answer(200, "The event", event=ix.EVENT),
        **problem_responses(401, 403, 404),
    },
)
def get_event(event_id: str, viewer: ViewerDep, session: SessionDep) -> EventOut:
    _admin_only(viewer)
    return EventOut.model_validate(feed.get_event(session, event_id))
