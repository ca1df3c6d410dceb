"""MDX to plain Markdown: what only the React build understands goes, the text stays.

The body keeps Markdown (headings, lists, tables, fenced code) but loses ESM imports/exports,
JSX/HTML tags (their text stays), comments and admonition fences. Fenced code blocks are copied
byte for byte; where they are is asked of :mod:`booktutor.tools.markdown`.
"""

from __future__ import annotations

import re

from booktutor.tools import markdown
from booktutor.tools.docusaurus.anchors import EXPLICIT_ID

__all__ = ["clean_mdx"]

_IMPORT_ONE_LINE = re.compile(
    r"""^import\s+(?:(?:type\s+)?[\w$*{},\s]+?\s+from\s*)?(['"])[^'"\n]*\1\s*;?\s*$"""
)
_IMPORT_MULTI_START = re.compile(r"^import\s+(?:type\s+)?(?:[\w$]+\s*,\s*)?\{[^}]*$")
_IMPORT_MULTI_END = re.compile(r"""\}\s*from\s*(['"])[^'"\n]*\1\s*;?\s*$""")
_EXPORT_START = re.compile(
    r"^export\s+(?:default\b|const\s|let\s|var\s|function\b|async\s+function\b|class\s|\{|\*)"
)
_ADMONITION_OPEN = re.compile(r"^([ \t]*(?:>[ \t]*)*):{3,}[ \t]*([A-Za-z][\w-]*)[ \t]*(.*?)[ \t]*$")
_ADMONITION_CLOSE = re.compile(r"^[ \t]*(?:>[ \t]*)*:{3,}[ \t]*$")
_MAX_ESM_LINES = 200


def clean_mdx(text: str) -> str:
    """Turn an MDX/Markdown body into plain Markdown (see the module docstring).

    Fenced code blocks (``` and ~~~) are copied unchanged; everything else loses ESM
    statements, JSX/HTML tags (keeping their text), ``{/* */}`` and ``<!-- -->`` comments;
    HTML headings become Markdown headings and admonitions become ``Tip: Title`` lines.
    """
    lines = text.split("\n")
    segments: list[tuple[bool, list[str]]] = []  # (is_code, lines)

    def add(is_code: bool, line: str) -> None:
        if segments and segments[-1][0] == is_code:
            segments[-1][1].append(line)
        else:
            segments.append((is_code, [line]))

    code = markdown.code_lines(markdown.parse(text))
    i = 0
    while i < len(lines):
        line = lines[i]
        if i in code:
            add(True, line)
            i += 1
            continue
        esm_end = _esm_statement_end(lines, i)
        if esm_end is not None:
            i = esm_end
            continue
        if _ADMONITION_CLOSE.match(line):
            i += 1
            continue
        admonition = _ADMONITION_OPEN.match(line)
        if admonition:
            prefix, kind, title = admonition.groups()
            title = re.sub(r"^\[(.*)\]$", r"\1", title).strip()
            label = kind[:1].upper() + kind[1:].lower() + ":"
            add(False, prefix + (f"{label} {title}" if title else label))
            i += 1
            continue
        add(False, line)
        i += 1

    out: list[str] = []
    for is_code, seg_lines in segments:
        if is_code:
            out.extend(seg_lines)
        else:
            cleaned = _clean_text("\n".join(seg_lines)).split("\n")
            out.extend(_collapse_blank_lines(cleaned))
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _esm_statement_end(lines: list[str], i: int) -> int | None:
    """If an MDX import/export statement starts at line ``i``, return the index after it."""
    line = lines[i]
    if _IMPORT_ONE_LINE.match(line):
        return i + 1
    if _IMPORT_MULTI_START.match(line):
        for j in range(i + 1, min(len(lines), i + _MAX_ESM_LINES)):
            if _IMPORT_MULTI_END.search(lines[j]):
                return j + 1
            if not lines[j].strip():
                return None
        return None
    if _EXPORT_START.match(line):
        depth = 0
        for j in range(i, min(len(lines), i + _MAX_ESM_LINES)):
            if j > i and not lines[j].strip() and depth <= 0:
                return j
            depth += _bracket_balance(lines[j])
            if depth <= 0 and not re.search(r"[=,(\[{+\-*/&|?:]\s*$", lines[j]):
                return j + 1
        return None
    return None


def _bracket_balance(line: str) -> int:
    stripped = re.sub(r"""(["'`])(?:\\.|(?!\1).)*\1""", "", line)
    return sum(stripped.count(c) for c in "({[") - sum(stripped.count(c) for c in ")}]")


def _collapse_blank_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    blank_run = 0
    for line in lines:
        if line.strip():
            blank_run = 0
            out.append(line)
        else:
            blank_run += 1
            if blank_run == 1:
                out.append("")
    return out


# A JSX/HTML tag: attributes may be quoted strings or {expressions} (two levels of braces).
_JSX_EXPR = r"\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}"
_TAG = re.compile(
    r"<(/?)([A-Za-z][\w.:-]*)"
    r"((?:\s+(?:[^\s\"'{}<>/=]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|" + _JSX_EXPR + r"))?"
    r"|" + _JSX_EXPR + r"))*)"
    r"\s*(/?)>"
)
_FRAGMENT = re.compile(r"</?>")
_MDX_COMMENT = re.compile(r"\{\s*/\*.*?\*/\s*\}", re.DOTALL)
_HTML_HEADING = re.compile(r"h[1-6]", re.IGNORECASE)
_ID_ATTR = re.compile(r"""\bid\s*=\s*(?:"([^"]*)"|'([^']*)'|\{\s*["']([^"']*)["']\s*\})""")
_SPECIAL = re.compile(r"[`\\<{]")
_BACKTICKS = re.compile(r"`+")


def _clean_text(s: str) -> str:
    """Strip tags and comments from non-code text, leaving inline code spans untouched."""
    out: list[str] = []
    i = 0
    n = len(s)
    while i < n:
        special = _SPECIAL.search(s, i)
        if not special:
            out.append(s[i:])
            break
        j = special.start()
        out.append(s[i:j])
        ch = s[j]
        if ch == "`":
            run = len(_BACKTICKS.match(s, j).group(0))
            close = re.compile(r"(?<!`)" + "`" * run + r"(?!`)").search(s, j + run)
            if close:
                out.append(s[j : close.end()])
                i = close.end()
            else:
                out.append(s[j : j + run])
                i = j + run
            continue
        if ch == "\\":
            out.append(s[j : j + 2])
            i = j + 2
            continue
        if ch == "{":
            comment = _MDX_COMMENT.match(s, j)
            if comment:
                i = comment.end()
            else:
                out.append(ch)
                i = j + 1
            continue
        # ch == "<"
        if s.startswith("<!--", j):
            end = s.find("-->", j + 4)
            if end >= 0:
                i = end + 3
            else:
                out.append(ch)
                i = j + 1
            continue
        fragment = _FRAGMENT.match(s, j)
        if fragment:
            i = fragment.end()
            continue
        tag = _TAG.match(s, j)
        # prose like "a <b and c > d" is no tag; a real tag never spans a blank line
        if not tag or re.search(r"\n[ \t]*\n", tag.group(0)):
            out.append(ch)
            i = j + 1
            continue
        closing, name, _attrs, self_closing = tag.groups()
        if not closing and not self_closing and _HTML_HEADING.fullmatch(name):
            end = re.compile(rf"</{name}\s*>", re.IGNORECASE).search(s, tag.end())
            if end:
                i = _emit_heading(out, s, tag, end, int(name[1]))
                continue
        if name.lower() == "br":
            out.append(" ")
        i = tag.end()
    return "".join(out)


def _emit_heading(out: list[str], s: str, tag: re.Match[str], end: re.Match[str], level: int) -> int:
    """Write an HTML heading into ``out``; return the index to continue scanning from."""
    inner = " ".join(_clean_text(s[tag.end() : end.start()]).split())
    line_end = s.find("\n", end.end())
    rest = s[end.end() : line_end if line_end >= 0 else len(s)]
    prefix = _pop_current_line(out)
    own_line = re.fullmatch(r"[ \t]*(?:#{1,6}[ \t]*)?", prefix) and not _clean_text(rest).strip()
    if not own_line:
        out.append(prefix + inner)
    elif inner:
        indent = prefix[: len(prefix) - len(prefix.lstrip(" \t"))]
        anchor = _ID_ATTR.search(tag.group(3) or "")
        anchor_id = next((g for g in anchor.groups() if g), "") if anchor else ""
        suffix = f" {{#{anchor_id}}}" if anchor_id and not EXPLICIT_ID.search(inner) else ""
        out.append(indent + "#" * level + " " + inner + suffix)
    return end.end()


def _pop_current_line(out: list[str]) -> str:
    """Remove and return the output written since the last newline."""
    parts: list[str] = []
    while out:
        piece = out.pop()
        newline = piece.rfind("\n")
        if newline >= 0:
            out.append(piece[: newline + 1])
            parts.append(piece[newline + 1 :])
            break
        parts.append(piece)
    return "".join(reversed(parts))


