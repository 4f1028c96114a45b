from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class Subject(BaseModel):
    type: str
    id: str


class EventOut(BaseModel):
    id: str
    type: str
    created_at: datetime
    subject: Subject
    sequence: int
    data: dict[str, Any]


class FeedPageOut(BaseModel):
    items: list[EventOut]
    next_cursor: str | None
    has_more: bool
