"""Ingest a Docusaurus docs folder into the book index, incrementally.

Each file is fingerprinted before it is parsed: unchanged files (same fingerprint as in the index)
cost one read and one hash, changed files are re-chunked and rewritten, files gone from the folder
lose their chunks. Every file is written whole before its old chunks are removed, so an ingest
stopped half way leaves a usable index and the next run finishes it. Generated index pages that
`_category_.json` files ask Docusaurus for are indexed like pages.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from booktutor.tools.chunking import chunk_markdown
from booktutor.tools.docusaurus.categories import Category, category_items, category_page, module_label, read_categories
from booktutor.tools.docs_folder import check_docs_folder
from booktutor.tools.docusaurus.pages import MAX_PAGE_BYTES, Page, PageError, read_page
from booktutor.tools.index import BookIndex, ChunkRecord

# Chunks embedded and upserted together: few enough to keep memory flat on a book of any size, many
# enough that per-upsert overhead does not matter.
WRITE_BATCH = 256
# Part of every fingerprint: bump it when chunking or the stored record changes, and the next ingest
# rewrites every page instead of keeping chunks made the old way.
RECORD_FORMAT = "3"  # 3: a tab's label heads its text (tools/docusaurus/mdx.py)


@dataclass
class IngestReport:
    """What an ingest did, for the summary line and `--json`."""

    root: str
    files: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_written: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


def fingerprint(content_hash: str, *, base_url: str, module: str) -> str:
    """What decides a page's chunks: its bytes, and the settings and labels that shape its records."""
    recipe = "\x00".join((RECORD_FORMAT, base_url, module, content_hash))
    return hashlib.sha256(recipe.encode()).hexdigest()


def content_hash_of(file: Path) -> str | None:
    """sha256 of a doc file's bytes, or None when only `read_page` can say what is wrong with it."""
    try:
        if file.stat().st_size > MAX_PAGE_BYTES:
            return None
        with file.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def page_records(page: Page, *, file_hash: str, module: str) -> list[ChunkRecord]:
    """The chunk records of one page, stamped with its fingerprint."""
    return [
        ChunkRecord(
            path=page.path,
            index=chunk.index,
            text=chunk.text,
            title=page.title,
            headings=chunk.headings,
            page_url=page.url,
            anchor=chunk.anchor,
            module=page.module,
            module_label=module,
            file_hash=file_hash,
        )
        for chunk in chunk_markdown(page.body)
    ]


def ingest_book(
    root: Path,
    index: BookIndex,
    *,
    base_url: str = "/docs",
    rebuild: bool = False,
    on_file: Callable[[str], None] | None = None,
) -> IngestReport:
    """Bring the index in line with the docs folder at `root`."""
    root = Path(root)
    files = check_docs_folder(root)
    index.check_writable()  # before any page is read and embedded

    started = time.perf_counter()
    report = IngestReport(root=str(root), files=len(files))
    if rebuild:
        index.drop()
    scan = read_categories(root, base_url=base_url)
    report.failed.extend({"path": path, "reason": reason} for path, reason in scan.skipped.items())
    known = index.files()
    previous = set(known)
    seen: set[str] = set()
    listed: list[Page] = []  # every page, parsed or not, for the generated index pages
    pending: list[ChunkRecord] = []

    def flush() -> None:
        index.write(pending, replacing=previous)
        report.chunks_written += len(pending)
        pending.clear()

    def take(path: str, records: list[ChunkRecord]) -> None:
        if path in known:
            report.updated += 1
        else:
            report.added += 1
        pending.extend(records)
        if len(pending) >= WRITE_BATCH:
            flush()

    for file in files:
        relative = file.relative_to(root).as_posix()
        seen.add(relative)
        module = _module_label(scan.categories, relative)
        raw_hash = content_hash_of(file)
        stamp = fingerprint(raw_hash, base_url=base_url, module=module) if raw_hash else None
        indexed = known.get(relative)
        if stamp and indexed and indexed.file_hash == stamp:
            report.unchanged += 1
            # Not parsed: a generated index lists it by the title and URL the index remembers.
            listed.append(
                Page(path=relative, title=indexed.title, url=indexed.url, module="", body="", content_hash=raw_hash)
            )
        else:
            try:
                page = read_page(root, file, base_url=base_url)
            except PageError as exc:
                report.failed.append({"path": relative, "reason": exc.reason})
            else:
                listed.append(page)
                stamp = fingerprint(page.content_hash, base_url=base_url, module=module)
                records = page_records(page, file_hash=stamp, module=module)
                if records:
                    take(relative, records)
                else:
                    report.failed.append({"path": relative, "reason": "no text after removing markup"})
        if on_file:
            on_file(relative)

    for page in _generated_index_pages(scan.categories, listed):
        seen.add(page.path)
        report.files += 1
        module = _module_label(scan.categories, page.path)
        stamp = fingerprint(page.content_hash, base_url=base_url, module=module)
        indexed = known.get(page.path)
        if indexed and indexed.file_hash == stamp:
            report.unchanged += 1
        else:
            take(page.path, page_records(page, file_hash=stamp, module=module))
    flush()

    gone = sorted(set(known) - seen)
    index.remove_paths(gone)
    report.removed = len(gone)
    report.seconds = time.perf_counter() - started
    return report


def _module_label(categories: Mapping[str, Category], path: str) -> str:
    """The label of the page's module, when its `_category_` file gives it one.

    Only labels an author wrote go into the chunks: a bare folder name ("v2", "ros2") tells the
    embedding little, and leaving it out keeps copies of a page in other folders byte-identical,
    so they share one embedding.
    """
    top = path.split("/", 1)[0]
    return module_label(categories, path) if "/" in path and top in categories else ""


def _generated_index_pages(categories: Mapping[str, Category], pages: Iterable[Page]) -> list[Page]:
    """The category pages Docusaurus generates (title, description, the docs they list)."""
    pages = list(pages)
    return [
        category_page(category, category_items(categories, category.folder, pages))
        for category in categories.values()
        if category.url
    ]
