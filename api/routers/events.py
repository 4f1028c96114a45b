"""The event feed: admins and integration keys with ``events:read`` (``api/scopes.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, ViewerDep
from api.schemas.common import problem_responses
from api.schemas.events import EventOut, FeedPageOut
from orderflow.errors import Forbidden
from orderflow.events import feed
from orderflow.orders.service import Viewer

router = APIRouter(prefix="/events", tags=["events"])


def _admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise Forbidden("only admins and integration keys with events:read read the feed")


@router.get("", response_model=FeedPageOut, responses=problem_responses(401, 403))
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


@router.get("/{event_id}", response_model=EventOut, responses=problem_responses(401, 403, 404))
def get_event(event_id: str, viewer: ViewerDep, session: SessionDep) -> EventOut:
    _admin_only(viewer)
    return EventOut.model_validate(feed.get_event(session, event_id))
