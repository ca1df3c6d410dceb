"""The index on Qdrant Edge answers what Qdrant answers, leg by leg and fused, and keeps local mode's
contract: writes and deletes are seen, the folder persists, and one process holds it at a time.

The reference is Qdrant's local mode holding the same points (the same vectors, copied, not
re-embedded): it runs Qdrant's scoring formulas, and no server runs here."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("qdrant_edge")

from qdrant_client import models  # noqa: E402
from qdrant_client.hybrid.fusion import reciprocal_rank_fusion  # noqa: E402

from tests.conftest import EVAL_SET, SAMPLE_BOOK  # noqa: E402
from tests.tools.test_local_search import SCOPES, as_tie_broken_by  # noqa: E402
from booktutor.tools.edge_client import EdgeClient, EdgeFolderLocked  # noqa: E402
from booktutor.tools.evaluation import load_questions  # noqa: E402
from booktutor.tools.index import DENSE, PREFETCH, SPARSE, BookIndex, search_filter  # noqa: E402
from booktutor.tools.ingest import ingest_book  # noqa: E402


@pytest.fixture(scope="module")
def edge_index(book_index, tmp_path_factory):
    """The evaluation book's points, copied from the local-mode index into an Edge folder."""
    client = EdgeClient(tmp_path_factory.mktemp("edge"))
    index = BookIndex(client, book_index.collection, book_index.embeddings, book_index.embedding_name)
    index.ensure_collection(len(book_index.embeddings.embed_query("dimension probe")))
    offset = None
    while True:
        points, offset = book_index.client.scroll(
            book_index.collection, with_payload=True, with_vectors=True, limit=1024, offset=offset
        )
        client.upsert(
            index.collection, [models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points]
        )
        if offset is None:
            break
    yield index
    client.close()


def rrf(*rankings: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Qdrant's Reciprocal Rank Fusion of whole rankings (qdrant-client's, which local mode runs), uncut."""
    points = [[models.ScoredPoint(id=i, version=0, score=s) for i, s in ranking] for ranking in rankings]
    return [(str(p.id), p.score) for p in reciprocal_rank_fusion(points, limit=sum(map(len, rankings)))]


def leg(client, collection: str, name: str, query, page, module, limit: int) -> list[tuple[str, float]]:
    found = client.query_points(collection, query=query, using=name, query_filter=search_filter(page, module), limit=limit)
    return [(str(p.id), p.score) for p in found.points]


def test_edge_holds_the_same_points(book_index, edge_index):
    assert edge_index.count() == book_index.count()
    assert edge_index.files() == book_index.files()


@pytest.mark.parametrize("scope", SCOPES)
def test_each_leg_and_the_fusion_rank_every_dev_question_as_qdrant_does(book_index, edge_index, scope):
    page, module, in_scope = SCOPES[scope]
    paths = {}
    for item in load_questions(EVAL_SET):
        question = item["question"]
        sparse = book_index.sparse.embed_query(question)
        queries = {
            DENSE: book_index.embeddings.embed_query(question),
            SPARSE: models.SparseVector(indices=sparse.indices, values=sparse.values),
        }
        tie_broken = []
        for name, query in queries.items():
            ours = leg(edge_index.client, edge_index.collection, name, query, page, module, PREFETCH)
            theirs = leg(book_index.client, book_index.collection, name, query, page, module, 2 * PREFETCH)
            expected = as_tie_broken_by(ours, theirs)
            assert [i for i, _ in ours] == [i for i, _ in expected], (name, question)
            assert [s for _, s in ours] == pytest.approx([s for _, s in expected], rel=1e-5, abs=1e-6), (name, question)
            tie_broken.append(expected)

        fused = edge_index._search_native(question, limit=PREFETCH, page=page, module=module)
        by_qdrant = rrf(*tie_broken)
        assert [p["score"] for p in fused] == pytest.approx([s for _, s in by_qdrant[:PREFETCH]], rel=1e-5), question
        # Fused scores tie too (first in one leg and third in the other, or the reverse): any order of
        # equal scores, and any of them at the cut, is Qdrant's answer.
        for passage in fused:
            assert passage["id"] in {i for i, s in by_qdrant if s == pytest.approx(passage["score"], rel=1e-5)}, question
        paths.update({p["id"]: p["path"] for p in fused})
    assert all(in_scope(path) for path in paths.values())


def ranked(index: BookIndex, query: str) -> tuple:
    """What a reopen must keep: the best point and the dense leg's scores.

    Not the order of equal scores: Edge orders them by where points sit in its segments, which a
    reopen can change (any order is Qdrant's answer). Nor the sparse scores: see the next test.
    """
    dense = leg(index.client, index.collection, DENSE, index.embeddings.embed_query(query), None, None, PREFETCH)
    return index.search(query, k=1)[0]["id"], [round(s, 5) for _, s in dense]


def test_writes_and_deletes_are_seen_and_persist(tmp_path):
    book = tmp_path / "docs"
    shutil.copytree(SAMPLE_BOOK, book)
    client = EdgeClient(tmp_path / "index")
    from booktutor.tools.embeddings import get_embeddings

    embeddings, name = get_embeddings(None)
    index = BookIndex(client, "sample", embeddings, name)
    ingest_book(book, index)
    question = "How does a PID controller use the derivative term?"
    assert index.search(question, k=1)[0]["path"] == "02-motion/03-pid-control.md"

    pid = book / "02-motion" / "03-pid-control.md"
    pid.write_text(pid.read_text().replace("derivative", "rate-of-change"))
    (book / "03-software" / "02-putting-it-together.md").unlink()
    report = ingest_book(book, index)
    assert (report.updated, report.removed) == (1, 1)
    hits = index.search("rate-of-change of the error", k=8)
    assert hits[0]["path"] == "02-motion/03-pid-control.md"
    assert all(p["path"] != "03-software/02-putting-it-together.md" for p in index.search("putting it together", k=8))
    before = (index.count(), index.manifest(), ranked(index, "rate-of-change of the error"))

    # One process at a time, as in local mode; closed, the folder opens again with everything in it.
    with pytest.raises(EdgeFolderLocked):
        EdgeClient(tmp_path / "index")
    client.close()
    reopened = BookIndex(EdgeClient(tmp_path / "index"), "sample", embeddings, name)
    after = (reopened.count(), reopened.manifest(), ranked(reopened, "rate-of-change of the error"))
    assert after == before
    reopened.client.close()


def test_idf_counts_deleted_points_until_their_segment_is_rebuilt_as_a_qdrant_server_does(tmp_path):
    """Qdrant computes IDF from its posting lists, which keep deleted points until the segment is
    vacuumed (qdrant/qdrant#6735, #6739); a reopen rebuilds them. Local mode and the numpy mirror count
    live points only, so after a re-ingest that deletes chunks their BM25 scores differ from a server's
    and Edge's until then."""
    import math

    client = EdgeClient(tmp_path / "index")
    client.create_collection(
        "c",
        vectors_config={DENSE: models.VectorParams(size=2, distance=models.Distance.COSINE)},
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    # Term 1 in two of ten points; then five points without it are deleted.
    client.upsert(
        "c",
        [
            models.PointStruct(id=i, vector={DENSE: [1.0, 0.0], SPARSE: models.SparseVector(indices=terms, values=[1.0] * len(terms))})
            for i, terms in enumerate([[1, 2]] * 2 + [[2]] * 8)
        ],
    )
    client.delete("c", models.Filter(must=[models.HasIdCondition(has_id=list(range(5, 10)))]))

    def score() -> float:
        return client.query_points("c", query=models.SparseVector(indices=[1], values=[1.0]), using=SPARSE).points[0].score

    def idf(points: int, with_term: int) -> float:
        return math.log((points - with_term + 0.5) / (with_term + 0.5) + 1)

    assert score() == pytest.approx(idf(10, 2), rel=1e-5)
    client.close()
    client = EdgeClient(tmp_path / "index")
    assert score() == pytest.approx(idf(5, 2), rel=1e-5)
    client.close()
