"""The local index on Qdrant Edge: Qdrant's own engine in-process, one shard per collection.

Qdrant Edge (`qdrant-edge-py`) runs the Qdrant server's Rust engine in the process: the same scoring
formulas (cosine, sparse dot product with the IDF modifier, RRF), segments on disk with a write-ahead
log, and a hybrid query in about 1.5 ms at 19,000 chunks, with 27 MB of heap (benchmarks/local_search.py).
It replaced qdrant-client's local mode, which re-implements the scoring in Python (half a second a
query) and keeps the whole collection in Python objects, plus the numpy mirror booktutor ran on it.

`EdgeClient` answers the calls `BookIndex` makes, in Qdrant Edge's own types (`qdrant_edge`), which
are also the types the index speaks to a Qdrant server (tools/qdrant_server.py translates them for
qdrant-client). So the local index never imports qdrant-client, about 45 MB of modules. Each
collection is a shard folder under `<folder>/edge/`. A folder belongs to one process at a time (Edge
locks its write-ahead log; the client also locks the folder, so that the error comes at open, not at
the first write). Several server processes each open a copy of their own, read-only (`copy_to`,
`tools.index.serve_from_copy`).
"""

from __future__ import annotations

import fcntl
import shutil
import threading
from pathlib import Path
from typing import Any, Sequence

import qdrant_edge as qe

from booktutor.tools.errors import BookIndexError


class EdgeFolderLocked(RuntimeError):
    """Another process holds the folder."""


class EdgeClient:
    """Collections of one folder, each a Qdrant Edge shard."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path / ".lock", "a+")  # noqa: SIM115 - held for the client's life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.close()
            raise EdgeFolderLocked(str(self.path)) from exc
        self._shards: dict[str, qe.EdgeShard] = {}
        self._dimensions: dict[str, dict[str, int]] = {}  # collection -> dense vector name -> size
        self._guard = threading.Lock()

    # -- collections --------------------------------------------------------------------------

    def _folder(self, name: str) -> Path:
        # Not local mode's `collection/<name>/` layout, which earlier versions wrote to the same folder.
        return self.path / "edge" / name

    def collection_exists(self, name: str) -> bool:
        return name in self._shards or (self._folder(name) / "segments").is_dir()

    def has_local_mode_collection(self, name: str) -> bool:
        """Whether the folder holds collection `name` as qdrant-client's local mode wrote it (no longer read)."""
        return (self.path / "collection" / name / "storage.sqlite").is_file()

    def check_writable(self) -> None:
        """Refuses a change to a read-only copy, with what to do instead."""
        if self.read_only:
            raise BookIndexError(
                "This server's processes each search a read-only copy of the local index, so it cannot be "
                "changed while they run. Stop the server, run `booktutor ingest`, and start it again; or "
                "ingest into a Qdrant server (QDRANT_URL), which can change while it serves.",
                code="index_read_only",
            )

    def copy_to(self, target: Path) -> None:
        """Copy every collection's shard into the folder `target`, which must not exist yet.

        Loaded shards are closed first, so their files are flushed and whole when copied; they load
        again on their next use.
        """
        with self._guard:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            if (self.path / "edge").is_dir():
                shutil.copytree(self.path / "edge", target / "edge")
            else:  # nothing ingested yet
                (target / "edge").mkdir(parents=True)

    def _shard(self, name: str) -> qe.EdgeShard:
        with self._guard:
            if name not in self._shards:
                if not self.collection_exists(name):
                    raise ValueError(f"Collection {name} not found")
                self._shards[name] = qe.EdgeShard.load(str(self._folder(name)))
            return self._shards[name]

    def create_collection(self, name: str, config: qe.EdgeConfig) -> None:
        self.check_writable()
        with self._guard:
            self._shards[name] = qe.EdgeShard.create(str(self._folder(name)), config)
            self._dimensions[name] = {key: p.size for key, p in config.vectors.items()}

    def create_payload_index(self, name: str, field_name: str, field_schema: qe.PayloadSchemaType) -> None:
        self.check_writable()
        self._shard(name).update(qe.UpdateOperation.create_field_index(field_name, field_schema))

    def vector_sizes(self, name: str) -> dict[str, int]:
        """Each dense vector's size.

        Edge has no call that returns a shard's configuration, so an opened shard's sizes are read off
        a stored point (an empty shard reports none, and is refilled by the next ingest).
        """
        shard = self._shard(name)
        if name not in self._dimensions:
            records, _ = shard.scroll(qe.ScrollRequest(limit=1, with_vector=True, with_payload=False))
            vectors = (records[0].vector or {}) if records else {}
            self._dimensions[name] = {key: len(v) for key, v in vectors.items() if isinstance(v, list)}
        return dict(self._dimensions[name])

    def collection_names(self) -> list[str]:
        return sorted(p.name for p in (self.path / "edge").glob("*") if (p / "segments").is_dir())

    def delete_collection(self, name: str) -> None:
        self.check_writable()
        with self._guard:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            self._dimensions.pop(name, None)
            shutil.rmtree(self._folder(name), ignore_errors=True)

    def close(self) -> None:
        with self._guard:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
        if not self._lock_file.closed:
            self._lock_file.close()  # closing the file releases the lock

    # -- points -------------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[qe.Point]) -> None:
        """Written to the shard's write-ahead log before returning: a crash after this loses nothing."""
        self.check_writable()
        self._shard(name).update(qe.UpdateOperation.upsert_points(list(points)))

    def delete(self, name: str, points_selector: qe.Filter) -> None:
        self.check_writable()
        self._shard(name).update(qe.UpdateOperation.delete_points_by_filter(points_selector))

    def count(self, name: str) -> int:
        return self._shard(name).count(qe.CountRequest(exact=True))

    def scroll(
        self,
        name: str,
        scroll_filter: qe.Filter | None = None,
        limit: int = 10,
        offset: Any = None,
        with_payload: bool | list[str] = True,
        with_vectors: bool | list[str] = False,
    ) -> tuple[list[qe.Record], Any]:
        return self._shard(name).scroll(
            qe.ScrollRequest(
                offset=offset,
                limit=limit,
                filter=scroll_filter,
                with_payload=qe.PayloadSelector.Include(with_payload) if isinstance(with_payload, list) else with_payload,
                with_vector=with_vectors,
            )
        )

    def query(self, name: str, request: qe.QueryRequest) -> list[qe.ScoredPoint]:
        return self._shard(name).query(request)

    def sparse_match(self, name: str, using: str, vector: qe.SparseVector) -> bool:
        """Whether any point's sparse vector `using` shares a dimension with `vector`."""
        request = qe.QueryRequest(limit=1, query=qe.Query.Nearest(vector, using=using), with_payload=False)
        return bool(self._shard(name).query(request))
