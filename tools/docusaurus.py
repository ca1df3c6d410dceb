"""Reading one Docusaurus doc file: frontmatter, the URL it is served at, and an MDX-free body.

The body keeps Markdown (headings, lists, tables, fenced code) but loses what only the
React build understands: ESM imports/exports, JSX/HTML tags (their text stays), comments and
admonition fences. Fenced code blocks are copied byte for byte.

Folders may carry ``_category_.json``/``.yml``/``.yaml`` metadata (sidebar label, generated
index page); :func:`read_categories` reads those and :func:`category_page` turns a generated
index page into a :class:`Page` so it can be indexed like any doc.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

__all__ = [
    "CATEGORY_FILE_NAMES",
    "Category",
    "CategoryScan",
    "Page",
    "PageError",
    "category_items",
    "category_page",
    "clean_mdx",
    "doc_url",
    "find_doc_files",
    "heading_anchor",
    "heading_text",
    "module_label",
    "read_categories",
    "read_page",
    "slugify",
    "strip_number_prefix",
]

DOC_SUFFIXES = (".md", ".mdx")


class PageError(Exception):
    """A doc file that cannot be read; ``.reason`` is a short human sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Larger files are refused: no real chapter comes near it, and a generated dump would flood the index.
MAX_PAGE_BYTES = 2_000_000


@dataclass(frozen=True)
class Page:
    """One doc page, ready for chunking."""

    path: str  # posix path relative to the docs root, e.g. "01-ros2/02-nodes-topics.md"
    title: str  # frontmatter title, else first heading, else file name humanized
    url: str  # the URL path Docusaurus serves, e.g. "/docs/ros2/01-ros2-nodes-topics"
    module: str  # first directory segment of path ("01-ros2"), "" for files at the root
    body: str  # Markdown with frontmatter removed and MDX cleaned
    content_hash: str  # sha256 hex of the raw file bytes


# --------------------------------------------------------------------------- files


def find_doc_files(root: Path) -> list[Path]:
    """Return the sorted ``.md``/``.mdx`` files under ``root``.

    Hidden files and directories, ``node_modules`` and anything whose name starts with
    ``_`` (Docusaurus partials, ``_category_`` files) are skipped.
    """
    root = Path(root)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _skipped_name(d) and d != "node_modules"]
        for name in filenames:
            if _skipped_name(name) or not name.endswith(DOC_SUFFIXES):
                continue
            found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _skipped_name(name: str) -> bool:
    return name.startswith((".", "_"))


def read_page(
    root: Path, file: Path, *, base_url: str = "/docs", max_bytes: int = MAX_PAGE_BYTES
) -> Page:
    """Read one doc file under ``root`` and return its :class:`Page`.

    Raises :class:`PageError` when the file is too large, binary, not UTF-8, outside
    ``root``, unreadable, or has frontmatter that is not a YAML mapping.
    """
    root = Path(root)
    file = Path(file)
    try:
        rel = file.resolve().relative_to(root.resolve())
    except ValueError:
        try:
            rel = file.relative_to(root)
        except ValueError:
            raise PageError("file is outside the docs root") from None
    rel_posix = PurePosixPath(*rel.parts)

    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise PageError(f"file too large ({_human_size(size)} > {_human_size(max_bytes)})")
        raw = file.read_bytes()
    except OSError as exc:
        raise PageError(f"cannot read file ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:  # the file grew between stat() and read
        raise PageError(f"file too large ({_human_size(len(raw))} > {_human_size(max_bytes)})")
    if b"\x00" in raw[:8192]:
        raise PageError("binary file (NUL byte found)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PageError("not UTF-8 text") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")

    meta, content = _split_frontmatter(text)
    body = clean_mdx(content)

    title = _meta_str(meta, "title") or _first_heading(body) or _humanize(rel_posix)
    url = doc_url(rel_posix, meta, base_url=base_url)
    module = rel_posix.parts[0] if len(rel_posix.parts) > 1 else ""
    return Page(
        path=rel_posix.as_posix(),
        title=title,
        url=url,
        module=module,
        body=body,
        content_hash=hashlib.sha256(raw).hexdigest(),
    )


def _human_size(n: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if n >= scale:
            return f"{n / scale:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{n} bytes"


# --------------------------------------------------------------------------- frontmatter

_FRONTMATTER_OPEN = re.compile(r"---[ \t]*\n")
_FRONTMATTER_CLOSE = re.compile(r"^---[ \t]*$\n?", re.MULTILINE)


def _split_frontmatter(text: str) -> tuple[dict[str, Any], str]:
    opening = _FRONTMATTER_OPEN.match(text)
    if not opening:
        return {}, text
    closing = _FRONTMATTER_CLOSE.search(text, opening.end())
    if not closing:
        raise PageError("bad frontmatter: no closing '---' line")
    source = text[opening.end() : closing.start()]
    try:
        meta = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise PageError(f"bad frontmatter: {detail[:200]}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise PageError(f"bad frontmatter: expected a mapping, got {type(meta).__name__}")
    return meta, text[closing.end() :]


def _meta_str(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


# --------------------------------------------------------------------------- URLs

# Docusaurus' default number-prefix parser: "01-intro" -> "intro", but dates and versions
# ("2021-01-31-post", "1.2-notes") keep their digits.
_IGNORED_PREFIX = re.compile(r"^\d+[-_.]\d+")
_NUMBER_PREFIX = re.compile(r"^(\d+)\s*[-_.]+\s*([^-_.\s].*)$", re.DOTALL)


def strip_number_prefix(name: str) -> str:
    """Strip a Docusaurus number prefix (``01-``, ``01_``, ``1.``) from one path segment."""
    if _IGNORED_PREFIX.match(name):
        return name
    match = _NUMBER_PREFIX.match(name)
    return match.group(2) if match else name


def doc_url(rel: PurePosixPath | str, meta: dict[str, Any], *, base_url: str = "/docs") -> str:
    """Return the URL path Docusaurus serves the doc at ``rel`` (relative to the docs root)."""
    rel = PurePosixPath(rel)
    dirs = rel.parent.parts if str(rel.parent) != "." else ()
    file_name = rel.name[: -len(rel.suffix)] if rel.suffix else rel.name

    dir_slug = "/" + "".join(strip_number_prefix(d) + "/" for d in dirs)
    fm_slug = _meta_str(meta, "slug")
    fm_id = _meta_str(meta, "id")

    if fm_slug.startswith("/"):
        slug = fm_slug
    elif not fm_slug and _is_category_index(file_name, dirs):
        slug = dir_slug
    else:
        slug = _resolve_path(fm_slug or fm_id or strip_number_prefix(file_name), dir_slug)
    return _join_url(base_url, slug)


def _is_category_index(file_name: str, dirs: tuple[str, ...]) -> bool:
    name = file_name.lower()
    return name in ("index", "readme") or (bool(dirs) and name == dirs[-1].lower())


def _resolve_path(relative: str, directory: str) -> str:
    """Resolve ``relative`` against ``directory`` (which ends with "/") like a URL would."""
    if relative.startswith("/"):
        return relative
    segments: list[str] = [s for s in directory.split("/") if s]
    parts = relative.split("/")
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if segments:
                segments.pop()
            continue
        segments.append(part)
    trailing = "/" if parts[-1] in ("", ".", "..") and segments else ""
    return "/" + "/".join(segments) + trailing


def _join_url(base_url: str, slug: str) -> str:
    base = "/" + base_url.strip("/")
    path = "/" + slug.strip("/")
    if base == "/":
        return path
    return base if path == "/" else base + path


# --------------------------------------------------------------------------- titles and anchors

_EXPLICIT_ID = re.compile(r"\s*\{#([^{}\s]+)\}\s*$")
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
    text = _EXPLICIT_ID.sub("", raw.strip())
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
    explicit = _EXPLICIT_ID.search(text)
    if explicit:
        return explicit.group(1)
    return slugify(heading_text(text))


def slugify(plain: str) -> str:
    """github-slugger's slug of already-plain text (no de-duplication)."""
    kept = [
        ch
        for ch in plain.strip().lower()
        if ch in "-_ " or unicodedata.category(ch)[0] in "LNM"
    ]
    return "".join(kept).replace(" ", "-")


_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*$")


def _first_heading(body: str) -> str:
    for line, in_code in _lines_with_fence_state(body):
        if in_code:
            continue
        match = _ATX_HEADING.match(line)
        if match:
            text = heading_text(match.group(1))
            if text:
                return text
    return ""


def _humanize(rel: PurePosixPath) -> str:
    name = rel.name[: -len(rel.suffix)] if rel.suffix else rel.name
    if name.lower() in ("index", "readme") and len(rel.parts) > 1:
        name = rel.parts[-2]
    words = re.sub(r"[-_\s]+", " ", strip_number_prefix(name)).strip()
    return (words[:1].upper() + words[1:]) if words else "Untitled"


# --------------------------------------------------------------------------- MDX cleaning

# A fence may sit inside list items (indented) or blockquotes ("> ```").
_FENCE_OPEN = re.compile(r"^((?:[ \t]*>)*[ \t]*)(`{3,}|~{3,})(.*)$")
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


def _fence_closes(line: str, char: str, length: int) -> bool:
    match = _FENCE_OPEN.match(line)
    return bool(
        match
        and match.group(2)[0] == char
        and len(match.group(2)) >= length
        and not match.group(3).strip()
    )


def _fence_opens(line: str) -> tuple[str, int] | None:
    match = _FENCE_OPEN.match(line)
    if not match:
        return None
    marker, info = match.group(2), match.group(3)
    if marker[0] == "`" and "`" in info:  # "```code```" on one line is inline code
        return None
    return marker[0], len(marker)


def _lines_with_fence_state(text: str) -> Iterator[tuple[str, bool]]:
    """Yield ``(line, in_code)`` where fence lines themselves count as code."""
    fence: tuple[str, int] | None = None
    for line in text.split("\n"):
        if fence is not None:
            yield line, True
            if _fence_closes(line, *fence):
                fence = None
            continue
        fence = _fence_opens(line)
        yield line, fence is not None


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

    i = 0
    fence: tuple[str, int] | None = None
    while i < len(lines):
        line = lines[i]
        if fence is not None:
            add(True, line)
            if _fence_closes(line, *fence):
                fence = None
            i += 1
            continue
        opened = _fence_opens(line)
        if opened:
            fence = opened
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
        suffix = f" {{#{anchor_id}}}" if anchor_id and not _EXPLICIT_ID.search(inner) else ""
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


# --------------------------------------------------------------------------- categories

# Precedence when a folder holds several of them. Docusaurus only warns that the outcome is
# undetermined; a fixed order keeps our result stable and the losers are reported.
CATEGORY_FILE_NAMES = ("_category_.json", "_category_.yml", "_category_.yaml")
_MAX_CATEGORY_BYTES = 1_000_000
_LINK_TYPES = ("doc", "generated-index")


@dataclass(frozen=True)
class Category:
    """Sidebar metadata of one docs folder, read from its ``_category_`` file."""

    folder: str  # posix path relative to the docs root, e.g. "04-vla"; "" for the root itself
    label: str  # sidebar label: the file's "label", else the folder name without number prefix
    description: str  # link.description of a generated index, else ""
    url: str  # permalink of the generated index page; "" when Docusaurus builds none
    title: str  # generated index page title: link.title, else label
    position: float | None  # the file's "position" (sidebar order), None when absent
    file: str  # posix path of the category file used, relative to the docs root
    content_hash: str  # sha256 hex of that file's raw bytes


@dataclass(frozen=True)
class CategoryScan:
    """What :func:`read_categories` found."""

    categories: dict[str, Category]  # keyed by Category.folder
    skipped: dict[str, str]  # category file path (relative posix) -> why it was not used


class _BadCategoryFile(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def read_categories(root: Path, *, base_url: str = "/docs") -> CategoryScan:
    """Read every ``_category_.json``/``.yml``/``.yaml`` under ``root``; never raises for bad files.

    Folders are walked like :func:`find_doc_files` (hidden, ``_`` and ``node_modules`` folders
    are skipped). A file that cannot be read, does not parse, is not a mapping or has a field of
    the wrong type lands in ``skipped`` with a short reason, and so does a file shadowed by
    another category file in the same folder.

    Generated index URLs assume the default autogenerated sidebar over the whole docs root
    (a hand-written ``sidebars.js`` ignores category files): only folders that contain docs
    become sidebar categories, and the root folder itself never does, so those get ``url=""``.
    """
    root = Path(root)
    found: dict[str, tuple[str, bytes, dict[str, Any]]] = {}  # folder -> (file, raw, meta)
    skipped: dict[str, str] = {}
    doc_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _skipped_name(d) and d != "node_modules"]
        rel = PurePosixPath(*Path(dirpath).relative_to(root).parts).as_posix()
        folder = "" if rel == "." else rel
        if any(not _skipped_name(n) and n.endswith(DOC_SUFFIXES) for n in filenames):
            doc_dirs.add(folder)
        for name in CATEGORY_FILE_NAMES:
            if name not in filenames:
                continue
            file = f"{folder}/{name}" if folder else name
            if folder in found:
                skipped[file] = f"ignored: {found[folder][0]} is used for this folder"
                continue
            try:
                raw, meta = _load_category_file(Path(dirpath) / name)
                _check_category_meta(meta)
            except _BadCategoryFile as exc:
                skipped[file] = exc.reason
                continue
            found[folder] = (file, raw, meta)

    urls = _generated_index_urls(found, doc_dirs, base_url)
    categories: dict[str, Category] = {}
    for folder, (file, raw, meta) in sorted(found.items()):
        link = meta.get("link")
        generated = link if isinstance(link, dict) and link.get("type") == "generated-index" else {}
        label = _category_label(folder, meta)
        position = meta.get("position")
        categories[folder] = Category(
            folder=folder,
            label=label,
            description=generated.get("description", ""),
            url=urls.get(folder, ""),
            title=generated.get("title", label),
            position=position,
            file=file,
            content_hash=hashlib.sha256(raw).hexdigest(),
        )
    return CategoryScan(categories=categories, skipped=dict(sorted(skipped.items())))


def _load_category_file(path: Path) -> tuple[bytes, dict[str, Any]]:
    try:
        if path.stat().st_size > _MAX_CATEGORY_BYTES:
            raise _BadCategoryFile(f"file too large (> {_human_size(_MAX_CATEGORY_BYTES)})")
        raw = path.read_bytes()
    except OSError as exc:
        raise _BadCategoryFile(f"cannot read file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise _BadCategoryFile("not UTF-8 text") from None
    # Docusaurus 3 feeds every variant to a YAML loader, for which an empty document is
    # simply "no metadata"; keep that instead of calling an empty .json file broken.
    if not text.strip():
        return raw, {}
    if path.suffix == ".json":
        # A real JSON parser: PyYAML (YAML 1.1) rejects some valid JSON, e.g. tab indentation.
        try:
            meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _BadCategoryFile(
                f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
    else:
        try:
            meta = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise _BadCategoryFile(f"invalid YAML: {detail[:200]}") from None
    if meta is None:
        return raw, {}
    if not isinstance(meta, dict):
        raise _BadCategoryFile(f"expected a mapping, got {_json_type(meta)}")
    return raw, meta


def _check_category_meta(meta: dict[str, Any]) -> None:
    """Reject the fields we rely on when Docusaurus would reject them too (it fails the build).

    Unknown keys are tolerated: they cannot change what we read, and dropping a whole
    category over an unrelated typo would lose its label.
    """
    _check_text(meta, "label", "")
    position = meta.get("position")
    if position is not None and (isinstance(position, bool) or not isinstance(position, (int, float))):
        raise _BadCategoryFile(f'"position" must be a number, got {_json_type(position)}')
    if "link" not in meta or meta["link"] is None:  # null explicitly turns the link off
        return
    link = meta["link"]
    if not isinstance(link, dict):
        raise _BadCategoryFile(f'"link" must be a mapping or null, got {_json_type(link)}')
    kind = link.get("type")
    if kind not in _LINK_TYPES:
        raise _BadCategoryFile(f'unknown link type {kind!r} (expected "doc" or "generated-index")')
    if kind == "doc":
        if not isinstance(link.get("id"), str) or not link["id"]:
            raise _BadCategoryFile('a "doc" link needs a string "id"')
        return
    for key in ("slug", "title", "description"):
        _check_text(link, key, "link.")


def _check_text(meta: dict[str, Any], key: str, where: str) -> None:
    # Docusaurus validates these as Joi strings, which also refuse "".
    if key in meta and (not isinstance(meta[key], str) or not meta[key]):
        raise _BadCategoryFile(
            f'"{where}{key}" must be a non-empty string, got {_json_type(meta[key])}'
        )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _category_label(folder: str, meta: Mapping[str, Any]) -> str:
    # Docusaurus would prefer the title of a conventional index doc (index.md, README.md) when
    # the file sets neither label nor link; we only know the folder here, so that case falls
    # back to the folder name like a category without any file.
    label = meta.get("label")
    if isinstance(label, str) and label:
        return label
    return strip_number_prefix(PurePosixPath(folder).name) if folder else ""


def _generated_index_urls(
    found: Mapping[str, tuple[str, bytes, dict[str, Any]]], doc_dirs: set[str], base_url: str
) -> dict[str, str]:
    """Permalinks of the generated index pages, keyed by folder.

    Without ``link.slug`` the slug is ``/category/`` plus the github-slugger slug of the label.
    One slugger serves the whole sidebar, so a repeated label gets ``-1``, ``-2``... in the
    order Docusaurus visits categories: depth first, siblings by position then name.
    """
    in_sidebar: set[str] = set()  # folders holding docs, and their ancestors
    for folder in doc_dirs:
        parts = folder.split("/") if folder else []
        for i in range(1, len(parts) + 1):
            in_sidebar.add("/".join(parts[:i]))
    children: dict[str, list[str]] = {}
    for folder in in_sidebar:
        children.setdefault(folder.rpartition("/")[0], []).append(folder)

    def position(folder: str) -> float | None:
        meta = found[folder][2] if folder in found else {}
        if meta.get("position") is not None:
            return meta["position"]
        return _number_prefix(PurePosixPath(folder).name)

    slugger = _Slugger()
    urls: dict[str, str] = {}

    def visit(parent: str) -> None:
        for folder in sorted(children.get(parent, []), key=lambda f: _order_key(position(f), f)):
            meta = found[folder][2] if folder in found else {}
            link = meta.get("link")
            if isinstance(link, dict) and link.get("type") == "generated-index":
                slug = link.get("slug") or "/category/" + slugger.slug(_category_label(folder, meta))
                urls[folder] = _join_url(base_url, slug)
            visit(folder)

    visit("")
    return urls


class _Slugger:
    """github-slugger's stateful slugger: a slug seen before gets ``-1``, ``-2``... appended."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def slug(self, text: str) -> str:
        base = slug = slugify(text)
        while slug in self._seen:
            self._seen[base] += 1
            slug = f"{base}-{self._seen[base]}"
        self._seen[slug] = 0
        return slug


def _number_prefix(name: str) -> int | None:
    """The number Docusaurus parses off ``01-intro`` (1); None when the name has no prefix."""
    if _IGNORED_PREFIX.match(name):
        return None
    match = _NUMBER_PREFIX.match(name)
    return int(match.group(1)) if match else None


def _order_key(position: float | None, path: str) -> tuple[bool, float, str]:
    # Sidebar order: by position with unpositioned items last, ties broken by file/folder name.
    return (position is None, position or 0, PurePosixPath(path).name)


def module_label(categories: Mapping[str, Category], page_path: str | PurePosixPath) -> str:
    """Sidebar label of the top-level folder holding ``page_path`` ("" for pages at the root).

    ``page_path`` is a :attr:`Page.path`. A folder without a category file gets the label
    Docusaurus would show: its name without number prefix.
    """
    parts = PurePosixPath(page_path).parts
    if len(parts) < 2:
        return ""
    category = categories.get(parts[0])
    return category.label if category else strip_number_prefix(parts[0])


def category_items(
    categories: Mapping[str, Category], folder: str, pages: Iterable[Page]
) -> list[tuple[str, str]]:
    """``(title, url)`` of the entries a folder's generated index lists, in sidebar order.

    Entries are the folder's own docs and its sub-folders that contain docs; a sub-folder is
    shown by its label and links to its generated index, else to its index doc, else to its
    first doc. Docs are ordered by their file's number prefix, as ``sidebar_position``
    frontmatter is not part of :class:`Page`.
    """
    prefix = f"{folder}/" if folder else ""
    entries: list[tuple[tuple[bool, float, str], str, str]] = []
    sub_pages: dict[str, list[Page]] = {}
    for page in pages:
        if not page.path.startswith(prefix):
            continue
        rest = page.path[len(prefix) :].split("/")
        if len(rest) == 1:
            stem = PurePosixPath(rest[0]).stem
            entries.append((_order_key(_number_prefix(stem), rest[0]), page.title, page.url))
        else:
            sub_pages.setdefault(rest[0], []).append(page)
    for name, inside in sub_pages.items():
        sub = prefix + name
        category = categories.get(sub)
        url = category.url if category and category.url else _landing_url(sub, inside)
        label = category.label if category else strip_number_prefix(name)
        explicit = category.position if category else None
        position = explicit if explicit is not None else _number_prefix(name)
        entries.append((_order_key(position, name), label, url))
    entries.sort(key=lambda entry: entry[0])
    return [(title, url) for _, title, url in entries]


def _landing_url(folder: str, pages: list[Page]) -> str:
    dirs = tuple(folder.split("/"))
    direct = [p for p in pages if PurePosixPath(p.path).parent.as_posix() == folder]
    for page in sorted(direct, key=lambda p: p.path):
        if _is_category_index(PurePosixPath(page.path).stem, dirs):
            return page.url
    return min(pages, key=lambda p: p.path.split("/")).url


def category_page(category: Category, items: Iterable[tuple[str, str]]) -> Page:
    """The generated index page of ``category`` as a :class:`Page`, ready for chunking.

    ``items`` are the ``(title, url)`` entries the page lists (see :func:`category_items`).
    The body holds the page title, the description and one bullet per entry title; the hash
    covers the category file and those titles, so renaming a child doc re-indexes the page.
    Raises :class:`ValueError` for a category without a generated index (``url == ""``).
    """
    if not category.url:
        raise ValueError(f"{category.file} has no generated index page")
    titles = [title for title, _ in items]
    lines = [f"# {category.title}", ""]
    if category.description:
        lines += [category.description.strip(), ""]
    lines += [f"- {title}" for title in titles]
    digest = hashlib.sha256(category.content_hash.encode())
    for title in titles:
        digest.update(b"\0" + title.encode("utf-8"))
    return Page(
        path=category.file,
        title=category.title,
        url=category.url,
        module=category.folder.split("/")[0],
        body="\n".join(lines).rstrip("\n") + "\n",
        content_hash=digest.hexdigest(),
    )
