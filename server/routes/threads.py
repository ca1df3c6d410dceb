"""A reader's threads: list them, read one back from its checkpoints, delete one."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from fastapi import APIRouter, Query, Response
from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, Field

from booktutor.server import crud
from booktutor.server.deps import CurrentReader, OwnedThread, RunsDep, SessionDep, TutorDep
from booktutor.tools.errors import InvalidInputError
from booktutor.tools.translation import language_info

router = APIRouter(prefix="/v1", tags=["threads"])


class ThreadSummary(BaseModel):
    thread_id: str
    title: str
    created_at: datetime
    updated_at: datetime


class ThreadList(BaseModel):
    threads: list[ThreadSummary]


class Message(BaseModel):
    """One message of a thread as the reader saw it."""

    id: str
    role: Literal["user", "assistant"]
    content: str
    citations: list[dict[str, Any]] = Field(default_factory=list, description="Passages the answer cites ([n]).")
    language: str = Field(description="For answers, the language they were written in; for questions, the one asked for.")
    direction: Literal["ltr", "rtl"]
    selected_text: Optional[str] = Field(default=None, description="The passage the reader had selected, if any.")
    page: Optional[str] = Field(default=None, description="The page the reader was on, if sent.")
    model: Optional[str] = Field(default=None, description="The model that wrote an answer.")


class ThreadDetail(BaseModel):
    thread_id: str
    title: str
    messages: list[Message]


NOT_FOUND = {404: {"description": "No such thread for this reader (`thread_not_found`)."}}


def _language(code: Optional[str]) -> tuple[str, str]:
    if not code:
        return "en", "ltr"
    try:
        normalised, _, direction = language_info(code)
    except InvalidInputError:
        # Stored turns were validated when they ran; an odd old value must not break reading the thread.
        return "en", "ltr"
    return normalised, direction


def public_message(message: BaseMessage) -> Message:
    extra = message.additional_kwargs or {}
    if isinstance(message, HumanMessage):
        turn = extra.get("turn") or {}
        language, direction = _language(turn.get("language"))
        return Message(
            id=message.id or "",
            role="user",
            content=message.text,
            language=language,
            direction=direction,
            selected_text=turn.get("selected_text"),
            page=turn.get("page"),
        )
    return Message(
        id=message.id or "",
        role="assistant",
        content=message.text,
        citations=extra.get("citations") or [],
        language=extra.get("language") or "en",
        direction=extra.get("direction") or "ltr",
        model=extra.get("model"),
    )


@router.get("/threads", response_model=ThreadList)
async def list_threads(
    reader: CurrentReader,
    session: SessionDep,
    limit: int = Query(default=50, ge=1, le=100, description="How many threads to return."),
) -> ThreadList:
    """The reader's threads, most recently active first."""
    threads = await crud.list_threads(session, reader_id=reader.id, limit=limit)
    return ThreadList(
        threads=[
            ThreadSummary(thread_id=t.id, title=t.title, created_at=t.created_at, updated_at=t.updated_at)
            for t in threads
        ]
    )


@router.get("/threads/{thread_id}", response_model=ThreadDetail, responses=NOT_FOUND)
async def read_thread(thread_id: str, thread: OwnedThread, session: SessionDep, tutor: TutorDep) -> ThreadDetail:
    """One thread with its messages, answers with their citations and language."""
    # The row is all we need from Postgres; give the connection back before reading checkpoints.
    title = thread.title
    await session.close()
    messages = [public_message(m) for m in await tutor.messages(thread_id)]
    return ThreadDetail(thread_id=thread_id, title=title, messages=messages)


@router.delete(
    "/threads/{thread_id}",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, 409: {"description": "The thread is still answering (`thread_busy`)."}},
)
async def delete_thread(thread_id: str, thread: OwnedThread, tutor: TutorDep, runs: RunsDep) -> Response:
    """Delete a thread and everything checkpointed for it. A thread that is still answering is refused."""
    # Deleting under a running turn (on any process) would leave checkpoints behind with no thread row.
    await runs.check_thread_free(thread_id)
    await tutor.delete_thread(thread_id)
    return Response(status_code=204)
