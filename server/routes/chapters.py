"""Whole chapters for each reader: translated (e.g. into Urdu) or rewritten for their profile, streamed.

Both streams are Server-Sent Events: `metadata`, one `section` per section in order, then `done` or
`error`. Finished sections are kept in Postgres per (chapter content hash, language or profile), so a
repeat request streams from the cache without a model call and a stream that broke off continues where
it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncGenerator, AsyncIterator, Literal, Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

from booktutor.agents.models import model_name, personalizer, translator
from booktutor.agents.prompts import PROFILE_FIELDS
from booktutor.server import crud
from booktutor.server.auth import Reader
from booktutor.server.chapter_cache import PostgresSectionCache
from booktutor.server.deps import CurrentReader, SessionDep, SettingsDep
from booktutor.server.errors import ApiError
from booktutor.server.models import Profile
from booktutor.server.routes.chat import STREAM_RESPONSE
from booktutor.server.settings import Settings
from booktutor.tools.chapters import (
    MODEL_REQUIRED_PERSONALIZE,
    MODEL_REQUIRED_TRANSLATE,
    Chapter,
    MemoryCache,
    SectionCache,
    SectionEvent,
    SectionFailed,
    personalize_chapter,
    prepare_chapter,
    profile_fingerprint,
    translate_chapter,
)
from booktutor.tools.errors import BooktutorError, InvalidInputError, ModelRequiredError
from booktutor.tools.translation import LANGUAGES, language_info

log = logging.getLogger("booktutor.chapters")
router = APIRouter(prefix="/v1/chapters", tags=["chapters"])

# The stored profile fields a personalization depends on; its cache key is their fingerprint.
STORED_PROFILE_FIELDS = ("software_background", "hardware_background", "experience_level", "goals", "preferred_language")


class ChapterSource(BaseModel):
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


# -- finding the chapter ---------------------------------------------------------------------------------


async def _indexed_chapter(request: Request, path: str) -> tuple[str, str | None]:
    """(Markdown, title) of a page of the ingested book."""
    # Qdrant's local client is synchronous; keep it off the event loop.
    passages = await asyncio.to_thread(request.app.state.index.page_passages, path)
    if not passages:
        raise ApiError(404, "chapter_not_found", f"No page '{path}' in the book index. Use a doc path or page URL.")
    # Chunks are consecutive slices of the page body, trimmed: a blank line between them rebuilds it.
    return "\n\n".join(p["text"] for p in passages) + "\n", passages[0]["title"]


async def _chapter(request: Request, source: ChapterSource, settings: Settings) -> tuple[Chapter, str | None]:
    if source.path is not None:
        markdown, title = await _indexed_chapter(request, source.path)
    else:
        markdown, title = source.markdown or "", None
    if not markdown.strip():
        raise ApiError(400, "chapter_empty", "The chapter is empty: there is nothing to translate or personalize.")
    if len(markdown) > settings.max_chapter_chars:
        raise ApiError(
            413,
            "chapter_too_large",
            f"The chapter is {len(markdown)} characters; the limit is {settings.max_chapter_chars} "
            "(BOOKTUTOR_MAX_CHAPTER_CHARS). Send it in parts.",
        )
    return prepare_chapter(markdown), title


def _language(code: str) -> tuple[str, str, str]:
    try:
        return language_info(code)
    except InvalidInputError as error:
        raise ApiError(400, error.code, error.message) from None


async def _stored_profile(session, reader: Reader) -> Profile | None:
    """The reader's stored profile when it says anything a personalization can use."""
    stored = await crud.get_profile(session, reader_id=reader.id)
    if stored is None or not any(getattr(stored, name) for name in PROFILE_FIELDS):
        return None
    return stored


def _profile_fields(profile: Profile) -> dict[str, str]:
    return {name: getattr(profile, name) for name in STORED_PROFILE_FIELDS}


# -- the stream ------------------------------------------------------------------------------------------


def _stream(
    sections: AsyncGenerator[SectionEvent, None], metadata: dict[str, Any], reader: Reader, settings: Settings
) -> EventSourceResponse:
    """metadata, section…, done | error as named SSE events with sequential ids."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        sequence = 0

        def event(name: str, **data: Any) -> ServerSentEvent:
            nonlocal sequence
            sequence += 1
            return ServerSentEvent(
                data=json.dumps({"type": name, **data}, ensure_ascii=False), event=name, id=str(sequence - 1)
            )

        yield event("metadata", **metadata)
        delivered = cached = flagged = 0
        try:
            # aclosing: a reader who goes away stops the sections still being written, at once.
            async with contextlib.aclosing(sections) as stream:
                async for section in stream:
                    delivered += 1
                    cached += section.cached
                    flagged += section.flagged
                    yield event("section", **section.as_dict())
        except SectionFailed as error:
            yield event("error", **error.as_dict())
            return
        except BooktutorError as error:
            yield event("error", **error.as_dict(), section=delivered)
            return
        except Exception:
            log.exception("chapter stream failed")
            yield event("error", code="internal_error", message="Something went wrong on our side.", section=delivered)
            return
        yield event(
            "done",
            language=metadata["language"],
            direction=metadata["direction"],
            sections=delivered,
            cached_sections=cached,
            flagged_sections=flagged,
        )

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Content-Language": metadata["language"]}
    if reader.visitor_id:
        # A returned response does not carry headers set by dependencies, so repeat the visitor id here.
        headers["X-Visitor-Id"] = reader.visitor_id
    return EventSourceResponse(events(), ping=settings.heartbeat_seconds, headers=headers)


def _metadata(chapter: Chapter, *, path: str | None, title: str | None, **extra: Any) -> dict[str, Any]:
    return {"content_hash": chapter.hash, "sections": len(chapter.sections), "path": path, "title": title, **extra}


@router.post("/translate", response_class=EventSourceResponse, responses={**STREAM_RESPONSE, **ERRORS})
async def translate_chapter_route(
    body: TranslateChapterBody, request: Request, reader: CurrentReader, settings: SettingsDep
) -> EventSourceResponse:
    """Translate a chapter section by section; code, inline code, URLs, math, frontmatter and tags stay
    byte-identical. Streams `metadata`, `section`… (in order), then `done` or `error`."""
    code, _, direction = _language(body.language)
    chapter, title = await _chapter(request, body, settings)
    cache: SectionCache
    if code == "en":
        # The book is English already: nothing to call or to store.
        runnable, cache = None, MemoryCache()
    else:
        # Building the client reads certificates from disk; keep that off the event loop.
        runnable = await asyncio.to_thread(translator)
        if runnable is None:
            raise ModelRequiredError(MODEL_REQUIRED_TRANSLATE)
        cache = PostgresSectionCache(
            request.app.state.tutor.sessions,
            chapter_hash=chapter.hash,
            kind="translate",
            target=code,
            model=model_name("translate"),
        )
    sections = translate_chapter(runnable, chapter, code, cache=cache, concurrency=settings.chapter_concurrency)
    metadata = _metadata(chapter, path=body.path, title=title, language=code, direction=direction, mode="translate")
    return _stream(sections, metadata, reader, settings)


@router.post("/personalize", response_class=EventSourceResponse, responses={**STREAM_RESPONSE, **ERRORS})
async def personalize_chapter_route(
    body: PersonalizeChapterBody, request: Request, reader: CurrentReader, session: SessionDep, settings: SettingsDep
) -> EventSourceResponse:
    """Rewrite a chapter for the reader's stored profile (never one sent with the request), keeping its
    headings, code, links and formulas. Streams like `/v1/chapters/translate`."""
    chapter, title = await _chapter(request, body, settings)
    profile = await _stored_profile(session, reader)
    # The database is not needed while the model works; free the connection for other readers.
    await session.close()
    if profile is None:
        raise ApiError(
            409,
            "profile_required",
            "Personalizing a chapter needs your profile. PUT /v1/profile with your software and hardware "
            "background, experience level and goals first.",
        )
    runnable = await asyncio.to_thread(personalizer)
    if runnable is None:
        raise ModelRequiredError(MODEL_REQUIRED_PERSONALIZE)
    fields = _profile_fields(profile)
    cache = PostgresSectionCache(
        request.app.state.tutor.sessions,
        chapter_hash=chapter.hash,
        kind="personalize",
        target=profile_fingerprint(fields),
        model=model_name("personalize"),
    )
    sections = personalize_chapter(
        runnable, chapter, profile.as_context(), cache=cache, concurrency=settings.chapter_concurrency
    )
    # The rewrite keeps the chapter's own language (the book's, English).
    metadata = _metadata(chapter, path=body.path, title=title, language="en", direction="ltr", mode="personalize")
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
        raise ApiError(422, "invalid_request", "Ask about a translation (`language`), `personalized=true`, or both.")
    language_code = _language(language) if language is not None else None
    chapter, _ = await _chapter(request, ChapterSource(path=path), settings)
    status = ChapterStatus(path=path, content_hash=chapter.hash, sections=len(chapter.sections))
    total = len(chapter.sections)
    sessions = request.app.state.tutor.sessions

    if language_code is not None:
        code, _, direction = language_code
        if code == "en":
            cached = total
        else:
            cache = PostgresSectionCache(sessions, chapter_hash=chapter.hash, kind="translate", target=code)
            cached = len(await cache.lookup(chapter.sections))
        status.translated = TranslatedProgress(
            ready=cached == total, sections=total, cached=cached, language=code, direction=direction
        )

    if personalized:
        profile = await _stored_profile(session, reader)
        cached = 0
        if profile is not None:
            target = profile_fingerprint(_profile_fields(profile))
            cache = PostgresSectionCache(sessions, chapter_hash=chapter.hash, kind="personalize", target=target)
            cached = len(await cache.lookup(chapter.sections))
        status.personalized = PersonalizedProgress(
            ready=profile is not None and cached == total, sections=total, cached=cached, profile=profile is not None
        )
    return status
