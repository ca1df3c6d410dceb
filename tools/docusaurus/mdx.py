"""MDX to plain Markdown: what only the React build understands goes, the text stays.

The body keeps Markdown (headings, lists, tables, fenced code) but loses ESM imports/exports,
JSX/HTML tags (their text stays), comments and admonition fences. What a reader sees of a tag is
kept as the Markdown that says the same: an HTML heading becomes a heading, an admonition's kind and
title a line, a tab's label (``<TabItem label="Python">``) a heading over the tab's text. Fenced code
blocks are copied byte for byte; where they are is asked of :mod:`booktutor.tools.markdown`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from booktutor.tools import markdown
from booktutor.tools.docusaurus.anchors import EXPLICIT_ID, heading_anchors

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
    HTML headings become Markdown headings, admonitions become ``Tip: Title`` lines and each
    ``<TabItem>``'s label a heading over its text (see :func:`_tab_headings`).
    """
    text = text.replace(_TAB_MARK, "\ufffd")  # as the chunker would; NUL marks tabs here (see _TAB_MARK)
    lines = text.split("\n")
    tabs: list[dict[str, str]] = []  # the <Tabs> open at this point of the page (see _tab_mark)
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
            cleaned = _clean_text("\n".join(seg_lines), tabs).split("\n")
            out.extend(_collapse_blank_lines(cleaned))
    if any(_TAB_MARK in line for line in out):
        out = _tab_headings(out)
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


def _clean_text(s: str, tabs: list[dict[str, str]] | None = None) -> str:
    """Strip tags and comments from non-code text, leaving inline code spans untouched.

    ``tabs`` follows the ``<Tabs>`` open across calls: where tabs open and close and each tab's
    label are written as marker lines (see :func:`_tab_mark`) for :func:`_tab_headings`.
    """
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
        closing, name, attrs, self_closing = tag.groups()
        if tabs is not None and name in ("Tabs", "TabItem"):
            mark = _tab_mark(
                tabs, name, attrs or "", closing=bool(closing), self_closing=bool(self_closing)
            )
            if mark:
                _emit_own_line(out, mark)
            i = tag.end()
            continue
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


# Docusaurus tabs. Their structure is written as marker lines while tags are stripped, and turned into
# headings once the whole page is clean, when the headings around each tab are known. A marker is NUL,
# what it marks, NUL and the tab's label; clean_mdx takes any NUL of the page itself out first.
_TAB_MARK = "\x00"
_TABS_OPEN, _TAB, _TABS_CLOSE = "open", "tab", "close"
_MARK_LINE = re.compile(rf"([ \t]*){_TAB_MARK}({_TABS_OPEN}|{_TAB}|{_TABS_CLOSE}){_TAB_MARK}(.*)")
_ATTRIBUTE = re.compile(
    r"([^\s\"'{}<>/=]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|" + _JSX_EXPR + r"))?|" + _JSX_EXPR
)
# A JavaScript string literal without escapes or interpolation, its text in one of three groups.
_JS_STRING = r"""(?:"([^"\\]*)"|'([^'\\]*)'|`([^`\\$]*)`)"""
# A string attribute: "x", 'x', or an expression that is only a string: {"x"}, {'x'}, {`x`}.
_STRING = re.compile(r"\{\s*" + _JS_STRING + r"""\s*\}|"([^"]*)"|'([^']*)'""")
_VALUES_ITEM = re.compile(r"\{([^{}]*)\}")
_VALUES_KEY = r"""(?<![\w$])["']?{key}["']?\s*:\s*""" + _JS_STRING  # no braces, so .format(key=...) leaves it whole


def _tab_mark(
    tabs: list[dict[str, str]], name: str, attrs: str, *, closing: bool, self_closing: bool
) -> str:
    """The marker line for one ``<Tabs>``/``<TabItem>`` tag ("" for none); a tab's holds its label.

    ``tabs`` holds the Tabs open, innermost last, each with the labels its ``values`` prop gives by
    value (the older way to label tabs). Like Docusaurus, a TabItem without a label shows its value.
    """
    if self_closing:
        return ""
    if name == "Tabs":
        if closing:
            if not tabs:
                return ""
            tabs.pop()
            return f"{_TAB_MARK}{_TABS_CLOSE}{_TAB_MARK}"
        tabs.append(_values_labels(_attributes(attrs).get("values", "")))
        return f"{_TAB_MARK}{_TABS_OPEN}{_TAB_MARK}"
    if closing or not tabs:
        return ""
    attributes = _attributes(attrs)
    value = _string(attributes.get("value", ""))
    label = _string(attributes.get("label", "")) or tabs[-1].get(value, "") or value
    return f"{_TAB_MARK}{_TAB}{_TAB_MARK}{label}"


def _attributes(attrs: str) -> dict[str, str]:
    """A tag's attributes by name, each as written (``"x"``, ``{expr}``, "" for a bare one)."""
    return {m.group(1): m.group(2) or "" for m in _ATTRIBUTE.finditer(attrs) if m.group(1)}


def _string(raw: str) -> str:
    """The text of a string attribute (``"x"``, ``{'x'}``...), spaces collapsed; "" for anything else."""
    match = _STRING.fullmatch(raw.strip())
    text = next((g for g in match.groups() if g is not None), "") if match else ""
    return " ".join(text.split())


def _values_labels(raw: str) -> dict[str, str]:
    """Labels by value from a Tabs ``values={[{label: 'Apple', value: 'apple'}, ...]}`` prop."""
    labels: dict[str, str] = {}
    for item in _VALUES_ITEM.finditer(raw):
        found = {}
        for key in ("label", "value"):
            match = re.search(_VALUES_KEY.format(key=key), item.group(1))
            text = next(g for g in match.groups() if g is not None) if match else ""
            found[key] = " ".join(text.split())
        if found["label"] and found["value"]:
            labels[found["value"]] = found["label"]
    return labels


def _emit_own_line(out: list[str], line: str) -> None:
    """Write ``line`` into ``out`` as a block of its own, at the indentation of the line it was on;
    text before it on that line keeps its place, text after it starts the next block."""
    prefix = _pop_current_line(out)
    indent = prefix[: len(prefix) - len(prefix.lstrip(" \t"))]
    if prefix.strip():
        out.append(prefix.rstrip() + "\n")
    out.append(f"\n{indent}{line}\n\n{indent}")


def _tab_headings(lines: list[str]) -> list[str]:
    """The page's lines with its tab markers turned into headings (see :func:`_tab_mark`).

    A tab's label becomes a heading one level under the heading the tabs sit under, their section, so
    the tab's text reads under its name, as on the page, and a chunk of it carries the name in its
    heading trail. What follows the tabs, or sits in a tab without a name, is under the section again:
    its heading is written again above it. These headings take the section's id: Docusaurus gives a
    tab no anchor, so a citation of a tab's text lands on its section, and every other id of the page
    stays as it was. Tabs above the page's first heading have no section, and get a bold line each.
    """
    headings = {h.line: h for h in markdown.headings(markdown.parse("\n".join(lines)))}
    anchors = dict(zip(headings, heading_anchors(h.source for h in headings.values()), strict=True))
    above: _Section | None = None  # the heading the text at this point falls under
    sections: list[_Section | None] = []  # the section of each open Tabs, innermost last
    out: list[str] = []
    dropped = False  # a marker that writes nothing was just left out, with the blank line before it
    for n, line in enumerate(lines):
        if dropped and not line.strip():
            continue  # ...and the blank line after it, so one blank line is left where it stood
        dropped = False
        if n in headings:
            heading = headings[n]
            text = " ".join(EXPLICIT_ID.sub("", heading.source).split())
            above = _Section(heading.level, text, anchors[n]) if anchors[n] else None
        mark = _MARK_LINE.fullmatch(line)
        if mark is None:
            out.append(line)
            continue
        indent, kind, label = mark.groups()
        section = sections[-1] if sections else None
        if kind == _TABS_OPEN:
            sections.append(above)
        elif kind == _TAB and label and section is None:
            out.append(f"{indent}**{label}**")
            continue
        elif kind == _TAB and label:
            above = _Section(min(6, section.level + 1), label, section.anchor)
            out.append(indent + above.heading())
            continue
        else:
            if kind == _TABS_CLOSE and sections:
                sections.pop()
            again = (
                section is not None
                and above != section
                and _under_section(lines, n + 1, headings, section)
            )
            above = section if kind == _TABS_CLOSE or again else above
            if again:
                out.append(indent + section.heading())
                continue
        if out and out[-1].strip():
            out.append("")
        else:
            dropped = True
    return out


@dataclass(frozen=True)
class _Section:
    """A heading as :func:`_tab_headings` writes it again, or one level under it for a tab."""

    level: int
    text: str  # its Markdown, without an explicit id
    anchor: str

    def heading(self) -> str:
        return f"{'#' * self.level} {self.text} {{#{self.anchor}}}"


def _under_section(
    lines: list[str], start: int, headings: dict[int, markdown.Heading], section: _Section
) -> bool:
    """Whether what comes next from ``start`` would read as part of the tab before it unless its
    section's heading is written again: text, or a heading deeper than the tab's."""
    for n in range(start, len(lines)):
        if not lines[n].strip():
            continue
        if _MARK_LINE.fullmatch(lines[n]):
            return False
        return headings[n].level > section.level + 1 if n in headings else True
    return False
