"""Heading-aware chunks of a cleaned Markdown body.

markdown-it gives the block structure and each block's source lines; chunks are slices of
the original text, so they stay Markdown. Every heading of level 1-4 starts a chunk; a
section longer than ``max_chars`` is cut at the best available boundary (between top-level
blocks, then between list items or nested blocks, then between paragraph lines, then at a
sentence end or a space inside a line). Fenced code blocks and tables are never cut.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from markdown_it.token import Token

from booktutor.tools import markdown
from booktutor.tools.docusaurus.anchors import heading_anchors, heading_text

__all__ = ["Chunk", "chunk_markdown"]

_SECTION_LEVEL = 4  # h1-h4 start a chunk; h5/h6 stay inside their section

# Cut qualities: higher is a better place to end a chunk.
_Q_TOP_BLOCK = 8
_Q_NESTED_BLOCK = 6
_Q_DEEP_BLOCK = 4
_Q_LINE = 2
_Q_SENTENCE = 1
_Q_SPACE = 0
_Q_FORCED = -1

_HEADING_ID = re.compile(r"[ \t]*\{#[^{}\s]+\}(?=[ \t]*(?:#+[ \t]*)?$)")
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*[ \t]+")
_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Chunk:
    """A slice of a page's Markdown, with the heading trail it sits under."""

    text: str  # the chunk's Markdown source (headings included, {#id} markers removed)
    headings: tuple[str, ...]  # heading trail at the chunk start, outermost first
    anchor: str  # heading_anchor() of the innermost heading in the trail, "" if none
    index: int  # 0-based position in the page


@dataclass
class _Heading:
    line: int  # first source line
    end_line: int  # line after the heading
    level: int
    text: str  # plain text
    anchor: str
    top_level: bool


def chunk_markdown(body: str, *, max_chars: int = 1500, min_chars: int = 200) -> list[Chunk]:
    """Split a cleaned Markdown body into heading-aware chunks of at most ``max_chars``.

    A chunk only exceeds ``max_chars`` when it holds one code block or table that is longer
    on its own (plus the headings leading into it). A tiny trailing piece (< ``min_chars``)
    of a split section joins the piece before it; a heading with no body of its own is
    carried into the next chunk. Output is deterministic.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    src = body.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    if not src.strip():
        return []
    tokens = markdown.parse(src)
    lines = _split_lines(src)

    headings = _collect_headings(tokens)
    # Removing {#id} markers keeps line numbers, so markdown-it's line maps stay valid.
    for h in headings:
        for n in range(h.line, h.end_line):
            lines[n] = _HEADING_ID.sub("", lines[n].rstrip("\n")) + (
                "\n" if lines[n].endswith("\n") else ""
            )
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    text = "".join(lines)

    cuts = _collect_cuts(tokens, lines, offsets, max_chars)
    cut_list = sorted(cuts)
    sections = _sections(headings, len(lines))

    chunks: list[Chunk] = []
    stack: list[_Heading] = []
    pending_start: int | None = None
    for number, (start_line, end_line, heading) in enumerate(sections):
        if heading is not None:
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            stack.append(heading)
        start = offsets[start_line] if pending_start is None else pending_start
        end = offsets[end_line]
        body_line = heading.end_line if heading is not None else start_line
        while body_line < end_line and not lines[body_line].strip():
            body_line += 1
        body_start = offsets[body_line]
        if not text[body_start:end].strip():
            if heading is None:
                continue
            if number + 1 < len(sections):
                # a heading with nothing under it travels with the next section
                if pending_start is None:
                    pending_start = start
                continue
        pending_start = None
        trail = tuple(h.text for h in stack)
        anchor = stack[-1].anchor if stack else ""
        pieces = _split_section(text, cuts, cut_list, start, body_start, end, max_chars, min_chars)
        for a, b in pieces:
            piece = _trim(text[a:b])
            if piece:
                chunks.append(Chunk(piece, trail, anchor, len(chunks)))
    return chunks


def _split_lines(src: str) -> list[str]:
    # markdown-it counts lines by "\n" only (str.splitlines would also split on \x0c etc.)
    parts = src.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _trim(piece: str) -> str:
    lines = piece.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines).rstrip()


def _collect_headings(tokens: list[Token]) -> list[_Heading]:
    """All headings in document order, with Docusaurus-style de-duplicated anchors."""
    found = markdown.headings(tokens)
    return [
        _Heading(
            line=heading.line,
            end_line=heading.end_line,
            level=heading.level,
            text=heading_text(heading.source),
            anchor=anchor,
            top_level=not heading.nested,
        )
        for heading, anchor in zip(found, heading_anchors(h.source for h in found), strict=True)
    ]


def _sections(headings: list[_Heading], n_lines: int) -> list[tuple[int, int, _Heading | None]]:
    starts = [h for h in headings if h.top_level and h.level <= _SECTION_LEVEL]
    sections: list[tuple[int, int, _Heading | None]] = []
    first = starts[0].line if starts else n_lines
    if first > 0:
        sections.append((0, first, None))
    for k, h in enumerate(starts):
        end = starts[k + 1].line if k + 1 < len(starts) else n_lines
        sections.append((h.line, end, h))
    return sections


def _collect_cuts(
    tokens: list[Token], lines: list[str], offsets: list[int], max_chars: int
) -> dict[int, int]:
    """Map each allowed cut offset to its quality; no offset lies inside code or a table."""
    cuts: dict[int, int] = {}

    def add(offset: int, quality: int) -> None:
        if quality > cuts.get(offset, _Q_FORCED - 1):
            cuts[offset] = quality

    skip_until: int | None = None
    for tok in tokens:
        if skip_until is not None:
            if tok.type == "table_close" and tok.level == skip_until:
                skip_until = None
            continue
        if tok.map is None or tok.nesting == -1 or tok.type == "inline":
            continue
        first, last = tok.map
        if tok.level == 0:
            quality = _Q_TOP_BLOCK
        elif tok.level <= 2:
            quality = _Q_NESTED_BLOCK
        else:
            quality = _Q_DEEP_BLOCK
        add(offsets[first], quality)
        add(offsets[last], quality)
        if tok.type == "table_open":
            skip_until = tok.level
        elif tok.type == "paragraph_open":
            for n in range(first, last):
                if n > first:
                    add(offsets[n], _Q_LINE)
                # even a line shorter than max_chars may not fit after the headings before it
                _add_inline_cuts(lines[n], offsets[n], max_chars, add)
    return cuts


def _add_inline_cuts(
    line: str, base: int, max_chars: int, add: Callable[[int, int], None]
) -> None:
    """Cut points inside a line: sentence ends, spaces, and hard cuts as a last resort."""
    points = [0]
    for match in _SPACES.finditer(line.rstrip("\n")):
        if 0 < match.start():
            add(base + match.end(), _Q_SPACE)
            points.append(match.end())
    for match in _SENTENCE_END.finditer(line.rstrip("\n")):
        add(base + match.end(), _Q_SENTENCE)
    points.append(len(line))
    for a, b in pairwise(points):
        for forced in range(a + max_chars, b, max_chars):
            add(base + forced, _Q_FORCED)


def _split_section(
    text: str,
    cuts: dict[int, int],
    cut_list: list[int],
    start: int,
    body_start: int,
    end: int,
    max_chars: int,
    min_chars: int,
) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` into pieces; no cut before the first body block ends."""
    # body_start is where the first body block begins: cutting there would leave the
    # heading alone, so only later cuts are allowed.
    first = bisect_left(cut_list, body_start)
    floor = cut_list[first] if first < len(cut_list) and cut_list[first] < end else end
    allowed = cut_list[bisect_right(cut_list, floor) : bisect_left(cut_list, end)]

    pieces: list[tuple[int, int]] = []
    a = start
    idx = 0
    while _size(text, a, end) > max_chars:
        while idx < len(allowed) and allowed[idx] <= a:
            idx += 1
        if idx >= len(allowed):
            break
        fitting: list[int] = []
        k = idx
        # raw length bounds the trimmed one from above; 2x leaves room for trailing blanks
        while k < len(allowed) and allowed[k] - a <= 2 * max_chars:
            if _size(text, a, allowed[k]) <= max_chars:
                fitting.append(allowed[k])
            k += 1
        if fitting:
            roomy = [c for c in fitting if _size(text, a, c) >= min_chars] or fitting
            cut = max(roomy, key=lambda c: (cuts[c], c))
        else:
            cut = allowed[idx]  # an indivisible block longer than max_chars
        pieces.append((a, cut))
        a = cut
    pieces.append((a, end))

    if len(pieces) > 1 and _size(text, *pieces[-1]) < min_chars:
        (pa, _), (_, pb) = pieces[-2], pieces[-1]
        if _size(text, pa, pb) <= max_chars:
            pieces[-2:] = [(pa, pb)]
        else:
            rebalanced = _rebalance(text, cuts, allowed, pa, pb, max_chars, min_chars)
            if rebalanced is not None:
                pieces[-2:] = [(pa, rebalanced), (rebalanced, pb)]
    return pieces


def _rebalance(
    text: str,
    cuts: dict[int, int],
    allowed: list[int],
    a: int,
    b: int,
    max_chars: int,
    min_chars: int,
) -> int | None:
    """A cut between ``a`` and ``b`` leaving both sides within limits and the tail not tiny."""
    options = [
        c
        for c in allowed
        if a < c < b
        and _size(text, a, c) <= max_chars
        and min_chars <= _size(text, c, b) <= max_chars
    ]
    if not options:
        return None
    return max(options, key=lambda c: (cuts[c], c))


def _size(text: str, a: int, b: int) -> int:
    """``len(_trim(text[a:b]))`` without building the trimmed string."""
    stripped = text[a:b].rstrip()
    content_at = len(stripped) - len(stripped.lstrip())
    if content_at:
        # only whole blank lines are trimmed; the first line keeps its indentation
        content_at = stripped.rfind("\n", 0, content_at) + 1
    return len(stripped) - content_at
