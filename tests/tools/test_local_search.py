"""The local-mode search mirror answers exactly what Qdrant's own hybrid query answers, and follows writes."""

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
    collapse_duplicates,
    open_book_index,
    search_filter,
    search_scope,
)
from booktutor.tools.ingest import ingest_book
from booktutor.tools.local_search import LocalSearch, Scope, fuse


def ids(passages) -> list[str]:
    return [p["id"] for p in passages]


def tie_groups(hits) -> list[tuple[float, set[str]]]:
    """A ranking as (score, ids) groups: tied points may come in either order, in Qdrant too."""
    groups: list[tuple[float, set[str]]] = []
    for point_id, score in hits:
        if groups and score == pytest.approx(groups[-1][0], rel=1e-5):
            groups[-1][1].add(point_id)
        else:
            groups.append((score, {point_id}))
    # The last group may be cut by the limit differently on each side.
    return groups[:-1]


SCOPES = {
    "whole book": (None, None),
    "page by path": ("01-ros2/02-nodes-topics.md", None),
    "page by url": ("/docs/ros2/01-ros2-nodes-topics/#quality-of-service", None),
    "module": (None, "03-isaac"),
}


@pytest.mark.parametrize("scope", SCOPES)
def test_each_leg_ranks_every_dev_question_as_qdrant_does(book_index, scope):
    page, module = SCOPES[scope]
    qdrant_filter = search_filter(page, module)
    snapshot = book_index.mirror()._current()
    keep = snapshot.mask(search_scope(page, module))
    for item in load_questions(EVAL_SET):
        question = item["question"]
        dense = book_index.embeddings.embed_query(question)
        sparse = book_index.sparse.embed_query(question)
        legs = {
            DENSE: (dense, snapshot.dense_top(np.asarray(dense, dtype=np.float32), PREFETCH, keep)),
            SPARSE: (
                models.SparseVector(indices=sparse.indices, values=sparse.values),
                snapshot.sparse_top(sparse.indices, sparse.values, PREFETCH, keep),
            ),
        }
        for name, (query, mirrored) in legs.items():
            expected = book_index.client.query_points(
                book_index.collection, query=query, using=name, query_filter=qdrant_filter, limit=PREFETCH
            )
            ours = [(snapshot.rows[row].id, score) for row, score in mirrored]
            theirs = [(str(p.id), p.score) for p in expected.points]
            assert len(ours) == len(theirs), (name, question)
            ours, theirs = tie_groups(ours), tie_groups(theirs)
            assert [ids for _, ids in ours] == [ids for _, ids in theirs], (name, question)
            assert [score for score, _ in ours] == pytest.approx([score for score, _ in theirs], rel=1e-5, abs=1e-6)
            if page:
                assert all(snapshot.rows[row].path == "01-ros2/02-nodes-topics.md" for row, _ in mirrored)
            if module:
                assert all(snapshot.rows[row].path.startswith(module + "/") for row, _ in mirrored)


def test_the_dev_set_finds_the_same_pages_through_the_mirror_and_through_qdrant(book_index):
    for item in load_questions(EVAL_SET):
        question = item["question"]
        mirror = collapse_duplicates(book_index._search_mirror(question, limit=PREFETCH, scope=Scope()))[:5]
        qdrant = collapse_duplicates(book_index._search_qdrant(question, limit=PREFETCH, page=None, module=None))[:5]

        # Exact order can differ only where RRF scores tie; the leader and the scores cannot.
        assert mirror[0]["id"] == qdrant[0]["id"], question
        assert [p["score"] for p in mirror] == pytest.approx([p["score"] for p in qdrant]), question


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
