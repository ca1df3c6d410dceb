"""Whole chapters, section by section: translated or rewritten for one reader, code kept byte-identical.

A chapter is split into sections at its headings (never inside fenced code). Each section goes through
the model on its own, with the same protection as `translate_text`: frontmatter, code, MDX imports,
math, tags and link targets become ⟦n⟧ placeholders, and a reply that lost one, repeated one, or changed
the section's headings is retried once and then handed back untranslated and flagged, so a chapter never
silently corrupts code or loses a heading. Sections run concurrently (bounded) but come out in order.

Nothing here knows about HTTP or a database: callers pass the runnable and a `SectionCache`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, Awaitable, Callable, Mapping, Protocol, Sequence

from langchain_core.runnables import Runnable

from booktutor.tools import markdown
from booktutor.tools.errors import BooktutorError, ModelRequiredError
from booktutor.tools.translation import TranslationError, language_info, protect, restore

log = logging.getLogger("booktutor.chapters")

# Sections start at h1 and h2: small enough for a model to handle well, large enough that a section has
# the context a good translation needs (h3 and deeper stay inside their section).
SECTION_LEVEL = 2
DEFAULT_CONCURRENCY = 4

# The book writes many headings as JSX (`<h2 className="second-heading">…</h2>`): they count too.
_HTML_HEADING = re.compile(r"^[ \t]*<h([1-6])(?=[\s>/])", re.IGNORECASE)
MODEL_REQUIRED_TRANSLATE = (
    "Translating a chapter needs a language model. Set OPENAI_API_KEY (and OPENAI_BASE_URL for a local or "
    "other OpenAI-compatible server); BOOKTUTOR_TRANSLATE_MODEL picks the model."
)
MODEL_REQUIRED_PERSONALIZE = (
    "Personalizing a chapter needs a language model. Set OPENAI_API_KEY (and OPENAI_BASE_URL for a local or "
    "other OpenAI-compatible server); BOOKTUTOR_PERSONALIZE_MODEL picks the model."
)

_PLACEHOLDER = re.compile(r"⟦\d+⟧")
_LETTER = re.compile(r"[^\W\d_]")


class SectionFailed(BooktutorError):
    """The model failed (error, timeout) on one section; the sections before it were delivered."""

    code = "model_error"

    def __init__(self, section: int, message: str) -> None:
        super().__init__(message)
        self.section = section

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "section": self.section}


# -- splitting ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One piece of a chapter; the chapter is exactly the concatenation of its sections."""

    index: int
    text: str
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", content_hash(self.text))


@dataclass(frozen=True)
class Chapter:
    """A chapter's Markdown (newlines normalised), its content hash and its sections."""

    text: str
    sections: tuple[Section, ...]

    @property
    def hash(self) -> str:
        return content_hash(self.text)


def normalise(markdown: str) -> str:
    """Markdown with `\\n` newlines and no byte-order mark, so the same chapter always hashes the same."""
    return markdown.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def content_hash(text: str) -> str:
    """sha256 hex of a text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def profile_fingerprint(profile: Mapping[str, Any]) -> str:
    """sha256 of a reader's stored profile fields: a changed profile is a different personalization."""
    return content_hash(json.dumps({key: profile[key] for key in sorted(profile)}, ensure_ascii=False))


def _headings(text: str) -> list[tuple[int, int]]:
    """(line, level) of every heading outside fenced code, in order.

    Markdown headings count at the top level only (one inside a list or quote starts no section), and
    only `#` ones: the closing `---` of frontmatter would make its last line an underlined heading.
    """
    tokens = markdown.parse(text)
    found = [(h.line, h.level) for h in markdown.headings(tokens) if not h.nested and not h.underlined]
    code = markdown.code_lines(tokens)
    for number, line in enumerate(text.split("\n")):
        if number not in code and (jsx := _HTML_HEADING.match(line)):
            found.append((number, int(jsx.group(1))))
    return sorted(found)


def heading_levels(text: str) -> list[int]:
    """The level of every heading (Markdown `#` or HTML `<hN>`) outside fenced code, in order."""
    return [level for _, level in _headings(text)]


def split_sections(text: str, *, max_level: int = SECTION_LEVEL) -> list[str]:
    """Cut Markdown at every heading of level `max_level` or above that is outside fenced code.

    `"".join(split_sections(text)) == text`; what comes before the first heading (frontmatter, imports,
    an intro) is a section of its own unless it is only whitespace.
    """
    line_starts = markdown.line_starts(text)
    starts = [line_starts[line] for line, level in _headings(text) if level <= max_level]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = [*starts, len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    if len(pieces) > 1 and not pieces[0].strip():
        pieces[1] = pieces[0] + pieces[1]
        pieces.pop(0)
    return [piece for piece in pieces if piece]


def prepare_chapter(markdown: str, *, max_level: int = SECTION_LEVEL) -> Chapter:
    """The chapter of `markdown`, split into sections."""
    text = normalise(markdown)
    return Chapter(text, tuple(Section(n, piece) for n, piece in enumerate(split_sections(text, max_level=max_level))))


# -- one section ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionResult:
    """A section's new text; `flagged` when it could not be verified and is the original instead."""

    text: str
    flagged: bool = False
    model_calls: int = 0


def _unwrap(reply: str) -> str:
    # Models like to wrap Markdown in a ```markdown fence; the section itself never is.
    wrapped = markdown.unwrap_fence(reply)
    return wrapped.strip() if wrapped is not None else reply


async def rewrite_section(runnable: Runnable, text: str, inputs: Mapping[str, Any], *, attempts: int = 2) -> SectionResult:
    """Send one section through `runnable` (`{**inputs, "text"}` -> Markdown) and verify the reply.

    Protected parts must come back exactly once each and the headings must keep their number, levels and
    order; otherwise the call is repeated, and after `attempts` tries the original text is returned
    flagged. Model errors propagate. Surrounding whitespace is kept so sections join back into a chapter.
    """
    body = text.strip()
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(lead) + len(body) :]
    masked, kept = protect(body)
    if not _LETTER.search(_PLACEHOLDER.sub("", masked)):
        # Only code, tags or frontmatter: nothing a model could improve, so no call is spent on it.
        return SectionResult(text)
    expected = heading_levels(body)
    calls = 0
    for _ in range(attempts):
        reply = await runnable.ainvoke({**inputs, "text": masked})
        calls += 1
        try:
            rewritten = restore(_unwrap(reply.strip()), kept)
        except TranslationError:
            continue
        if rewritten.strip() and heading_levels(rewritten) == expected:
            return SectionResult(lead + rewritten + trail, model_calls=calls)
    return SectionResult(text, flagged=True, model_calls=calls)


# -- the whole chapter ----------------------------------------------------------------------------------


class SectionCache(Protocol):
    """Where finished sections of one chapter and one target (a language, a reader profile) are kept."""

    async def lookup(self, sections: Sequence[Section]) -> dict[int, str]:
        """Section index -> stored text, for the sections already done."""
        ...

    async def store(self, section: Section, text: str) -> None:
        """Keep a finished section."""
        ...


class MemoryCache:
    """A `SectionCache` in a dict, keyed by section content (for tests and one-off scripts)."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    async def lookup(self, sections: Sequence[Section]) -> dict[int, str]:
        return {s.index: self.texts[s.hash] for s in sections if s.hash in self.texts}

    async def store(self, section: Section, text: str) -> None:
        self.texts[section.hash] = text


@dataclass(frozen=True)
class SectionEvent:
    """One section as it is delivered: its text and whether it came from the cache or was flagged."""

    index: int
    text: str
    cached: bool = False
    flagged: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text, "cached": self.cached, "flagged": self.flagged}


Rewrite = Callable[[str], Awaitable[SectionResult]]


async def stream_sections(
    sections: Sequence[Section], rewrite: Rewrite, cache: SectionCache, *, concurrency: int = DEFAULT_CONCURRENCY
) -> AsyncGenerator[SectionEvent, None]:
    """Every section in order: cached ones from `cache`, the others through `rewrite`, at most
    `concurrency` at a time.

    A finished section is stored as soon as it is done, whatever happens to the others. Flagged sections
    are not stored, so a later request tries them again. When `rewrite` raises, the sections before the
    failing one are yielded, the rest are cancelled and `SectionFailed` names the section.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    hits = await cache.lookup(sections)
    gate = asyncio.Semaphore(concurrency)

    async def work(section: Section) -> SectionResult:
        async with gate:
            result = await rewrite(section.text)
        if not result.flagged:
            try:
                await cache.store(section, result.text)
            except Exception:
                # The cache saves work later; losing a write must not lose the section the reader waits for.
                log.warning("could not store section %d", section.index, exc_info=True)
        return result

    tasks = {s.index: asyncio.create_task(work(s), name=f"section-{s.index}") for s in sections if s.index not in hits}
    try:
        for section in sections:
            if section.index in hits:
                yield SectionEvent(section.index, hits[section.index], cached=True)
                continue
            try:
                result = await tasks[section.index]
            except Exception as error:
                log.warning("section %d failed: %r", section.index, error)
                raise SectionFailed(
                    section.index,
                    f"The language model failed on section {section.index} ({type(error).__name__}). "
                    "The sections before it are saved: ask again to continue from there.",
                ) from error
            yield SectionEvent(section.index, result.text, flagged=result.flagged)
    finally:
        for task in tasks.values():
            task.cancel()
        # Collect every outcome so no failed task is reported as "exception never retrieved".
        await asyncio.gather(*tasks.values(), return_exceptions=True)


def translate_chapter(
    translator: Runnable | None,
    chapter: Chapter,
    language: str,
    *,
    cache: SectionCache,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> AsyncGenerator[SectionEvent, None]:
    """The chapter's sections translated into `language`, in order (see `stream_sections`).

    English needs no model: the sections come back as they are. Otherwise `translator` must be the
    translation runnable (`{text, language_name}` -> Markdown).
    """
    code, name, _ = language_info(language)
    if translator is None and code != "en":
        raise ModelRequiredError(MODEL_REQUIRED_TRANSLATE)

    async def rewrite(text: str) -> SectionResult:
        if code == "en":
            return SectionResult(text)
        return await rewrite_section(translator, text, {"language_name": name})

    return stream_sections(chapter.sections, rewrite, cache, concurrency=concurrency)


def personalize_chapter(
    personalizer: Runnable | None,
    chapter: Chapter,
    profile: Mapping[str, Any],
    *,
    cache: SectionCache,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> AsyncGenerator[SectionEvent, None]:
    """The chapter's sections rewritten for the reader described by `profile`, in order.

    `personalizer` is the runnable `{text, profile}` -> Markdown; `cache` must belong to this profile.
    """
    if personalizer is None:
        raise ModelRequiredError(MODEL_REQUIRED_PERSONALIZE)

    async def rewrite(text: str) -> SectionResult:
        return await rewrite_section(personalizer, text, {"profile": dict(profile)})

    return stream_sections(chapter.sections, rewrite, cache, concurrency=concurrency)
