"""One Docusaurus doc file as a :class:`Page`: its frontmatter, the URL it is served at, its title, and
its body with the MDX cleaned away (see :mod:`.mdx`)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from booktutor.tools import markdown
from booktutor.tools.docusaurus.anchors import heading_text
from booktutor.tools.docusaurus.mdx import clean_mdx

__all__ = [
    "DOC_SUFFIXES",
    "MAX_PAGE_BYTES",
    "Page",
    "PageError",
    "doc_url",
    "find_doc_files",
    "read_page",
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
        dirnames[:] = [d for d in dirnames if not is_hidden_name(d) and d != "node_modules"]
        for name in filenames:
            if is_hidden_name(name) or not name.endswith(DOC_SUFFIXES):
                continue
            found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).parts)



def is_hidden_name(name: str) -> bool:
    """Files and folders Docusaurus does not publish: hidden ones and ``_`` partials."""
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
            raise PageError(f"file too large ({human_size(size)} > {human_size(max_bytes)})")
        raw = file.read_bytes()
    except OSError as exc:
        raise PageError(f"cannot read file ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:  # the file grew between stat() and read
        raise PageError(f"file too large ({human_size(len(raw))} > {human_size(max_bytes)})")
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


def human_size(n: int) -> str:
    """``n`` bytes for a person: "2 MB", "1.5 KB", "12 bytes"."""
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


def number_prefix(name: str) -> int | None:
    """The number Docusaurus parses off ``01-intro`` (1); None when the name has no prefix."""
    if _IGNORED_PREFIX.match(name):
        return None
    match = _NUMBER_PREFIX.match(name)
    return int(match.group(1)) if match else None


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
    elif not fm_slug and is_category_index(file_name, dirs):
        slug = dir_slug
    else:
        slug = _resolve_path(fm_slug or fm_id or strip_number_prefix(file_name), dir_slug)
    return join_url(base_url, slug)


def is_category_index(file_name: str, dirs: tuple[str, ...]) -> bool:
    """Whether a doc is its folder's landing page (served at the folder's URL)."""
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


def join_url(base_url: str, slug: str) -> str:
    """``base_url`` and ``slug`` as one URL path, without doubled or trailing slashes."""
    base = "/" + base_url.strip("/")
    path = "/" + slug.strip("/")
    if base == "/":
        return path
    return base if path == "/" else base + path


# --------------------------------------------------------------------------- titles


def _first_heading(body: str) -> str:
    for heading in markdown.headings(markdown.parse(body)):
        text = heading_text(heading.source)
        if text:
            return text
    return ""


def _humanize(rel: PurePosixPath) -> str:
    name = rel.name[: -len(rel.suffix)] if rel.suffix else rel.name
    if name.lower() in ("index", "readme") and len(rel.parts) > 1:
        name = rel.parts[-2]
    words = re.sub(r"[-_\s]+", " ", strip_number_prefix(name)).strip()
    return (words[:1].upper() + words[1:]) if words else "Untitled"

