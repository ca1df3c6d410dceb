"""Data access for the app's tables. Keyword-only functions over an AsyncSession."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Feedback, IngestRun, Profile, Thread


async def get_thread(session: AsyncSession, *, thread_id: str) -> Thread | None:
    return await session.get(Thread, thread_id)


async def create_thread(session: AsyncSession, *, thread_id: str, title: str, reader_id: str | None = None) -> Thread:
    thread = Thread(id=thread_id, title=title[:200], reader_id=reader_id)
    session.add(thread)
    await session.commit()
    return thread


async def delete_thread(session: AsyncSession, *, thread_id: str) -> None:
    """The thread's row and the feedback given on its answers."""
    await session.execute(delete(Feedback).where(Feedback.thread_id == thread_id))
    await session.execute(delete(Thread).where(Thread.id == thread_id))
    await session.commit()


async def touch_thread(session: AsyncSession, *, thread: Thread) -> None:
    thread.updated_at = func.now()
    await session.commit()


async def list_threads(session: AsyncSession, *, reader_id: str | None, limit: int = 50) -> list[Thread]:
    query = select(Thread).where(Thread.reader_id.is_(None) if reader_id is None else Thread.reader_id == reader_id)
    return list((await session.scalars(query.order_by(Thread.updated_at.desc()).limit(limit))).all())


async def record_ingest(session: AsyncSession, *, collection: str, report: dict) -> IngestRun:
    run = IngestRun(
        root=report["root"],
        collection=collection,
        files=report["files"],
        added=report["added"],
        updated=report["updated"],
        unchanged=report["unchanged"],
        removed=report["removed"],
        failed=len(report["failed"]),
        report=report,
    )
    session.add(run)
    await session.commit()
    return run


async def get_profile(session: AsyncSession, *, reader_id: str) -> Profile | None:
    return await session.get(Profile, reader_id)


async def add_feedback(
    session: AsyncSession, *, reader_id: str, thread_id: str, message_id: str, rating: int, comment: str = ""
) -> Feedback:
    feedback = Feedback(reader_id=reader_id, thread_id=thread_id, message_id=message_id, rating=rating, comment=comment)
    session.add(feedback)
    await session.commit()
    return feedback


async def upsert_profile(session: AsyncSession, *, reader_id: str, fields: dict) -> Profile:
    """Insert or replace a reader's profile in one statement (no read first), returning the stored row."""
    statement = (
        insert(Profile)
        .values(reader_id=reader_id, **fields)
        .on_conflict_do_update(index_elements=[Profile.reader_id], set_={**fields, "updated_at": func.now()})
        .returning(Profile)
    )
    # populate_existing: a Profile already in this session must show the row as stored now.
    profile = (await session.scalars(statement, execution_options={"populate_existing": True})).one()
    await session.commit()
    return profile
