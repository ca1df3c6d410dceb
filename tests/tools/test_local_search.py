"""The local-mode search mirror answers what Qdrant's own hybrid query answers (exactly, up to the order
of points with equal scores, which Qdrant leaves undefined), and follows writes."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from qdrant_client import models
from qdrant_client.hybrid.fusion import reciprocal_rank_fusion

from tests.conftest import EVAL_SET, SAMPLE_BOOK
from booktutor.tools.evaluation import load_questions
from booktutor.tools.index import (
    DENSE,
    PREFETCH,
    SPARSE,
    BookIndex,
    open_book_index,
    search_filter,
    search_scope,
)
from booktutor.tools.ingest import ingest_book
from booktutor.tools.local_search import LocalSearch, Scope, fuse


def ids(passages) -> list[str]:
    return [p["id"] for p in passages]


def as_tie_broken_by(ours: list[tuple[str, float]], theirs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Qdrant's ranking `theirs` with each run of tied points put in the order `ours` gives them.

    Qdrant defines no order among equal scores: local mode sorts with numpy's unstable argsort, whose
    order for equal keys depends on the CPU's sort kernel (AVX-512, AVX2 or none) and on storage
    order. Every such reordering is therefore an answer Qdrant could give, and the mirror must give
    one of them. Scores within 1e-5 count as tied, as the two sides add in different float precisions.
    `theirs` is asked for 2 x PREFETCH points, so that a run cut at PREFETCH is whole.
    """
    runs: list[list[tuple[str, float]]] = []
    for point_id, score in theirs:
        if runs and score == pytest.approx(runs[-1][-1][1], rel=1e-5):
            runs[-1].append((point_id, score))
        else:
            runs.append([(point_id, score)])
    # Unless Qdrant ran out of points, its last run may go on past what it was asked for.
    whole = runs if len(theirs) < 2 * PREFETCH else runs[:-1]
    assert sum(map(len, whole)) >= min(PREFETCH, len(theirs)), "a run of ties is longer than PREFETCH: ask for more"
    place = {point_id: rank for rank, (point_id, _) in enumerate(ours)}
    return [hit for run in whole for hit in sorted(run, key=lambda hit: place.get(hit[0], len(ours)))][:PREFETCH]


def legs(index: BookIndex, question: str, page: str | None = None, module: str | None = None):
    """Each leg as (the mirror's top PREFETCH rows with scores, Qdrant's top 2 x PREFETCH ids with scores)."""
    snapshot = index.mirror()._current()
    keep = snapshot.mask(search_scope(page, module))
    dense = index.embeddings.embed_query(question)
    sparse = index.sparse.embed_query(question)
    ours = {
        DENSE: (dense, snapshot.dense_top(np.asarray(dense, dtype=np.float32), PREFETCH, keep)),
        SPARSE: (
            models.SparseVector(indices=sparse.indices, values=sparse.values),
            snapshot.sparse_top(sparse.indices, sparse.values, PREFETCH, keep),
        ),
    }
    for name, (query, mirrored) in ours.items():
        theirs = index.client.query_points(
            index.collection, query=query, using=name, query_filter=search_filter(page, module), limit=2 * PREFETCH
        )
        yield name, mirrored, [(str(p.id), p.score) for p in theirs.points]


def rrf(*rankings: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Qdrant's own Reciprocal Rank Fusion (qdrant-client's, which local mode runs) of id rankings."""
    points = [[models.ScoredPoint(id=i, version=0, score=s) for i, s in ranking] for ranking in rankings]
    return [(str(p.id), p.score) for p in reciprocal_rank_fusion(points, limit=PREFETCH)]


# Each scope: (page, module, which doc paths it may return).
SCOPES = {
    "whole book": (None, None, lambda path: True),
    "page by path": ("01-ros2/02-nodes-topics.md", None, lambda path: path == "01-ros2/02-nodes-topics.md"),
    "page by url": (
        "/docs/ros2/01-ros2-nodes-topics/#quality-of-service",
        None,
        lambda path: path == "01-ros2/02-nodes-topics.md",
    ),
    "module": (None, "03-isaac", lambda path: path.startswith("03-isaac/")),
}


@pytest.mark.parametrize("scope", SCOPES)
def test_each_leg_ranks_every_dev_question_as_qdrant_does(book_index, scope):
    page, module, in_scope = SCOPES[scope]
    snapshot = book_index.mirror()._current()
    for item in load_questions(EVAL_SET):
        question = item["question"]
        for name, mirrored, theirs in legs(book_index, question, page, module):
            ours = [(snapshot.rows[row].id, score) for row, score in mirrored]
            expected = as_tie_broken_by(ours, theirs)
            assert [i for i, _ in ours] == [i for i, _ in expected], (name, question)
            assert [s for _, s in ours] == pytest.approx([s for _, s in expected], rel=1e-5, abs=1e-6), (name, question)
            assert all(in_scope(snapshot.rows[row].path) for row, _ in mirrored), (name, question)


def test_the_hybrid_search_is_qdrants_fusion_of_the_same_legs(book_index):
    """End to end through both search paths, for every dev question.

    Comparing the two answers position by position would fail wherever a leg holds a tie (it often
    does: chunks sharing the query's terms equally get equal BM25 scores), because Qdrant breaks ties
    differently per CPU and a tied point's fused score depends on the rank it was given. What is
    guaranteed, and checked, is: Qdrant's hybrid query is RRF of its two legs cut at PREFETCH (the
    query the mirror answers), and the mirror's answer is exactly that fusion with ties broken its way.
    """
    snapshot = book_index.mirror()._current()
    for item in load_questions(EVAL_SET):
        question = item["question"]
        leg_hits = list(legs(book_index, question))
        qdrant = book_index._search_qdrant(question, limit=PREFETCH, page=None, module=None)
        mirror = book_index._search_mirror(question, limit=PREFETCH, scope=Scope())

        by_qdrant = rrf(*[theirs[:PREFETCH] for _, _, theirs in leg_hits])
        assert [p["id"] for p in qdrant] == [i for i, _ in by_qdrant], question
        assert [p["score"] for p in qdrant] == pytest.approx([s for _, s in by_qdrant]), question
        tie_broken = [as_tie_broken_by([(snapshot.rows[r].id, s) for r, s in ours], theirs) for _, ours, theirs in leg_hits]
        by_mirror = rrf(*tie_broken)
        assert [p["id"] for p in mirror] == [i for i, _ in by_mirror], question
        assert [p["score"] for p in mirror] == pytest.approx([s for _, s in by_mirror]), question


def test_ties_are_broken_by_point_id_whatever_the_cpu():
    mirror = LocalSearch(dimensions=2)
    meta = {"path": "p.md", "page_url": "/docs/p", "module": ""}
    # Inserted out of id order, more tied points than the limit: the cut and the order follow the id.
    point_ids = ["d", "b", "e", "a", "c"]
    mirror.upsert([LocalSearch.row(i, [1, 0], [5], [1.0], {"page_content": "", "metadata": meta}) for i in point_ids])
    snapshot = mirror._current()

    for ranked in (snapshot.dense_top(np.array([1, 0], dtype=np.float32), 3, None), snapshot.sparse_top([5], [1.0], 3, None)):
        assert [snapshot.rows[r].id for r, _ in ranked] == ["a", "b", "c"]


def test_fusion_matches_qdrant_client_rrf():
    dense = ["a", "b", "c", "d"]
    sparse = ["c", "e", "a"]
    expected = reciprocal_rank_fusion(
        [
            [models.ScoredPoint(id=i, version=0, score=0.0) for i in dense],
            [models.ScoredPoint(id=i, version=0, score=0.0) for i in sparse],
        ],
        limit=10,
    )

    assert fuse([dense, sparse], limit=10) == [(p.id, pytest.approx(p.score)) for p in expected]


def test_sparse_leg_applies_qdrant_idf_and_leaves_out_points_sharing_no_term():
    mirror = LocalSearch(dimensions=2)
    meta = {"path": "p.md", "page_url": "/docs/p", "module": ""}
    mirror.upsert(
        [
            LocalSearch.row("rare", [1, 0], [7], [1.0], {"page_content": "", "metadata": meta}),
            LocalSearch.row("common", [1, 0], [3], [1.0], {"page_content": "", "metadata": meta}),
            LocalSearch.row("common2", [1, 0], [3], [1.0], {"page_content": "", "metadata": meta}),
            LocalSearch.row("none", [0, 1], [9], [1.0], {"page_content": "", "metadata": meta}),
        ]
    )
    snapshot = mirror._current()

    ranked = snapshot.sparse_top([3, 7], [1.0, 1.0], limit=10, keep=None)

    # Term 7 is in one of four points, term 3 in two: the rarer term ranks its point first.
    assert [snapshot.rows[r].id for r, _ in ranked] == ["rare", "common", "common2"]
    assert ranked[0][1] == pytest.approx(math.log((4 - 1 + 0.5) / (1 + 0.5) + 1))


def test_the_mirror_follows_updates_and_deletes(tmp_path):
    book = tmp_path / "docs"
    shutil.copytree(SAMPLE_BOOK, book)
    index = open_book_index(path=tmp_path / "qdrant", collection="sample")
    ingest_book(book, index)
    question = "How does a PID controller use the derivative term?"
    assert index.search(question, k=1)[0]["path"] == "02-motion/03-pid-control.md"  # mirror now loaded

    pid = book / "02-motion" / "03-pid-control.md"
    pid.write_text(pid.read_text().replace("derivative", "rate-of-change"))
    (book / "03-software" / "02-putting-it-together.md").unlink()
    ingest_book(book, index)

    stored = _stored_points(index)
    assert {row.id for row in index.mirror()._current().rows} == set(stored)
    fresh = BookIndex(index.client, index.collection, index.embeddings, index.embedding_name, local=True)
    for query in (question, "putting the robot software together", "rate-of-change of the error"):
        assert ids(index.search(query, k=8)) == ids(fresh.search(query, k=8)), query
        assert all(p["path"] != "03-software/02-putting-it-together.md" for p in index.search(query, k=8))
    mirrored = {row.id: row for row in index.mirror()._current().rows}
    for point_id, vector in stored.items():
        assert np.allclose(mirrored[point_id].dense, np.asarray(vector) / np.linalg.norm(vector), atol=1e-6)


def _stored_points(index: BookIndex) -> dict[str, list[float]]:
    points, _ = index.client.scroll(index.collection, limit=10_000, with_vectors=["dense"], with_payload=False)
    return {str(p.id): p.vector["dense"] for p in points}
