"""The chapter service: find a chapter, translate or personalize it section by section through the
Postgres cache, and report how much of it is cached. The HTTP routes in `routes/chapters.py` only
parse requests and frame these events as Server-Sent Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncGenerator, AsyncIterator

from booktutor.agents.models import model_name, personalizer, translator
from booktutor.agents.prompts import PROFILE_FIELDS
from booktutor.graphs.context import Context
from booktutor.server import crud
from booktutor.server.chapter_cache import PostgresSectionCache
from booktutor.server.errors import ApiError
from booktutor.server.models import Profile
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
from booktutor.tools.errors import BooktutorError, ModelRequiredError
from booktutor.tools.index import BookIndex

log = logging.getLogger("booktutor.chapters")

# The stored profile fields a personalization depends on; its cache key is their fingerprint.
STORED_PROFILE_FIELDS = ("software_background", "hardware_background", "experience_level", "goals", "preferred_language")


# -- finding the chapter ---------------------------------------------------------------------------------


async def _indexed_chapter(index: BookIndex, path: str) -> tuple[str, str | None]:
    """(Markdown, title) of a page of the ingested book."""
    # Qdrant's local client is synchronous; keep it off the event loop.
    passages = await asyncio.to_thread(index.page_passages, path)
    if not passages:
        raise ApiError("chapter_not_found", f"No page '{path}' in the book index. Use a doc path or page URL.")
    # Chunks are consecutive slices of the page body, trimmed: a blank line between them rebuilds it.
    return "\n\n".join(p["text"] for p in passages) + "\n", passages[0]["title"]


async def load_chapter(
    index: BookIndex, settings: Settings, *, path: str | None, markdown: str | None
) -> tuple[Chapter, str | None]:
    """The chapter at `path` in the book index, or the `markdown` sent; (chapter, title)."""
    if path is not None:
        markdown, title = await _indexed_chapter(index, path)
    else:
        markdown, title = markdown or "", None
    if not markdown.strip():
        raise ApiError("chapter_empty", "The chapter is empty: there is nothing to translate or personalize.")
    if len(markdown) > settings.max_chapter_chars:
        raise ApiError(
            "chapter_too_large",
            f"The chapter is {len(markdown)} characters; the limit is {settings.max_chapter_chars} "
            "(BOOKTUTOR_MAX_CHAPTER_CHARS). Send it in parts.",
        )
    return prepare_chapter(markdown), title


async def stored_profile(session, *, reader_id: str) -> Profile | None:
    """The reader's stored profile when it says anything a personalization can use."""
    stored = await crud.get_profile(session, reader_id=reader_id)
    if stored is None or not any(getattr(stored, name) for name in PROFILE_FIELDS):
        return None
    return stored


def profile_target(profile: Profile) -> str:
    """The cache target of a personalization for this profile."""
    return profile_fingerprint({name: getattr(profile, name) for name in STORED_PROFILE_FIELDS})


def require_profile(profile: Profile | None) -> Profile:
    if profile is None:
        raise ApiError(
            "profile_required",
            "Personalizing a chapter needs your profile. PUT /v1/profile with your software and hardware "
            "background, experience level and goals first.",
        )
    return profile


# -- the sections ----------------------------------------------------------------------------------------


async def translated_sections(
    chapter: Chapter, language: str, *, sessions, context: Context, concurrency: int
) -> AsyncGenerator[SectionEvent, None]:
    """The chapter's sections translated into `language` (a normalised code), cached ones first."""
    cache: SectionCache
    if language == "en":
        # The book is English already: nothing to call or to store.
        runnable, cache = None, MemoryCache()
    else:
        # Building the client reads certificates from disk; keep that off the event loop.
        runnable = await asyncio.to_thread(translator, context.endpoint, context.translate_model)
        if runnable is None:
            raise ModelRequiredError(MODEL_REQUIRED_TRANSLATE)
        cache = PostgresSectionCache(
            sessions,
            chapter_hash=chapter.hash,
            kind="translate",
            target=language,
            model=model_name(context.endpoint, context.translate_model),
        )
    return translate_chapter(runnable, chapter, language, cache=cache, concurrency=concurrency)


async def personalized_sections(
    chapter: Chapter, profile: Profile, *, sessions, context: Context, concurrency: int
) -> AsyncGenerator[SectionEvent, None]:
    """The chapter's sections rewritten for the reader's stored profile, cached ones first."""
    runnable = await asyncio.to_thread(personalizer, context.endpoint, context.personalize_model)
    if runnable is None:
        raise ModelRequiredError(MODEL_REQUIRED_PERSONALIZE)
    cache = PostgresSectionCache(
        sessions,
        chapter_hash=chapter.hash,
        kind="personalize",
        target=profile_target(profile),
        model=model_name(context.endpoint, context.personalize_model),
    )
    return personalize_chapter(runnable, chapter, profile.as_context(), cache=cache, concurrency=concurrency)


async def cached_sections(sessions, chapter: Chapter, *, kind: str, target: str) -> int:
    """How many of the chapter's sections are cached for this kind and target."""
    cache = PostgresSectionCache(sessions, chapter_hash=chapter.hash, kind=kind, target=target)
    return len(await cache.lookup(chapter.sections))


def chapter_metadata(chapter: Chapter, *, path: str | None, title: str | None, **extra: Any) -> dict[str, Any]:
    return {"content_hash": chapter.hash, "sections": len(chapter.sections), "path": path, "title": title, **extra}


async def chapter_events(
    sections: AsyncGenerator[SectionEvent, None], metadata: dict[str, Any]
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(name, data) of a chapter stream: metadata, section… in order, then done or error."""
    yield "metadata", metadata
    delivered = cached = flagged = 0
    try:
        # aclosing: a reader who goes away stops the sections still being written, at once.
        async with contextlib.aclosing(sections) as stream:
            async for section in stream:
                delivered += 1
                cached += section.cached
                flagged += section.flagged
                yield "section", section.as_dict()
    except SectionFailed as error:
        yield "error", error.as_dict()
        return
    except BooktutorError as error:
        yield "error", {**error.as_dict(), "section": delivered}
        return
    except Exception:
        log.exception("chapter stream failed")
        yield "error", {"code": "internal_error", "message": "Something went wrong on our side.", "section": delivered}
        return
    yield "done", {
        "language": metadata["language"],
        "direction": metadata["direction"],
        "sections": delivered,
        "cached_sections": cached,
        "flagged_sections": flagged,
    }
