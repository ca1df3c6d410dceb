"""Markdown structure, read in one place: where fenced code and headings are.

Every tool that must not cut, translate or quote inside code, or that looks for headings, asks this
module instead of scanning lines itself. One markdown-it parser reads every text, configured for
what books are written in (Docusaurus MDX):

- no indented code blocks: MDX has none, four leading spaces are only indentation;
- no HTML blocks: MDX has JSX instead, so a fence written right under a `<div>` line is still code
  (CommonMark would swallow it into the HTML block) and a `<h2>` line is text, not an opaque block;
- tables on, as Docusaurus renders GitHub tables.

Line numbers are 0-based and count `\\n` only, like markdown-it's own `Token.map`.
"""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = [
    "Block",
    "Fence",
    "Heading",
    "code_lines",
    "fence_spans",
    "fences",
    "headings",
    "line_starts",
    "parse",
    "prose",
    "blocks",
    "unwrap_fence",
]

_PARSER = MarkdownIt("commonmark").enable("table").disable(["code", "html_block"])


def parse(text: str) -> list[Token]:
    """markdown-it's block tokens of `text`; each block token's `.map` is its `[first, after)` lines."""
    # markdown-it also breaks lines at a lone "\r"; callers count lines at "\n" only, so a "\r" is
    # parsed as a space to keep every line number after it the same for both.
    return _PARSER.parse(text.replace("\r", " "))


@dataclass(frozen=True)
class Fence:
    """One fenced code block (``` or ~~~), wherever it sits (top level, list item, block quote)."""

    line: int  # the opening fence line
    end_line: int  # the line after the block: after the closing fence, or the end of its container
    info: str  # the info string, e.g. "python"
    content: str  # the code between the fences
    closed: bool  # False when the block runs to the end of its container without a closing fence


@dataclass(frozen=True)
class Heading:
    """One Markdown heading (`# Title` or an underlined one)."""

    line: int  # first source line
    end_line: int  # the line after the heading
    level: int  # 1-6
    source: str  # the heading's inline Markdown, e.g. "Nodes `rclpy` {#nodes}"
    nested: bool  # inside a list item or block quote
    underlined: bool  # a setext heading ("Title" over a "===" or "---" line)


def fences(tokens: list[Token]) -> list[Fence]:
    """The fenced code blocks among parsed `tokens`, in document order."""
    return [
        Fence(
            line=tok.map[0],
            end_line=tok.map[1],
            info=tok.info.strip(),
            content=tok.content,
            # Opening line, code lines, closing line: an open block lacks the last.
            closed=tok.map[1] - tok.map[0] == _line_count(tok.content) + 2,
        )
        for tok in tokens
        if tok.type == "fence" and tok.map is not None
    ]


def _line_count(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def headings(tokens: list[Token]) -> list[Heading]:
    """The headings among parsed `tokens`, in document order."""
    found = []
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or tok.map is None:
            continue
        found.append(
            Heading(
                line=tok.map[0],
                end_line=tok.map[1],
                level=int(tok.tag[1]),
                source=tokens[i + 1].content if i + 1 < len(tokens) else "",
                nested=tok.level > 0,
                underlined=tok.markup in ("=", "-"),
            )
        )
    return found


def line_starts(text: str) -> list[int]:
    """The offset of every line of `text`, plus `len(text)` at the end."""
    starts = [0]
    for n, char in enumerate(text):
        if char == "\n":
            starts.append(n + 1)
    if starts[-1] != len(text):
        starts.append(len(text))
    return starts


def code_lines(tokens: list[Token]) -> set[int]:
    """The lines that belong to a fenced code block among parsed `tokens`, fence lines included."""
    return {n for fence in fences(tokens) for n in range(fence.line, fence.end_line)}


def fence_spans(text: str) -> list[tuple[int, int]]:
    """`(start, end)` offsets of each outermost fenced block: from its opening line to the end of its last
    line (the newline after it excluded)."""
    starts = line_starts(text)
    spans: list[tuple[int, int]] = []
    for fence in fences(parse(text)):
        start = starts[fence.line]
        end = starts[min(fence.end_line, len(starts) - 1)]
        if end > start and text[end - 1] == "\n":
            end -= 1
        spans.append((start, end))
    return spans


def prose(text: str) -> str:
    """`text` with its fenced code, headings and tables each replaced by one blank line: what is left
    are the paragraphs and list items a reader could quote as sentences."""
    tokens = parse(text)
    drop = code_lines(tokens)
    for tok in tokens:
        if tok.type in ("heading_open", "table_open") and tok.map is not None:
            drop.update(range(*tok.map))
    return _blank_out(text, drop)


def _blank_out(text: str, drop: set[int]) -> str:
    kept: list[str] = []
    for n, line in enumerate(text.split("\n")):
        if n not in drop:
            kept.append(line)
        elif n == 0 or n - 1 not in drop:
            kept.append("")
    return "\n".join(kept)


def unwrap_fence(text: str, *, infos: tuple[str, ...] = ("", "markdown", "md")) -> str | None:
    """The content of `text` when all of it is one closed fenced block whose info string is in `infos`
    (case-insensitive), else None."""
    tokens = parse(text.strip())
    blocks = fences(tokens)
    if len(tokens) != 1 or not blocks or not blocks[0].closed or blocks[0].info.lower() not in infos:
        return None
    return blocks[0].content


@dataclass(frozen=True)
class Block:
    """One top-level block of a text: what a reader would quote whole."""

    kind: str  # "heading", "paragraph", "list", "table", "code", "quote" or "other"
    text: str  # its Markdown source


_BLOCK_KINDS = {
    "heading_open": "heading",
    "paragraph_open": "paragraph",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "table_open": "table",
    "fence": "code",
    "blockquote_open": "quote",
}


def blocks(text: str) -> list[Block]:
    """The top-level blocks of `text` in document order, each with its source lines (a list with every
    item, a table with every row, a fenced block with its fences)."""
    lines = text.split("\n")
    found = []
    for tok in parse(text):
        if tok.level != 0 or tok.map is None or tok.nesting == -1:
            continue
        kind = _BLOCK_KINDS.get(tok.type, "other")
        source = "\n".join(lines[tok.map[0] : tok.map[1]]).strip("\n")
        if source.strip():
            found.append(Block(kind, source))
    return found
