"""Heading anchors as Docusaurus makes them: a heading's plain text and the github-slugger id of it."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable

__all__ = ["EXPLICIT_ID", "Slugger", "heading_anchor", "heading_anchors", "heading_text", "slugify"]

# A heading may fix its own id: "## Setup {#install}".
EXPLICIT_ID = re.compile(r"\s*\{#([^{}\s]+)\}\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]*)\]\[[^\]]*\]")
_HTML_TAG = re.compile(r"</?[A-Za-z][\w.:-]*(?:\s[^<>]*)?/?>")
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_EMPHASIS_STARS = re.compile(r"(?<!\s)\*+|\*+(?!\s)")
_EMPHASIS_UNDERSCORES = re.compile(r"(?<!\w)_+(?=\S)|(?<=\S)_+(?!\w)")
_EMPHASIS_TILDES = re.compile(r"~~")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def heading_text(raw: str) -> str:
    """Return the plain text of a Markdown heading: no ``{#id}``, links, code or emphasis marks."""
    text = EXPLICIT_ID.sub("", raw.strip())
    text = re.sub(r"\s+#+\s*$", "", text)  # closing hashes of an ATX heading
    pieces: list[str] = []
    pos = 0
    for match in _CODE_SPAN.finditer(text):
        pieces.append(_plain_inline(text[pos : match.start()]))
        code = match.group(2)
        pieces.append(code.strip() if code.strip() else code)
        pos = match.end()
    pieces.append(_plain_inline(text[pos:]))
    return " ".join("".join(pieces).split())


def _plain_inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)
    text = _HTML_TAG.sub("", text)
    text = _EMPHASIS_STARS.sub("", text)
    text = _EMPHASIS_UNDERSCORES.sub("", text)
    text = _EMPHASIS_TILDES.sub("", text)
    text = _ESCAPE.sub(r"\1", text)
    return html.unescape(text)


def heading_anchor(text: str) -> str:
    """Return the id Docusaurus gives a heading with this Markdown text.

    An explicit ``{#custom-id}`` at the end wins. Otherwise github-slugger rules apply to the
    heading's plain text: lowercase, punctuation and symbols dropped (``-`` and ``_`` kept),
    each space turned into ``-``.
    """
    explicit = EXPLICIT_ID.search(text)
    if explicit:
        return explicit.group(1)
    return slugify(heading_text(text))


def heading_anchors(sources: Iterable[str]) -> list[str]:
    """The ids of a page's headings, given their Markdown in page order: an explicit ``{#id}`` as
    written, any other heading the slug of its text, numbered when an earlier heading took it."""
    slugger = Slugger()
    return [
        heading_anchor(source) if EXPLICIT_ID.search(source) else slugger.unique(heading_anchor(source))
        for source in sources
    ]


def slugify(plain: str) -> str:
    """github-slugger's slug of already-plain text (no de-duplication)."""
    kept = [
        ch
        for ch in plain.strip().lower()
        if ch in "-_ " or unicodedata.category(ch)[0] in "LNM"
    ]
    return "".join(kept).replace(" ", "-")



class Slugger:
    """github-slugger's stateful slugger: a slug seen before gets ``-1``, ``-2``... appended."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def unique(self, slug: str) -> str:
        """``slug``, or the first of ``slug-1``, ``slug-2``... not handed out yet."""
        base = slug
        while slug in self._seen:
            self._seen[base] += 1
            slug = f"{base}-{self._seen[base]}"
        self._seen[slug] = 0
        return slug

    def slug(self, text: str) -> str:
        """The unique slug of already-plain ``text``."""
        return self.unique(slugify(text))
