"""The docs folder an ingest reads: it must exist, be a folder and hold Markdown.

Its own light module so the CLI refuses a wrong path at once, before it loads the embedding model
or starts the database; the ingest itself runs the same check.
"""

from __future__ import annotations

from pathlib import Path

from booktutor.tools.docusaurus.pages import find_doc_files
from booktutor.tools.errors import IngestError


def check_docs_folder(root: Path) -> list[Path]:
    """The Markdown files under `root`; an `IngestError` saying what is wrong when there are none."""
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
    return files
