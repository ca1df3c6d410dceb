"""Thumbs up or down on one answer, with an optional comment."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictInt, field_validator

from booktutor.server import crud
from booktutor.server.bodies import StoredBody
from booktutor.server.deps import CurrentReader, OwnedThread, SessionDep, TutorDep

router = APIRouter(prefix="/v1", tags=["feedback"])


class FeedbackBody(StoredBody):
    # StrictInt: `true` and `1.0` would otherwise pass as 1, hiding a client bug in the ratings.
    rating: StrictInt = Field(json_schema_extra={"enum": [1, -1]}, description="1 for helpful, -1 for not.")
    comment: Optional[str] = Field(default=None, max_length=2000, description="What was good or wrong.")

    @field_validator("rating")
    @classmethod
    def _thumb(cls, value: int) -> int:
        if value not in (1, -1):
            raise ValueError("rating must be 1 or -1")
        return value


class FeedbackOut(BaseModel):
    id: int
    thread_id: str
    message_id: str
    rating: int


@router.post(
    "/threads/{thread_id}/messages/{message_id}/feedback",
    status_code=201,
    response_model=FeedbackOut,
    responses={404: {"description": "No such thread for this reader, or no such answer in it."}},
)
async def add_feedback(
    thread_id: str,
    message_id: str,
    body: FeedbackBody,
    thread: OwnedThread,
    reader: CurrentReader,
    session: SessionDep,
    tutor: TutorDep,
) -> FeedbackOut:
    """Rate one answer of the reader's own thread. Rating again records a newer rating beside the earlier one."""
    await tutor.answer_message(thread_id, message_id)
    saved = await crud.add_feedback(
        session,
        reader_id=reader.id,
        thread_id=thread_id,
        message_id=message_id,
        rating=body.rating,
        comment=(body.comment or "").strip(),
    )
    return FeedbackOut(id=saved.id, thread_id=thread_id, message_id=message_id, rating=saved.rating)
