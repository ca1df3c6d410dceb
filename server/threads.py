"""Who owns a thread: checked here once, for every route and for the CLI.

Someone else's thread is answered exactly like an unknown one, so thread ids cannot be probed. The
message says only what is wrong; each door adds its own advice (the CLI suggests leaving out --thread).
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from booktutor.server import crud
from booktutor.server.models import Profile, Thread
from booktutor.tools.errors import BooktutorError

# The ids the chat routes accept; anything else cannot name a thread, so it is simply not found.
THREAD_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class ThreadNotFoundError(BooktutorError):
    code = "thread_not_found"


async def owned_thread(session: AsyncSession, *, thread_id: str, reader_id: str | None) -> Thread:
    """The reader's thread (`reader_id` None: the CLI's own threads), or `thread_not_found`."""
    if THREAD_ID.fullmatch(thread_id):
        thread = await crud.get_thread(session, thread_id=thread_id)
        if thread is not None and thread.reader_id == reader_id:
            return thread
    raise ThreadNotFoundError(f"No thread '{thread_id[:64]}'.")


async def open_owned_thread(
    session: AsyncSession, *, thread_id: str | None, title: str, reader_id: str | None
) -> tuple[str, Profile | None]:
    """A new thread (`thread_id` None), or the reader's thread marked as used now, with the reader's
    stored profile, read in the same round trip: (thread id, profile); `thread_not_found` otherwise."""
    if thread_id is None:
        thread_id = str(uuid.uuid4())
        _, profile = await crud.open_thread(session, thread_id=thread_id, title=title, reader_id=reader_id, new=True)
        return thread_id, profile
    if THREAD_ID.fullmatch(thread_id):
        found, profile = await crud.open_thread(session, thread_id=thread_id, title=title, reader_id=reader_id, new=False)
        if found:
            return thread_id, profile
    raise ThreadNotFoundError(f"No thread '{thread_id[:64]}'.")
