"""The local index (Qdrant Edge) answers what Qdrant answers, leg by leg and fused; writes and deletes
are seen and persist; one process holds a folder; a folder from local mode asks for a rebuild; the
local index never imports qdrant-client.

The reference is qdrant-client's local mode holding the same points (the same vectors, copied, not
re-embedded), reached through the server path (tools/qdrant_server.py): it runs Qdrant's scoring
formulas in Python, and no server runs here."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import warnings

import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient, models
from qdrant_client.hybrid.fusion import reciprocal_rank_fusion

from tests.conftest import EVAL_SET, SAMPLE_BOOK
from booktutor.tools.edge_client import EdgeClient, EdgeFolderLocked
from booktutor.tools.errors import BookIndexError
from booktutor.tools.evaluation import load_questions
from booktutor.tools.index import (
    DENSE,
    PREFETCH,
    SPARSE,
    BookIndex,
    _client,
    close_book_index,
    open_book_index,
    search_filter,
)
from booktutor.tools.ingest import ingest_book
from booktutor.tools.qdrant_server import QdrantServer, client_filter
from booktutor.tools.retrieval import fuse
from booktutor.tools.sparse import terms

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


def as_tie_broken_by(ours: list[tuple[str, float]], theirs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Qdrant's ranking `theirs` with each run of tied points put in the order `ours` gives them.

    Qdrant defines no order among equal scores (local mode sorts with numpy's unstable argsort, whose
    order for equal keys depends on the CPU's sort kernel; Edge, like a server, keeps storage order).
    Every such reordering is therefore an answer Qdrant could give. Scores within 1e-5 count as tied,
    as the two sides add in different float precisions. `theirs` is asked for 2 x PREFETCH points, so
    that a run cut at PREFETCH is whole.
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


@pytest.fixture(scope="module")
def reference(book_index, tmp_path_factory):
    """The evaluation book's points, copied from the index into Qdrant's local mode."""
    client = QdrantServer(QdrantClient(path=str(tmp_path_factory.mktemp("local-mode"))))
    index = BookIndex(client, book_index.collection, book_index.embeddings, book_index.embedding_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local mode warns that payload indexes are a server feature
        index.ensure_collection(len(book_index.embeddings.embed_query("dimension probe")))
    offset = None
    while True:
        points, offset = book_index.client.scroll(
            book_index.collection, with_payload=True, with_vectors=True, limit=1024, offset=offset
        )
        client.upsert(index.collection, [qe.Point(p.id, p.vector, p.payload) for p in points])
        if offset is None:
            break
    yield index
    client.close()


def rrf(*rankings: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Qdrant's Reciprocal Rank Fusion of whole rankings (qdrant-client's, which local mode runs), uncut."""
    points = [[models.ScoredPoint(id=i, version=0, score=s) for i, s in ranking] for ranking in rankings]
    return [(str(p.id), p.score) for p in reciprocal_rank_fusion(points, limit=sum(map(len, rankings)))]


def leg(client, collection: str, name: str, query, page, module, limit: int) -> list[tuple[str, float]]:
    """One vector's ranking, asked of Edge in its types or of the reference in qdrant-client's."""
    scope = search_filter(page, module)
    if isinstance(client, QdrantServer):
        if isinstance(query, qe.SparseVector):
            query = models.SparseVector(indices=query.indices, values=query.values)
        found = client.qdrant.query_points(collection, query=query, using=name, query_filter=client_filter(scope), limit=limit).points
    else:
        found = client.query(collection, qe.QueryRequest(limit=limit, query=qe.Query.Nearest(query, using=name), filter=scope))
    return [(str(p.id), p.score) for p in found]


def test_the_reference_holds_the_same_points(book_index, reference):
    assert reference.count() == book_index.count()
    assert reference.files() == book_index.files()


@pytest.mark.parametrize("scope", SCOPES)
def test_each_leg_and_the_fusion_rank_every_dev_question_as_qdrant_does(book_index, reference, scope):
    page, module, in_scope = SCOPES[scope]
    paths = {}
    for item in load_questions(EVAL_SET):
        question = item["question"]
        queries = {DENSE: book_index.embeddings.embed_query(question), SPARSE: book_index.sparse.embed_query(question)}
        tie_broken = []
        for name, query in queries.items():
            ours = leg(book_index.client, book_index.collection, name, query, page, module, PREFETCH)
            theirs = leg(reference.client, reference.collection, name, query, page, module, 2 * PREFETCH)
            expected = as_tie_broken_by(ours, theirs)
            assert [i for i, _ in ours] == [i for i, _ in expected], (name, question)
            assert [s for _, s in ours] == pytest.approx([s for _, s in expected], rel=1e-5, abs=1e-6), (name, question)
            tie_broken.append(expected)

        fused = book_index._search_native(question, limit=PREFETCH, page=page, module=module)
        by_qdrant = rrf(*tie_broken)
        assert [p["score"] for p in fused] == pytest.approx([s for _, s in by_qdrant[:PREFETCH]], rel=1e-5), question
        # Fused scores tie too (first in one leg and third in the other, or the reverse): any order of
        # equal scores, and any of them at the cut, is Qdrant's answer; ours is book order (page, then
        # place on the page), so that a question ranks the same way every time, whatever the chunks' ids.
        places = {q["id"]: n for path in {p["path"] for p in fused} for n, q in enumerate(book_index.page_passages(path))}
        assert fused == sorted(fused, key=lambda p: (-p["score"], p["path"], places[p["id"]])), question
        for passage in fused:
            assert passage["id"] in {i for i, s in by_qdrant if s == pytest.approx(passage["score"], rel=1e-5)}, question
        paths.update({p["id"]: p["path"] for p in fused})
    assert all(in_scope(path) for path in paths.values())


def test_the_server_path_searches_and_scopes_as_the_local_index(book_index, reference):
    """The same hybrid query through langchain-qdrant (what a Qdrant server gets), filters translated."""
    # Not the same order: langchain-qdrant fuses only each leg's top k and local mode orders ties its own
    # way (the test above holds the rankings themselves); the passage Edge ranks first is among the five.
    for item in load_questions(EVAL_SET)[:10]:
        question = item["question"]
        assert book_index.search(question, k=1)[0]["id"] in {p["id"] for p in reference.search(question, k=5)}, question
    # Equal fused scores come in book order on this path too, so a question ranks the same way each time.
    for item in load_questions(EVAL_SET):
        found = [(-p["score"], p["path"]) for p in reference.search(item["question"], k=24)]
        assert found == sorted(found), item["question"]
    question = load_questions(EVAL_SET)[0]["question"]
    for scope in SCOPES.values():
        page, module, in_scope = scope
        found = reference.search(question, k=5, page=page, module=module)
        assert found and all(in_scope(p["path"]) for p in found)
    assert [p["id"] for p in reference.page_passages("01-ros2/02-nodes-topics.md")] == [
        p["id"] for p in book_index.page_passages("01-ros2/02-nodes-topics.md")
    ]


def test_both_paths_know_which_words_the_book_never_uses(book_index, reference):
    wanted = terms("How does a quadcopter drone stay level when the wind gusts in Gazebo?")
    assert book_index.unused_terms(wanted) == reference.unused_terms(wanted) == {"quadcopt", "drone", "stay", "wind", "gust"}
    assert book_index.unused_terms([]) == set()
    # The book's words typed wrong, and words it never uses. A spelling counts by its stem, so "captione"
    # (the book's "caption") comes too.
    typed = [("simlation", "simulation"), ("captone", "capstone"), ("Gazbo", "gazebo"), ("surgical", None), ("quadcopter", None)]
    for word, meant in typed:
        spellings = book_index.spellings(word)
        assert spellings == reference.spellings(word), word
        assert (meant in spellings) if meant else spellings == [], (word, spellings)
    # A spelling is the book's only when all of it is: "micro-qos" has the book's "qos" but not its "micro".
    assert "micro-qos" not in book_index.spellings("micro-ROS")


def test_the_local_index_does_not_import_qdrant_client(tmp_path):
    """qdrant-client and langchain-qdrant (about 45 MB of modules) are for a Qdrant server only."""
    script = f"""
import sys
from pathlib import Path
from booktutor.tools.index import open_book_index
from booktutor.tools.ingest import ingest_book
index = open_book_index(path={str(tmp_path / "index")!r}, collection="sample")
ingest_book(Path({str(SAMPLE_BOOK)!r}), index)
assert index.search("What is a PID controller?", k=1)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("qdrant_client", "langchain_qdrant", "grpc")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


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
    index = open_book_index(path=tmp_path / "index", collection="sample")
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

    # One process at a time (another open is refused with the error the server reports); closed, the
    # folder opens again with everything in it.
    with pytest.raises(EdgeFolderLocked):
        EdgeClient(tmp_path / "index")
    with pytest.raises(BookIndexError) as refused:
        _client(path=tmp_path / "index", url=None, api_key=None)
    assert refused.value.code == "index_locked"
    close_book_index(index)
    reopened = open_book_index(path=tmp_path / "index", collection="sample")
    after = (reopened.count(), reopened.manifest(), ranked(reopened, "rate-of-change of the error"))
    assert after == before
    close_book_index(reopened)


def test_idf_counts_deleted_points_until_their_segment_is_rebuilt_as_a_qdrant_server_does(tmp_path):
    """Qdrant computes IDF from its posting lists, which keep deleted points until the segment is
    vacuumed (qdrant/qdrant#6735, #6739); a reopen rebuilds them. qdrant-client's local mode counts live
    points only, so after a re-ingest that deletes chunks its BM25 scores differ from a server's and
    Edge's until then."""
    client = EdgeClient(tmp_path / "index")
    client.create_collection(
        "c",
        qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=2, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        ),
    )
    # Term 1 in two of ten points; then five points without it are deleted.
    client.upsert(
        "c",
        [
            qe.Point(i, {DENSE: [1.0, 0.0], SPARSE: qe.SparseVector(terms, [1.0] * len(terms))})
            for i, terms in enumerate([[1, 2]] * 2 + [[2]] * 8)
        ],
    )
    client.delete("c", qe.Filter(must=[qe.HasIdCondition(set(range(5, 10)))]))

    def score() -> float:
        request = qe.QueryRequest(limit=1, query=qe.Query.Nearest(qe.SparseVector([1], [1.0]), using=SPARSE))
        return client.query("c", request)[0].score

    def idf(points: int, with_term: int) -> float:
        return math.log((points - with_term + 0.5) / (with_term + 0.5) + 1)

    assert score() == pytest.approx(idf(10, 2), rel=1e-5)
    client.close()
    client = EdgeClient(tmp_path / "index")
    assert score() == pytest.approx(idf(5, 2), rel=1e-5)
    client.close()


def test_a_folder_written_by_local_mode_asks_for_a_rebuild_and_one_ingest_makes_it(tmp_path):
    book = tmp_path / "docs"
    shutil.copytree(SAMPLE_BOOK, book)
    folder = tmp_path / "qdrant"
    old = QdrantClient(path=str(folder))  # what earlier versions wrote: local mode's layout
    old.create_collection("book", vectors_config={DENSE: models.VectorParams(size=2, distance=models.Distance.COSINE)})
    old.upsert("book", [models.PointStruct(id=1, vector={DENSE: [1.0, 0.0]}, payload={})])
    old.close()

    index = open_book_index(path=folder)
    with pytest.raises(BookIndexError) as refused:
        index.search("What is a PID controller?")
    assert refused.value.code == "index_needs_rebuild"
    assert "`booktutor ingest PATH`" in str(refused.value) and str(folder) in str(refused.value)

    report = ingest_book(book, index)
    assert report.added == report.files
    assert index.search("How does a PID controller use the derivative term?", k=1)[0]["path"] == "02-motion/03-pid-control.md"
    close_book_index(index)
