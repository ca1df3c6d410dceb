"""Data access for the app's tables. Keyword-only functions over an AsyncSession."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import IngestRun, Thread


async def get_thread(session: AsyncSession, *, thread_id: str) -> Thread | None:
    return await session.get(Thread, thread_id)


async def create_thread(session: AsyncSession, *, thread_id: str, title: str, reader_id: str | None = None) -> Thread:
    thread = Thread(id=thread_id, title=title[:200], reader_id=reader_id)
    session.add(thread)
    await session.commit()
    return thread


async def delete_thread(session: AsyncSession, *, thread_id: str) -> None:
    thread = await session.get(Thread, thread_id)
    if thread is not None:
        await session.delete(thread)
        await session.commit()


async def touch_thread(session: AsyncSession, *, thread: Thread) -> None:
    from sqlalchemy import func

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
