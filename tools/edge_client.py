"""The local index on Qdrant Edge: Qdrant's own engine in-process, one shard per collection.

Qdrant Edge (`qdrant-edge-py`) runs the Qdrant server's Rust engine in the process: the same scoring
formulas (cosine, sparse dot product with the IDF modifier, RRF), segments on disk with a write-ahead
log, and a hybrid query in about 1.5 ms at 19,000 chunks, with 27 MB of heap (benchmarks/local_search.py).
It replaced qdrant-client's local mode, which re-implements the scoring in Python (half a second a
query) and keeps the whole collection in Python objects, plus the numpy mirror booktutor ran on it.

`EdgeClient` answers the few `QdrantClient` calls `BookIndex` makes, taking and returning
qdrant-client's models, so the index code stays one for a server and for the local folder. Each
collection is a shard folder under `<folder>/edge/`. A folder belongs to one process at a time (Edge
locks its write-ahead log; the client also locks the folder, so that the error comes at open, not at
the first write).
"""

from __future__ import annotations

import fcntl
import shutil
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import qdrant_edge as qe
from qdrant_client import models


class EdgeFolderLocked(RuntimeError):
    """Another process holds the folder."""


class EdgeClient:
    """Collections of one folder, each a Qdrant Edge shard; qdrant-client's calling conventions."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
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

    def _shard(self, name: str) -> qe.EdgeShard:
        with self._guard:
            if name not in self._shards:
                if not self.collection_exists(name):
                    raise ValueError(f"Collection {name} not found")
                self._shards[name] = qe.EdgeShard.load(str(self._folder(name)))
            return self._shards[name]

    def create_collection(
        self,
        name: str,
        vectors_config: dict[str, models.VectorParams],
        sparse_vectors_config: dict[str, models.SparseVectorParams] | None = None,
    ) -> None:
        distances = {
            models.Distance.COSINE: qe.Distance.Cosine,
            models.Distance.DOT: qe.Distance.Dot,
            models.Distance.EUCLID: qe.Distance.Euclid,
        }
        # Dense vectors stay in their files until a search reads them (`Cold`): `Cached` would map a
        # whole preallocated 32 MB file into every process that opens even a small book.
        config = qe.EdgeConfig(
            vectors={
                key: qe.EdgeVectorParams(size=p.size, distance=distances[p.distance], memory=qe.Memory.Cold)
                for key, p in vectors_config.items()
            },
            sparse_vectors={
                key: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf if p.modifier == models.Modifier.IDF else None)
                for key, p in (sparse_vectors_config or {}).items()
            },
        )
        with self._guard:
            self._shards[name] = qe.EdgeShard.create(str(self._folder(name)), config)
            self._dimensions[name] = {key: p.size for key, p in vectors_config.items()}

    def create_payload_index(self, name: str, field_name: str, field_schema: models.PayloadSchemaType) -> None:
        schema = {
            models.PayloadSchemaType.KEYWORD: qe.PayloadSchemaType.Keyword,
            models.PayloadSchemaType.INTEGER: qe.PayloadSchemaType.Integer,
        }[field_schema]
        self._shard(name).update(qe.UpdateOperation.create_field_index(field_name, schema))

    def get_collection(self, name: str) -> Any:
        """Only what `BookIndex` reads: the dense vectors' sizes (`config.params.vectors[name].size`).

        Edge has no call that returns a shard's configuration, so an opened shard's sizes are read off
        a stored point (an empty shard reports none, and is refilled by the next ingest).
        """
        shard = self._shard(name)
        if name not in self._dimensions:
            records, _ = shard.scroll(qe.ScrollRequest(limit=1, with_vector=True, with_payload=False))
            vectors = (records[0].vector or {}) if records else {}
            self._dimensions[name] = {key: len(v) for key, v in vectors.items() if isinstance(v, list)}
        # The distance is not read back either; BookIndex only checks sizes.
        vectors = {key: models.VectorParams(size=size, distance=models.Distance.COSINE) for key, size in self._dimensions[name].items()}
        return SimpleNamespace(config=SimpleNamespace(params=SimpleNamespace(vectors=vectors)))

    def get_collections(self) -> Any:
        names = sorted(p.name for p in (self.path / "edge").glob("*") if (p / "segments").is_dir())
        return models.CollectionsResponse(collections=[models.CollectionDescription(name=n) for n in names])

    def delete_collection(self, name: str) -> None:
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

    def upsert(self, name: str, points: Sequence[models.PointStruct], wait: bool = True) -> None:
        """Written to the shard's write-ahead log before returning: a crash after this loses nothing."""
        edge_points = [qe.Point(_edge_id(p.id), _edge_vectors(p.vector), p.payload) for p in points]
        self._shard(name).update(qe.UpdateOperation.upsert_points(edge_points))

    def delete(self, name: str, points_selector: models.Filter, wait: bool = True) -> None:
        self._shard(name).update(qe.UpdateOperation.delete_points_by_filter(_edge_filter(points_selector)))

    def count(self, name: str, exact: bool = True) -> Any:
        return SimpleNamespace(count=self._shard(name).count(qe.CountRequest(exact=True)))

    def scroll(
        self,
        name: str,
        scroll_filter: models.Filter | None = None,
        limit: int = 10,
        offset: Any = None,
        with_payload: bool | list[str] = True,
        with_vectors: bool | list[str] = False,
    ) -> tuple[list[models.Record], Any]:
        records, next_offset = self._shard(name).scroll(
            qe.ScrollRequest(
                offset=offset,
                limit=limit,
                filter=_edge_filter(scroll_filter),
                with_payload=qe.PayloadSelector.Include(with_payload) if isinstance(with_payload, list) else with_payload,
                with_vector=with_vectors,
            )
        )
        out = [models.Record(id=str(r.id), payload=r.payload, vector=_client_vectors(r.vector)) for r in records]
        return out, next_offset

    def query_points(
        self,
        name: str,
        query: Any = None,
        using: str | None = None,
        prefetch: Sequence[models.Prefetch] | None = None,
        query_filter: models.Filter | None = None,
        limit: int = 10,
        with_payload: bool = False,
    ) -> Any:
        """A nearest-neighbour query on one vector, or RRF over prefetches (what `BookIndex` asks)."""
        request = qe.QueryRequest(
            limit=limit,
            query=_edge_query(query, using),
            prefetches=[
                qe.Prefetch(limit=p.limit, query=_edge_query(p.query, p.using), filter=_edge_filter(p.filter))
                for p in prefetch or ()
            ]
            or None,
            filter=_edge_filter(query_filter),
            with_payload=with_payload,
        )
        hits = self._shard(name).query(request)
        return SimpleNamespace(
            points=[models.ScoredPoint(id=str(h.id), version=h.version, score=h.score, payload=h.payload) for h in hits]
        )


# -- translating qdrant-client's models ------------------------------------------------------------


def _edge_id(point_id: Any) -> Any:
    return uuid.UUID(point_id) if isinstance(point_id, str) else point_id


def _edge_vectors(vectors: dict[str, Any]) -> dict[str, Any]:
    return {
        key: qe.SparseVector(list(v.indices), list(v.values)) if isinstance(v, models.SparseVector) else list(v)
        for key, v in vectors.items()
    }


def _client_vectors(vectors: Any) -> Any:
    if not vectors:
        return None
    return {
        key: models.SparseVector(indices=list(v.indices), values=list(v.values)) if isinstance(v, qe.SparseVector) else v
        for key, v in vectors.items()
    }


def _edge_query(query: Any, using: str | None) -> Any:
    if query is None:
        return None
    if isinstance(query, models.FusionQuery):
        if query.fusion != models.Fusion.RRF:
            raise NotImplementedError(f"fusion {query.fusion}")
        return qe.Fusion.Rrf(k=RRF_K)
    if isinstance(query, models.SparseVector):
        return qe.Query.Nearest(qe.SparseVector(list(query.indices), list(query.values)), using=using)
    return qe.Query.Nearest([float(x) for x in query], using=using)


# Qdrant's default RRF constant (a point at 0-based rank r scores 1 / (r + 2)); qdrant-client's
# FusionQuery carries no k, so the server's default is the one to match. tools/retrieval.py fuses
# passage rankings with it too.
RRF_K = 2


def _edge_filter(found: models.Filter | None) -> qe.Filter | None:
    if found is None:
        return None

    def conditions(items: Any) -> list | None:
        if items is None:
            return None
        return [_edge_condition(c) for c in (items if isinstance(items, list) else [items])]

    return qe.Filter(must=conditions(found.must), should=conditions(found.should), must_not=conditions(found.must_not))


def _edge_condition(condition: Any) -> Any:
    if isinstance(condition, models.Filter):
        return _edge_filter(condition)
    if isinstance(condition, models.HasIdCondition):
        return qe.HasIdCondition({_edge_id(i) for i in condition.has_id})
    if isinstance(condition, models.FieldCondition):
        match = condition.match
        if isinstance(match, models.MatchValue):
            return qe.FieldCondition(key=condition.key, match=qe.MatchValue(match.value))
        if isinstance(match, models.MatchAny):
            return qe.FieldCondition(key=condition.key, match=qe.MatchAny(list(match.any)))
    raise NotImplementedError(f"condition {condition!r}")


