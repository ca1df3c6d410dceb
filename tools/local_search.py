"""Vectorised hybrid search for an index in Qdrant's local mode.

Local mode scores sparse vectors one point at a time in pure Python and re-normalises every dense
vector on each query, which costs about half a second per hybrid query at 19,000 chunks. Local mode
also locks its folder to one process, so that process sees every write. `LocalSearch` keeps a mirror
of the collection's vectors in numpy (a unit-length float32 matrix and an inverted index of the BM25
vectors) and answers the query Qdrant would: cosine top-N, sparse dot-product top-N with Qdrant's IDF
modifier (points sharing no term with the query are left out, as Qdrant does), fused with Qdrant's
Reciprocal Rank Fusion formula. A Qdrant server does all of this natively and never uses this module.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Qdrant's default RRF constant: a point at 0-based rank r in one ranking scores 1 / (r + RRF_K).
RRF_K = 2


@dataclass(frozen=True)
class Row:
    """One point: its vectors, and its payload (local mode would deep-copy it on every read)."""

    id: str
    dense: np.ndarray  # float32, unit length
    terms: np.ndarray  # int64 sparse indices
    weights: np.ndarray  # float32 sparse values
    payload: dict[str, Any]  # langchain-qdrant layout: page_content + metadata

    @property
    def path(self) -> str:
        return self.payload["metadata"]["path"]


@dataclass(frozen=True)
class Scope:
    """Which points a search may return: a page (by doc path or served URL) and/or a module."""

    page_path: str | None = None
    page_url: str | None = None
    module: str | None = None


class _Snapshot:
    """Immutable arrays built from the rows; a search reads one without holding the lock."""

    def __init__(self, rows: Sequence[Row], dimensions: int) -> None:
        self.rows = list(rows)
        self.dense = (
            np.stack([row.dense for row in rows]) if rows else np.zeros((0, dimensions), dtype=np.float32)
        )
        metadata = [row.payload["metadata"] for row in rows]
        self.paths = np.array([meta["path"] for meta in metadata], dtype=object)
        self.page_urls = np.array([meta["page_url"] for meta in metadata], dtype=object)
        self.modules = np.array([meta["module"] for meta in metadata], dtype=object)
        # Each row's place in point-id order: equal scores are ranked by it (see `_top`).
        self.id_ranks = np.empty(len(rows), dtype=np.int64)
        self.id_ranks[np.argsort(np.array([row.id for row in rows], dtype=str), kind="stable")] = np.arange(len(rows))
        # Inverted index as three parallel arrays sorted by term: a term's postings are one slice.
        lengths = [len(row.terms) for row in rows]
        all_terms = np.concatenate([row.terms for row in rows]) if rows else np.zeros(0, dtype=np.int64)
        all_weights = np.concatenate([row.weights for row in rows]) if rows else np.zeros(0, dtype=np.float32)
        all_rows = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        order = np.argsort(all_terms, kind="stable")
        self.terms = all_terms[order]
        self.weights = all_weights[order]
        self.posting_rows = all_rows[order]

    def mask(self, scope: Scope) -> np.ndarray | None:
        keep = None
        if scope.page_path is not None or scope.page_url is not None:
            keep = (self.paths == scope.page_path) | (self.page_urls == scope.page_url)
        if scope.module is not None:
            in_module = self.modules == scope.module
            keep = in_module if keep is None else keep & in_module
        return keep

    def dense_top(self, query: np.ndarray, limit: int, keep: np.ndarray | None) -> list[tuple[int, float]]:
        if not self.rows:
            return []
        norm = float(np.linalg.norm(query))
        scores = self.dense @ (query / norm if norm else query)
        if keep is not None:
            scores = np.where(keep, scores, -np.inf)
        return _top(scores, limit, self.id_ranks)

    def sparse_top(
        self, terms: Sequence[int], weights: Sequence[float], limit: int, keep: np.ndarray | None
    ) -> list[tuple[int, float]]:
        total = len(self.rows)
        scores = np.full(total, -np.inf, dtype=np.float64)
        for term, weight in zip(terms, weights):
            start, end = np.searchsorted(self.terms, [term, term + 1])
            if start == end:
                continue
            rows = self.posting_rows[start:end]
            # Qdrant's IDF modifier: ln((N - df + 0.5) / (df + 0.5) + 1) over the live points.
            df = end - start
            idf = math.log((total - df + 0.5) / (df + 0.5) + 1)
            touched = scores[rows]
            scores[rows] = np.where(np.isneginf(touched), 0.0, touched) + weight * idf * self.weights[start:end]
        if keep is not None:
            scores = np.where(keep, scores, -np.inf)
        return _top(scores, limit, self.id_ranks)


def _top(scores: np.ndarray, limit: int, id_ranks: np.ndarray) -> list[tuple[int, float]]:
    """(row, score) of the `limit` best finite scores, best first, equal scores in point-id order.

    Chunks often tie (two chunks sharing the query's terms equally get the same BM25 score). numpy's
    quicksort and introselect order equal keys differently on different CPUs (their SIMD kernels
    differ), so without an explicit tie-break the same book would rank differently per machine.
    Qdrant does not define an order among equal scores either, so any fixed one is Qdrant's answer.
    """
    candidates = np.flatnonzero(np.isfinite(scores))
    if len(candidates) > limit:
        # Keep every point tied with the limit-th best, so the tie-break below makes the cut, not chance.
        cut = len(candidates) - limit
        kth = np.partition(scores[candidates], cut)[cut]
        candidates = candidates[scores[candidates] >= kth]
    best = candidates[np.lexsort((id_ranks[candidates], -scores[candidates]))][:limit]
    return list(zip(best.tolist(), scores[best].tolist(), strict=True))


def fuse(rankings: Iterable[Sequence[int]], limit: int) -> list[tuple[int, float]]:
    """Reciprocal Rank Fusion as Qdrant computes it, ties kept in first-seen order."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rank + RRF_K)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)[:limit]


class LocalSearch:
    """The vector mirror of one local-mode collection, kept in step with the writes `BookIndex` makes."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._rows: dict[str, Row] = {}
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    @staticmethod
    def row(
        point_id: str, dense: Sequence[float], terms: Sequence[int], weights: Sequence[float], payload: dict[str, Any]
    ) -> Row:
        vector = np.asarray(dense, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        # Qdrant stores cosine vectors normalised, so a dot product is the cosine.
        return Row(
            id=str(point_id),
            dense=vector / norm if norm else vector,
            terms=np.asarray(terms, dtype=np.int64),
            weights=np.asarray(weights, dtype=np.float32),
            payload=payload,
        )

    def upsert(self, rows: Iterable[Row]) -> None:
        with self._lock:
            for row in rows:
                self._rows[row.id] = row
            self._snapshot = None

    def delete(self, *, paths: Iterable[str], keep_ids: Iterable[str] = ()) -> None:
        """Drop the rows of `paths`, except `keep_ids` (the file versions just written)."""
        paths, keep = set(paths), set(keep_ids)
        with self._lock:
            for point_id in [i for i, row in self._rows.items() if row.path in paths and i not in keep]:
                del self._rows[point_id]
            self._snapshot = None

    def search(
        self,
        dense: Sequence[float],
        terms: Sequence[int],
        weights: Sequence[float],
        *,
        limit: int,
        scope: Scope = Scope(),
    ) -> list[tuple[Row, float]]:
        """The best `limit` points with their fused scores, best first."""
        snapshot = self._current()
        keep = snapshot.mask(scope)
        dense_hits = snapshot.dense_top(np.asarray(dense, dtype=np.float32), limit, keep)
        sparse_hits = snapshot.sparse_top(terms, weights, limit, keep)
        rankings = ([row for row, _ in dense_hits], [row for row, _ in sparse_hits])
        return [(snapshot.rows[r], score) for r, score in fuse(rankings, limit)]

    def rows_in(self, scope: Scope) -> list[Row]:
        """Every point in `scope` (a page's chunks), in no particular order."""
        snapshot = self._current()
        keep = snapshot.mask(scope)
        return snapshot.rows if keep is None else [snapshot.rows[r] for r in np.flatnonzero(keep)]

    def _current(self) -> _Snapshot:
        with self._lock:
            if self._snapshot is None:
                self._snapshot = _Snapshot(list(self._rows.values()), self.dimensions)
            return self._snapshot
