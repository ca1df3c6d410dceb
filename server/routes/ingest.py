"""Admin: bring the book index in line with a docs folder on the server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ConfigDict, Field

from booktutor.server import crud
from booktutor.server.bodies import StoredBody
from booktutor.server.deps import AdminReader, SessionDep, SettingsDep
from booktutor.server.errors import ApiError
from booktutor.tools.ingest import ingest_book

router = APIRouter(prefix="/v1", tags=["admin"])


class IngestBody(StoredBody):
    # A misspelt `rebuild` would otherwise run a different ingest than the admin asked for.
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096, description="The book's docs folder, as a path on the server.")
    rebuild: bool = Field(default=False, description="Re-embed every file, not only changed ones.")


def _ingest_lock(request: Request) -> asyncio.Lock:
    # One lock per app (made lazily, so it belongs to the app's event loop): two ingests writing the
    # same index at once would race on which chunks each one removes.
    lock = getattr(request.app.state, "ingest_lock", None)
    if lock is None:
        lock = request.app.state.ingest_lock = asyncio.Lock()
    return lock


@router.post(
    "/ingest",
    responses={
        400: {"description": "The folder is missing, not a folder or has no Markdown (`docs_not_found`, …)."},
        403: {"description": "Not an admin (`forbidden`)."},
        409: {"description": "Another ingest is running (`ingest_running`)."},
    },
)
async def ingest(
    body: IngestBody, request: Request, reader: AdminReader, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Ingest a Docusaurus docs folder into the live index: changed files are re-chunked, removed ones dropped.

    Returns the ingest report (files, added, updated, unchanged, removed, chunks_written, failed, seconds).
    """
    lock = _ingest_lock(request)
    if lock.locked():
        raise ApiError("ingest_running", "Another ingest is running; try again when it has finished.")
    async with lock:
        report = await asyncio.to_thread(
            ingest_book,
            Path(body.path).expanduser(),
            request.app.state.index,
            base_url=settings.book_url,
            rebuild=body.rebuild,
        )
    result = report.as_dict()
    await crud.record_ingest(session, collection=settings.collection, report=result)
    return result
