"""FastAPI dependencies as `Annotated` aliases: settings, the tutor, runs, the reader, a DB session, a thread."""

from __future__ import annotations

from typing import Annotated, AsyncIterator

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from booktutor.server.auth import Reader
from booktutor.server.errors import ApiError
from booktutor.server.models import Thread
from booktutor.server.observability import reader_id_var
from booktutor.server.runs import RunManager
from booktutor.server.settings import Settings
from booktutor.server.threads import owned_thread
from booktutor.server.tutor import Tutor


# Coroutines, though they only look up app state: FastAPI calls a plain function dependency on its
# thread pool, a thread hop (and a wait for the interpreter lock behind every stream) per request.
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _tutor(request: Request) -> Tutor:
    return request.app.state.tutor


async def _runs(request: Request) -> RunManager:
    return request.app.state.runs


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.tutor.sessions() as session:
        yield session


async def _reader(request: Request, response: Response) -> Reader:
    """The verified reader of this request (a signed-in user or an anonymous visitor)."""
    reader = await request.app.state.auth.authenticate(
        request.headers.get("authorization"), request.headers.get("x-visitor-id")
    )
    if reader.anonymous:
        # The browser keeps this id and sends it back as X-Visitor-Id to find its threads again.
        response.headers["X-Visitor-Id"] = reader.visitor_id
    reader_id_var.set(reader.id)
    return reader


async def _limited_reader(request: Request, reader: Annotated[Reader, Depends(_reader)]) -> Reader:
    """The reader, after their per-reader rate limits are checked."""
    request.app.state.rate_limiter.check_request(reader, request.method, request.url.path)
    return reader


async def _admin(reader: Annotated[Reader, Depends(_limited_reader)]) -> Reader:
    if not reader.admin:
        raise ApiError("forbidden", "This needs an admin token.")
    return reader


async def _owned_thread(
    thread_id: str, reader: Annotated[Reader, Depends(_limited_reader)], session: Annotated[AsyncSession, Depends(_session)]
) -> Thread:
    """The `{thread_id}` of the path, when it is this reader's (`thread_not_found` otherwise)."""
    return await owned_thread(session, thread_id=thread_id, reader_id=reader.id)


SettingsDep = Annotated[Settings, Depends(_settings)]
TutorDep = Annotated[Tutor, Depends(_tutor)]
RunsDep = Annotated[RunManager, Depends(_runs)]
SessionDep = Annotated[AsyncSession, Depends(_session)]
CurrentReader = Annotated[Reader, Depends(_limited_reader)]
AdminReader = Annotated[Reader, Depends(_admin)]
OwnedThread = Annotated[Thread, Depends(_owned_thread)]
