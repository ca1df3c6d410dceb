"""Ingest a Docusaurus docs folder into the book index, incrementally.

Unchanged files (same sha256 as in the index) are skipped, changed files are re-chunked and
rewritten, files gone from the folder lose their chunks. Every file is written whole before its old
chunks are removed, so an ingest stopped half way leaves a usable index and the next run finishes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tools.chunking import chunk_markdown
from tools.docusaurus import PageError, find_doc_files, read_page
from tools.errors import IngestError
from tools.index import BookIndex, ChunkRecord

# Chunks embedded and upserted together: large enough to keep onnxruntime busy, small enough to
# keep memory flat on a book of any size.
WRITE_BATCH = 256


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


def page_records(root: Path, file: Path, *, base_url: str) -> tuple[str, str, list[ChunkRecord]]:
    """Read and chunk one file: (relative path, content hash, chunk records). Raises PageError."""
    page = read_page(root, file, base_url=base_url)
    records = [
        ChunkRecord(
            path=page.path,
            index=chunk.index,
            text=chunk.text,
            title=page.title,
            headings=chunk.headings,
            page_url=page.url,
            anchor=chunk.anchor,
            module=page.module,
            file_hash=page.content_hash,
        )
        for chunk in chunk_markdown(page.body)
    ]
    return page.path, page.content_hash, records


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
    if not root.exists():
        raise IngestError(f"Docs folder not found: {root}", code="docs_not_found")
    if not root.is_dir():
        raise IngestError(f"Not a folder: {root}. Pass the docs folder of your book.", code="docs_not_a_folder")
    files = find_doc_files(root)
    if not files:
        raise IngestError(
            f"No Markdown (.md or .mdx) files under {root}. Pass your book's docs folder.", code="docs_empty"
        )

    started = time.perf_counter()
    report = IngestReport(root=str(root), files=len(files))
    if rebuild:
        index.drop()
    known = index.manifest()
    previous = set(known)
    seen: set[str] = set()
    pending: list[ChunkRecord] = []

    def flush() -> None:
        index.write(pending, replacing=previous)
        report.chunks_written += len(pending)
        pending.clear()

    for file in files:
        relative = file.relative_to(root).as_posix()
        seen.add(relative)
        try:
            path, content_hash, records = page_records(root, file, base_url=base_url)
        except PageError as exc:
            report.failed.append({"path": relative, "reason": exc.reason})
        else:
            if known.get(path) == content_hash:
                report.unchanged += 1
            elif not records:
                report.failed.append({"path": path, "reason": "no text after removing markup"})
            else:
                if path in known:
                    report.updated += 1
                else:
                    report.added += 1
                pending.extend(records)
                if len(pending) >= WRITE_BATCH:
                    flush()
        if on_file:
            on_file(relative)
    flush()

    gone = sorted(set(known) - seen)
    index.remove_paths(gone)
    report.removed = len(gone)
    report.seconds = time.perf_counter() - started
    return report
