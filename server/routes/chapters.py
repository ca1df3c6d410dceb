"""Whole chapters for each reader: translated (e.g. into Urdu) or rewritten for their profile, streamed.

Both streams are Server-Sent Events: `metadata`, one `section` per section in order, then `done` or
`error`. Finished sections are kept in Postgres per (chapter content hash, language or profile), so a
repeat request streams from the cache without a model call and a stream that broke off continues where
it stopped. The work itself is in `server/chapters.py`; this module is its HTTP face.
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, AsyncIterator, Literal, Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette import EventSourceResponse

from booktutor.server.auth import Reader
from booktutor.server.bodies import StoredBody
from booktutor.server.chapters import (
    cached_sections,
    chapter_events,
    chapter_metadata,
    load_chapter,
    personalized_sections,
    profile_target,
    require_profile,
    stored_profile,
    translated_sections,
)
from booktutor.server.deps import CurrentReader, SessionDep, SettingsDep
from booktutor.server.errors import ApiError
from booktutor.server.settings import Settings
from booktutor.server.sse import STREAM_RESPONSE, sse_event, sse_response
from booktutor.tools.chapters import Chapter, SectionEvent
from booktutor.tools.translation import LANGUAGES, language_info

router = APIRouter(prefix="/v1/chapters", tags=["chapters"])


class ChapterSource(StoredBody):
    """A chapter: a doc path of the ingested book, or Markdown sent with the request (exactly one)."""

    # Front ends send extra fields (a profile, UI state); nothing in them is used, so they are ignored.
    model_config = ConfigDict(extra="ignore")

    path: Optional[str] = Field(
        default=None, min_length=1, max_length=1024, description="Doc path (`01-ros2/02-nodes-topics.md`) or page URL."
    )
    markdown: Optional[str] = Field(default=None, description="The chapter's Markdown/MDX source.")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ChapterSource":
        if (self.path is None) == (self.markdown is None):
            raise ValueError("give either `path` (a page of the book) or `markdown`, not both")
        return self


class TranslateChapterBody(ChapterSource):
    language: str = Field(
        max_length=16, description=f"Target language: one of {', '.join(sorted(LANGUAGES))} (`ur-PK` works too)."
    )


class PersonalizeChapterBody(ChapterSource):
    pass


class ChapterProgress(BaseModel):
    ready: bool = Field(description="Every section is cached: the whole chapter streams at once.")
    sections: int
    cached: int


class TranslatedProgress(ChapterProgress):
    language: str
    direction: Literal["ltr", "rtl"]


class PersonalizedProgress(ChapterProgress):
    profile: bool = Field(description="False when the reader has no stored profile to personalize for.")


class ChapterStatus(BaseModel):
    path: str
    content_hash: str
    sections: int
    translated: Optional[TranslatedProgress] = None
    personalized: Optional[PersonalizedProgress] = None


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Empty chapter (`chapter_empty`) or an unsupported language (`unsupported_language`)."},
    404: {"description": "No such page in the book index (`chapter_not_found`)."},
    409: {"description": "Personalization needs a stored profile (`profile_required`)."},
    413: {"description": "The chapter is longer than `BOOKTUTOR_MAX_CHAPTER_CHARS` (`chapter_too_large`)."},
    422: {"description": "Invalid body, e.g. both or neither of `path` and `markdown` (`invalid_request`)."},
    503: {"description": "No language model is configured (`model_required`)."},
}


async def _chapter(request: Request, source: ChapterSource, settings: Settings) -> tuple[Chapter, str | None]:
    return await load_chapter(request.app.state.index, settings, path=source.path, markdown=source.markdown)


def _stream(
    sections: AsyncGenerator[SectionEvent, None], metadata: dict[str, Any], reader: Reader, settings: Settings
) -> EventSourceResponse:
    """The chapter's events as named SSE events with sequential ids."""

    async def events() -> AsyncIterator[bytes]:
        sequence = 0
        async for name, data in chapter_events(sections, metadata):
            yield sse_event(id=str(sequence), event=name, data=data)
            sequence += 1

    headers = {"Content-Language": metadata["language"]}
    return sse_response(events(), reader=reader, heartbeat=settings.heartbeat_seconds, headers=headers)


@router.post("/translate", response_class=EventSourceResponse, responses={**STREAM_RESPONSE, **ERRORS})
async def translate_chapter_route(
    body: TranslateChapterBody, request: Request, reader: CurrentReader, settings: SettingsDep
) -> EventSourceResponse:
    """Translate a chapter section by section; code, inline code, URLs, math, frontmatter and tags stay
    byte-identical. Streams `metadata`, `section`… (in order), then `done` or `error`."""
    code, _, direction = language_info(body.language)
    chapter, title = await _chapter(request, body, settings)
    sections = await translated_sections(
        chapter,
        code,
        sessions=request.app.state.tutor.sessions,
        context=settings.context(),
        concurrency=settings.chapter_concurrency,
    )
    metadata = chapter_metadata(chapter, path=body.path, title=title, language=code, direction=direction, mode="translate")
    return _stream(sections, metadata, reader, settings)


@router.post("/personalize", response_class=EventSourceResponse, responses={**STREAM_RESPONSE, **ERRORS})
async def personalize_chapter_route(
    body: PersonalizeChapterBody, request: Request, reader: CurrentReader, session: SessionDep, settings: SettingsDep
) -> EventSourceResponse:
    """Rewrite a chapter for the reader's stored profile (never one sent with the request), keeping its
    headings, code, links and formulas. Streams like `/v1/chapters/translate`."""
    chapter, title = await _chapter(request, body, settings)
    profile = await stored_profile(session, reader_id=reader.id)
    # The database is not needed while the model works; free the connection for other readers.
    await session.close()
    sections = await personalized_sections(
        chapter,
        require_profile(profile),
        sessions=request.app.state.tutor.sessions,
        context=settings.context(),
        concurrency=settings.chapter_concurrency,
    )
    # The rewrite keeps the chapter's own language (the book's, English).
    metadata = chapter_metadata(chapter, path=body.path, title=title, language="en", direction="ltr", mode="personalize")
    return _stream(sections, metadata, reader, settings)


@router.get("/status", response_model=ChapterStatus, responses={k: ERRORS[k] for k in (400, 404, 422)})
async def chapter_status(
    request: Request,
    reader: CurrentReader,
    session: SessionDep,
    settings: SettingsDep,
    path: str = Query(min_length=1, max_length=1024, description="Doc path or page URL of the chapter."),
    language: Optional[str] = Query(default=None, max_length=16, description="Report on this translation."),
    personalized: bool = Query(default=False, description="Report on the reader's personalized version."),
) -> ChapterStatus:
    """How much of a chapter's translation and/or personalization is cached; `ready` when all of it is."""
    if language is None and not personalized:
        raise ApiError("invalid_request", "Ask about a translation (`language`), `personalized=true`, or both.")
    language_code = language_info(language) if language is not None else None
    chapter, _ = await _chapter(request, ChapterSource(path=path), settings)
    status = ChapterStatus(path=path, content_hash=chapter.hash, sections=len(chapter.sections))
    total = len(chapter.sections)
    sessions = request.app.state.tutor.sessions

    if language_code is not None:
        code, _, direction = language_code
        cached = total if code == "en" else await cached_sections(sessions, chapter, kind="translate", target=code)
        status.translated = TranslatedProgress(
            ready=cached == total, sections=total, cached=cached, language=code, direction=direction
        )

    if personalized:
        profile = await stored_profile(session, reader_id=reader.id)
        cached = 0
        if profile is not None:
            cached = await cached_sections(sessions, chapter, kind="personalize", target=profile_target(profile))
        status.personalized = PersonalizedProgress(
            ready=profile is not None and cached == total, sections=total, cached=cached, profile=profile is not None
        )
    return status
