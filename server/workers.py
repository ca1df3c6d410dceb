"""Several `booktutor serve` processes on one machine, on the embedded defaults.

Runs, threads and checkpoints are in Postgres, which every process shares. The local index (Qdrant
Edge) is a folder that one process opens, so `serve --workers N` without a Qdrant server keeps the
folder itself, which keeps `booktutor ingest` out while it serves, and gives each worker a copy of
the index to search, read-only. A book's index is small (5 MB for the 1,000-chunk development book),
so a copy costs a worker a fraction of a second when it starts. The copies live in
`<index folder>/serving/` and are removed when the server stops; a server that was killed leaves
them to the next one, which removes them first.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from booktutor.server.settings import Settings
from booktutor.tools.index import BookIndex, close_book_index, serve_from_copy

# Set by the parent for its workers (they inherit its environment): the copy each one copies again.
WORKER_INDEX = "BOOKTUTOR_WORKER_INDEX_COPY"


def share_local_index(index: BookIndex, settings: Settings) -> Path:
    """In the parent, holding the local index: copy it for the workers; the folder to remove at exit."""
    serving = settings.qdrant_path / "serving"
    # This process holds the index folder, so no server is using what an earlier one left here.
    shutil.rmtree(serving, ignore_errors=True)
    template = serving / "index"
    index.client.copy_to(template)
    os.environ[WORKER_INDEX] = str(template)
    return serving


def take_worker_copy(settings: Settings) -> Path | None:
    """In a worker of such a server: open the local index as a copy of this process's own."""
    template = os.environ.get(WORKER_INDEX)
    if not template:
        return None
    copy = Path(template).parent / f"worker-{os.getpid()}"
    shutil.copytree(template, copy)
    serve_from_copy(settings.qdrant_path, copy)
    return copy


def drop_worker_copy(index: BookIndex, copy: Path) -> None:
    """In a worker stopping: close its index and remove the copy it searched."""
    close_book_index(index)
    shutil.rmtree(copy, ignore_errors=True)
