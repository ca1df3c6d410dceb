"""Data access for the app's tables. Keyword-only functions over an AsyncSession."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import BindParameter, Select, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from booktutor.server.models import ChapterSection, Feedback, IngestRun, Profile, Thread


async def get_thread(session: AsyncSession, *, thread_id: str) -> Thread | None:
    return await session.get(Thread, thread_id)


async def create_thread(session: AsyncSession, *, thread_id: str, title: str, reader_id: str | None = None) -> Thread:
    thread = Thread(id=thread_id, title=title[:200], reader_id=reader_id)
    session.add(thread)
    await session.commit()
    return thread


def owned_by(reader_id: str | BindParameter | None):
    """The threads of `reader_id` (None: the CLI's own threads, which have no reader; a bound parameter: the
    reader's whose id is bound when the statement runs)."""
    return Thread.reader_id.is_(None) if reader_id is None else Thread.reader_id == reader_id


def _with_profile(touched) -> Select:
    """`touched` (an insert or update of one thread returning its id) with the reader's profile joined."""
    touched = touched.returning(Thread.id).cte("touched")
    return select(touched.c.id, Profile).select_from(touched).outerjoin(Profile, Profile.reader_id == bindparam("reader"))


# Built once, with the values bound at each call: building and compiling the statement every turn cost
# the event loop about as much CPU as the round trip itself. (The values' names are no column's: an update
# reserves those for its SET clause.)
_OPEN_THREAD = {
    "new": _with_profile(
        insert(Thread).values(id=bindparam("thread"), title=bindparam("thread_title"), reader_id=bindparam("reader"))
    ),
    "a reader's": _with_profile(
        update(Thread).where(Thread.id == bindparam("thread"), owned_by(bindparam("reader"))).values(updated_at=func.now())
    ),
    "the CLI's": _with_profile(
        update(Thread).where(Thread.id == bindparam("thread"), owned_by(None)).values(updated_at=func.now())
    ),
}


async def open_thread(
    session: AsyncSession, *, thread_id: str, title: str, reader_id: str | None, new: bool
) -> tuple[bool, Profile | None]:
    """Create the thread (`new`) or mark an existing one of this reader as used now, and read the
    reader's profile, in one statement: (whether the thread is there and theirs, their profile).

    A turn's start waits for this, so it is one round trip, committed as it runs.
    """
    query = _OPEN_THREAD["new" if new else "the CLI's" if reader_id is None else "a reader's"]
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    row = (await session.execute(query, {"thread": thread_id, "thread_title": title[:200], "reader": reader_id})).first()
    return (row is not None, row[1] if row is not None else None)


async def delete_thread(session: AsyncSession, *, thread_id: str) -> None:
    """The thread's row and the feedback given on its answers."""
    await session.execute(delete(Feedback).where(Feedback.thread_id == thread_id))
    await session.execute(delete(Thread).where(Thread.id == thread_id))
    await session.commit()


async def touch_thread(session: AsyncSession, *, thread: Thread) -> None:
    thread.updated_at = func.now()
    await session.commit()


async def list_threads(session: AsyncSession, *, reader_id: str | None, limit: int = 50) -> list[Thread]:
    query = select(Thread).where(owned_by(reader_id))
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


async def get_chapter_sections(
    session: AsyncSession, *, chapter_hash: str, kind: str, target: str
) -> list[ChapterSection]:
    """The stored sections of one chapter for one target (language or profile fingerprint), in order."""
    query = select(ChapterSection).where(
        ChapterSection.chapter_hash == chapter_hash, ChapterSection.kind == kind, ChapterSection.target == target
    )
    return list((await session.scalars(query.order_by(ChapterSection.section_index))).all())


async def find_sections_by_hash(
    session: AsyncSession, *, kind: str, target: str, section_hashes: Collection[str]
) -> dict[str, str]:
    """Section hash -> stored text, from any chapter: what an edited chapter can reuse."""
    if not section_hashes:
        return {}
    query = select(ChapterSection.section_hash, ChapterSection.text).where(
        ChapterSection.kind == kind,
        ChapterSection.target == target,
        ChapterSection.section_hash.in_(list(section_hashes)),
    )
    return {section_hash: text for section_hash, text in (await session.execute(query)).all()}


async def save_chapter_section(
    session: AsyncSession,
    *,
    chapter_hash: str,
    kind: str,
    target: str,
    section_index: int,
    section_hash: str,
    text: str,
    model: str = "",
) -> None:
    """Insert or replace one finished section (two requests for the same chapter may race to write it)."""
    values = {"section_hash": section_hash, "text": text, "model": model}
    statement = (
        insert(ChapterSection)
        .values(chapter_hash=chapter_hash, kind=kind, target=target, section_index=section_index, **values)
        .on_conflict_do_update(
            index_elements=[
                ChapterSection.chapter_hash,
                ChapterSection.kind,
                ChapterSection.target,
                ChapterSection.section_index,
            ],
            set_={**values, "created_at": func.now()},
        )
    )
    await session.execute(statement)
    await session.commit()
