"""The book index: one Qdrant collection with a dense and a sparse vector per chunk.

A folder on Qdrant Edge (Qdrant's engine in the process, tools/edge_client.py) by default, a Qdrant
server when a URL is given (tools/qdrant_server.py); the same client calls, in Qdrant Edge's types,
run both. Points use langchain-qdrant's payload layout (`page_content` + `metadata`); Qdrant does the
hybrid query and Reciprocal Rank Fusion.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, NamedTuple, TypedDict

import numpy as np
import qdrant_edge as qe
from langchain_core.embeddings import Embeddings

from booktutor.tools.edge_client import EdgeClient, EdgeFolderLocked
from booktutor.tools.embeddings import get_embeddings
from booktutor.tools.errors import BookIndexError
from booktutor.tools.sparse import BM25SparseEmbeddings, one_letter_away, terms

if TYPE_CHECKING:
    from booktutor.tools.qdrant_server import QdrantServer

DENSE = "dense"
SPARSE = "sparse"
# Fusion works on more candidates than the caller keeps, so a passage strong in only one of the
# two rankings can still surface.
PREFETCH = 24
# Qdrant's default RRF constant (a point at 0-based rank r scores 1 / (r + 2)); langchain-qdrant's
# hybrid query carries no k, so a server's default is the one to match. tools/retrieval.py fuses
# passage rankings with it too.
RRF_K = 2
# Vectors remembered by content while a process runs (about 15 MB at 384 dimensions).
VECTOR_CACHE_SIZE = 10_000
_CHUNK_NAMESPACE = uuid.UUID("5b0f3f1e-3c55-4a61-9d1b-6f7a2f4b9c10")


class Passage(TypedDict):
    """A retrieved piece of the book with everything needed to cite it."""

    id: str
    text: str
    path: str
    title: str
    heading: str
    url: str
    score: float


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk ready to be written: its text and citation metadata."""

    path: str
    index: int
    text: str
    title: str
    headings: tuple[str, ...]
    page_url: str
    anchor: str
    module: str
    file_hash: str
    module_label: str = ""  # the module's `_category_.json` label, e.g. "04 - VLA: Voice-to-Action Systems"

    @property
    def id(self) -> str:
        return chunk_id(self.path, self.file_hash, self.index)

    @property
    def url(self) -> str:
        return f"{self.page_url}#{self.anchor}" if self.anchor else self.page_url

    @property
    def heading(self) -> str:
        return " › ".join(self.headings)

    def embedding_text(self) -> str:
        # The module label, title and heading trail tell the embedding what a terse chunk is about.
        context = " › ".join(dict.fromkeys(filter(None, (self.module_label, self.title, *self.headings))))
        return f"{context}\n\n{self.text}"


class IndexedFile(NamedTuple):
    """What the index remembers of one file: its fingerprint, and what a generated index lists."""

    file_hash: str
    title: str
    url: str


def chunk_id(path: str, file_hash: str, index: int) -> str:
    """Deterministic point id: the same chunk of the same file version always gets the same id.

    A new version of a file gets all-new ids, so its old chunks (including the first one, which marks
    the file as ingested) stay distinguishable until they are deleted.
    """
    return str(uuid.uuid5(_CHUNK_NAMESPACE, f"{path}\x00{file_hash}\x00{index}"))


class BookIndex:
    """Write and search the chunks of one book."""

    def __init__(self, client: EdgeClient | QdrantServer, collection: str, embeddings: Embeddings, embedding_name: str):
        self.client = client
        self.collection = collection
        self.embeddings = embeddings
        self.embedding_name = embedding_name
        self.sparse = BM25SparseEmbeddings()
        self._dimensions_checked = False
        self._vector_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    # -- writing --------------------------------------------------------------------------------

    def ensure_collection(self, dimensions: int) -> None:
        if self.client.collection_exists(self.collection):
            self._check_dimensions(dimensions)
            return
        # Dense vectors stay in their files until a search reads them (`Cold`): `Cached` would map a
        # whole preallocated 32 MB file into every process that opens even a small book on Edge.
        self.client.create_collection(
            self.collection,
            qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine, memory=qe.Memory.Cold)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            ),
        )
        indexed = {
            "metadata.path": qe.PayloadSchemaType.Keyword,
            "metadata.module": qe.PayloadSchemaType.Keyword,
            "metadata.page_url": qe.PayloadSchemaType.Keyword,
            "metadata.chunk_index": qe.PayloadSchemaType.Integer,
        }
        for field_name, schema in indexed.items():
            self.client.create_payload_index(self.collection, field_name, schema)

    def _check_dimensions(self, dimensions: int) -> None:
        size = self.client.vector_sizes(self.collection).get(DENSE)
        if size != dimensions:
            raise BookIndexError(
                f"The index '{self.collection}' was built with {size}-dimensional embeddings but "
                f"'{self.embedding_name}' makes {dimensions}. Re-ingest with --rebuild.",
                code="embedding_mismatch",
            )

    def manifest(self) -> dict[str, str]:
        """Path -> fingerprint of every file in the index (see `files`)."""
        return {path: indexed.file_hash for path, indexed in self.files().items()}

    def files(self) -> dict[str, IndexedFile]:
        """Every file in the index, read from each file's first chunk.

        A file whose first chunks disagree (an ingest stopped between writing a new version and
        deleting the old one) gets file_hash "" so the next ingest rewrites it.
        """
        if not self.client.collection_exists(self.collection):
            return {}
        found: dict[str, IndexedFile] = {}
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                scroll_filter=qe.Filter(must=[qe.FieldCondition(key="metadata.chunk_index", match=qe.MatchValue(0))]),
                with_payload=["metadata.path", "metadata.file_hash", "metadata.title", "metadata.page_url"],
                with_vectors=False,
                limit=1024,
                offset=offset,
            )
            for point in points:
                meta = (point.payload or {}).get("metadata", {})
                path, file_hash = meta["path"], meta["file_hash"]
                if path in found and found[path].file_hash != file_hash:
                    file_hash = ""
                found[path] = IndexedFile(file_hash, meta.get("title", ""), meta.get("page_url", ""))
            if offset is None:
                return found

    def _dense_vectors(self, texts: list[str]) -> list[list[float]]:
        """Dense vectors for `texts`, embedding each distinct text once.

        Docusaurus books repeat themselves (versioned docs copy whole chapters, pages share boilerplate),
        so vectors are remembered by content for the length of the process, in a bounded LRU.
        """
        keys = [sha256(text.encode()).digest() for text in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._vector_cache))
        if missing:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            fresh = self.embeddings.embed_documents([texts[first[k]] for k in missing])
            for key, vector in zip(missing, fresh):
                # float32 arrays: a tenth of the memory of Python float lists.
                self._vector_cache[key] = np.asarray(vector, dtype=np.float32)
        vectors = []
        for key in keys:
            self._vector_cache.move_to_end(key)
            vectors.append(self._vector_cache[key].tolist())
        while len(self._vector_cache) > VECTOR_CACHE_SIZE:
            self._vector_cache.popitem(last=False)
        return vectors

    def write(self, records: list[ChunkRecord], *, replacing: set[str] | None = None) -> None:
        """Embed and upsert chunks, then drop the chunks those files no longer have.

        `replacing` names the paths that had chunks before (all of them when None); only those can have
        stale chunks, and skipping the rest keeps a first ingest free of deletes.
        """
        if not records:
            return
        texts = [r.embedding_text() for r in records]
        dense = self._dense_vectors(texts)
        self.ensure_collection(len(dense[0]))
        sparse = self.sparse.embed_documents(texts)
        # Each file's first chunk goes last: it is what `manifest` reads, so a file counts as ingested
        # only once all of its chunks are in.
        order = sorted(range(len(records)), key=lambda i: records[i].index == 0)
        records, dense, sparse = ([items[i] for i in order] for items in (records, dense, sparse))
        points = [
            qe.Point(
                uuid.UUID(record.id),
                {DENSE: d, SPARSE: s},
                {
                    "page_content": record.text,
                    "metadata": {
                        "path": record.path,
                        "title": record.title,
                        "heading": record.heading,
                        "headings": list(record.headings),
                        "url": record.url,
                        "page_url": record.page_url,
                        "module": record.module,
                        "module_label": record.module_label,
                        "chunk_index": record.index,
                        "file_hash": record.file_hash,
                    },
                },
            )
            for record, d, s in zip(records, dense, sparse)
        ]
        self.client.upsert(self.collection, points)
        kept: dict[str, list[str]] = {}
        for record in records:
            kept.setdefault(record.path, []).append(record.id)
        # Old chunks go only after the new ones are in: a reader never sees a page with no chunks.
        for path, ids in kept.items():
            if replacing is not None and path not in replacing:
                continue
            self.client.delete(
                self.collection,
                qe.Filter(must=[_path_is(path)], must_not=[qe.HasIdCondition({uuid.UUID(i) for i in ids})]),
            )

    def remove_paths(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        if not paths or not self.client.collection_exists(self.collection):
            return
        self.client.delete(
            self.collection, qe.Filter(must=[qe.FieldCondition(key="metadata.path", match=qe.MatchAny(paths))])
        )

    def drop(self) -> None:
        if self.client.collection_exists(self.collection):
            self.client.delete_collection(self.collection)
        self._dimensions_checked = False

    # -- reading --------------------------------------------------------------------------------

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection)

    def _searchable_dimensions(self) -> int:
        """The embedding size, once the index is known to exist and to match the embedding model."""
        if not self.client.collection_exists(self.collection):
            if isinstance(self.client, EdgeClient) and self.client.has_local_mode_collection(self.collection):
                raise BookIndexError(
                    f"The index in {self.client.path} was written by an earlier booktutor (Qdrant local mode) "
                    "and must be rebuilt once for Qdrant Edge: run `booktutor ingest PATH` with the docs folder "
                    f"you ingested before (the same BOOKTUTOR_HOME). Afterwards {self.client.path / 'collection'} "
                    "can be deleted.",
                    code="index_needs_rebuild",
                )
            raise BookIndexError(
                "The book index is empty. Run `booktutor ingest PATH` with your docs folder first.",
                code="index_empty",
            )
        dimensions = len(self.embeddings.embed_query("dimension probe"))
        self._check_dimensions(dimensions)
        return dimensions

    def search(self, query: str, *, k: int = 5, page: str | None = None, module: str | None = None) -> list[Passage]:
        """Hybrid (dense + BM25) search fused with RRF, near-duplicates collapsed."""
        limit = max(PREFETCH, k)
        if isinstance(self.client, EdgeClient):
            passages = self._search_native(query, limit=limit, page=page, module=module)
        else:
            passages = self._search_qdrant(query, limit=limit, page=page, module=module)
        return collapse_duplicates(passages, keep=k)

    def _search_qdrant(self, query: str, *, limit: int, page: str | None, module: str | None) -> list[Passage]:
        """The hybrid query run by a Qdrant server itself, through langchain-qdrant."""
        if not self._dimensions_checked:
            self._searchable_dimensions()
            self._dimensions_checked = True
        hits = self.client.search(
            self.collection,
            query,
            embeddings=self.embeddings,
            sparse=self.sparse,
            vector_names=(DENSE, SPARSE),
            limit=limit,
            query_filter=search_filter(page, module),
        )
        hits = sorted(hits, key=lambda hit: _rank_order(hit[3], hit[2]))  # the server's ties, in book order too
        return [_passage(point_id, text, meta, score) for point_id, text, meta, score in hits]

    def _search_native(self, query: str, *, limit: int, page: str | None, module: str | None) -> list[Passage]:
        """The hybrid query langchain-qdrant sends a server (each leg's top `limit`, fused by RRF), run by Edge."""
        if not self._dimensions_checked:
            self._searchable_dimensions()
            self._dimensions_checked = True
        sparse = self.sparse.embed_query(query)
        legs = [
            qe.Prefetch(limit=limit, query=qe.Query.Nearest(self.embeddings.embed_query(query), using=DENSE)),
            qe.Prefetch(limit=limit, query=qe.Query.Nearest(sparse, using=SPARSE)),
        ]
        # Every fused candidate (at most both legs' worth), so the cut below is ours.
        hits = self.client.query(
            self.collection,
            qe.QueryRequest(
                limit=2 * limit,
                query=qe.Fusion.Rrf(k=RRF_K),
                prefetches=legs,
                filter=search_filter(page, module),
                with_payload=True,
            ),
        )
        # RRF ties often (first in one leg and third in the other, or the reverse, sum to the same
        # score), and Qdrant returns equal fused scores in an order that changes from query to query
        # (it collects them in a hash map). Book order (page, then place on the page) makes the same
        # question rank the same way, and keeps doing so when a re-ingest gives its chunks new ids.
        hits = sorted(hits, key=lambda hit: _rank_order(hit.score, hit.payload["metadata"]))[:limit]
        return [_passage(hit.id, hit.payload["page_content"], hit.payload["metadata"], hit.score) for hit in hits]

    def unused_terms(self, wanted: Iterable[str]) -> set[str]:
        """Which of `wanted` (analyzer terms, as `tools.sparse.terms` gives them) no chunk of the book
        contains: the words the book never names. One sparse lookup per term (hundredths of a millisecond
        on Qdrant Edge), so it holds for the index as it is now, whoever wrote to it last. A question's
        terms are mostly the book's, so halving them (`_used_terms`) would take more lookups, not fewer."""
        if not self.client.collection_exists(self.collection):
            return set()
        return {t for t in set(wanted) if not self.client.sparse_match(self.collection, SPARSE, self.sparse.terms_vector([t]))}

    def spellings(self, word: str) -> list[str]:
        """The book's words one letter away from `word` (a letter dropped, added or changed, or two
        swapped), as spelt that way: what a reader typing the book's word wrong meant ("simlation" ->
        "simulation"). A spelling counts by its analyzer terms, so a stem of the book's counts too."""
        if not self.client.collection_exists(self.collection):
            return []
        word = word.lower()
        own = set(terms(word))
        # Every term of a spelling must be the book's: "micro-qos" changes the "ros" of "micro-ROS" into a
        # term the book uses, but its "micro" is still one the book never does.
        spelt = {spelling: set(terms(spelling)) for spelling in one_letter_away(word) - {word}}
        used = self._used_terms(sorted(set().union(*spelt.values())))
        return sorted(spelling for spelling, found in spelt.items() if found - own and found <= used)

    def _used_terms(self, wanted: list[str]) -> set[str]:
        """Which of `wanted` some chunk contains, found by halving: a group none of whose terms the book
        uses costs one sparse lookup. A word's few hundred spellings, of which a handful are the book's,
        take a few dozen lookups instead of one each: 15 ms instead of 43 for "simlation" on the dev book."""
        if not wanted or not self.client.sparse_match(self.collection, SPARSE, self.sparse.terms_vector(wanted)):
            return set()
        if len(wanted) == 1:
            return set(wanted)
        half = len(wanted) // 2
        return self._used_terms(wanted[:half]) | self._used_terms(wanted[half:])

    def check_writable(self) -> None:
        """Refuses, with what to do instead, when this process searches a read-only copy (`serve_from_copy`)."""
        self.client.check_writable()

    def warm(self) -> None:
        """Open the index and check its embedding size now, if there is one, not at the first search."""
        if self.client.collection_exists(self.collection) and not self._dimensions_checked:
            self._searchable_dimensions()
            self._dimensions_checked = True

    def page_passages(self, page: str) -> list[Passage]:
        """Every chunk of one page, in reading order."""
        if not self.client.collection_exists(self.collection):
            return []
        points, _ = self.client.scroll(
            self.collection, scroll_filter=qe.Filter(must=[_page_is(page)]), limit=2048, with_vectors=False
        )
        found = [(str(p.id), p.payload) for p in points]
        found.sort(key=lambda item: item[1]["metadata"]["chunk_index"])
        return [_passage(point_id, payload["page_content"], payload["metadata"], 1.0) for point_id, payload in found]

    def locate(self, selected_text: str, *, page: str | None = None) -> list[Passage]:
        """The chunk(s) a selected passage came from: its own page first, the whole book otherwise."""
        candidates = self.page_passages(page) if page else []
        if not candidates:
            candidates = self.search(selected_text[:2000], k=10)
        wanted = _normalise(selected_text)
        wanted_terms = set(terms(selected_text))

        def overlap(passage: Passage) -> float:
            text = _normalise(passage["text"])
            if wanted and wanted[:300] in text:
                return 2.0
            have = set(terms(passage["text"]))
            return len(wanted_terms & have) / (len(wanted_terms) or 1)

        ranked = sorted(candidates, key=overlap, reverse=True)
        if not ranked or overlap(ranked[0]) < 0.3:
            return []
        best = ranked[0]
        # A selection that spans a chunk boundary also pulls in its neighbour.
        also = [p for p in ranked[1:3] if p["path"] == best["path"] and overlap(p) >= 0.6]
        return [{**best, "score": 1.0}, *also]


def _path_is(path: str) -> qe.FieldCondition:
    return qe.FieldCondition(key="metadata.path", match=qe.MatchValue(path))


def _page_keys(page: str) -> tuple[str, str]:
    """A page given as a doc path (`01-ros2/02-nodes-topics.md`) or as the URL the reader is on."""
    return page.lstrip("./"), page.split("#", 1)[0].rstrip("/") or "/"


def _page_is(page: str) -> qe.Filter:
    path, url = _page_keys(page)
    return qe.Filter(should=[_path_is(path), qe.FieldCondition(key="metadata.page_url", match=qe.MatchValue(url))])


def search_filter(page: str | None, module: str | None) -> qe.Filter | None:
    """The Qdrant filter for a search limited to a page and/or a module."""
    conditions: list = []
    if page:
        conditions.append(_page_is(page))
    if module:
        conditions.append(qe.FieldCondition(key="metadata.module", match=qe.MatchValue(module)))
    return qe.Filter(must=conditions) if conditions else None


def _rank_order(score: float, meta: dict) -> tuple[float, str, int]:
    """A fused hit's place in the results: the higher score first, equal scores in book order (the
    page's path, then the chunk's place on the page)."""
    return -score, meta.get("path") or "", int(meta.get("chunk_index") or 0)


def _passage(point_id: str, text: str, meta: dict, score: float) -> Passage:
    return Passage(
        id=str(point_id),
        text=text,
        path=meta["path"],
        title=meta["title"],
        heading=meta["heading"],
        url=meta["url"],
        score=float(score),
    )


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[`*_>#|]", "", text)).strip().lower()


def collapse_duplicates(passages: list[Passage], threshold: float = 0.9, *, keep: int | None = None) -> list[Passage]:
    """The first `keep` passages (all without it) that do not nearly repeat a better-ranked one
    (boilerplate repeated across pages).

    Whether a passage is kept depends only on those ranked above it, so stopping at `keep` returns
    what collapsing the whole list and cutting it would, without the terms of passages never shown
    (deriving them was a third of a search's time).
    """
    kept: list[tuple[Passage, set[str]]] = []
    for passage in passages:
        if keep is not None and len(kept) >= keep:
            break
        words = set(terms(passage["text"]))
        if any(len(words & seen) / (len(words | seen) or 1) >= threshold for _, seen in kept):
            continue
        kept.append((passage, words))
    return [p for p, _ in kept]


# -- opening --------------------------------------------------------------------------------------

_open_lock = threading.Lock()
_open: dict[tuple, BookIndex] = {}
# Local folders this process opens as a private read-only copy instead (see `serve_from_copy`).
_copies: dict[str, Path] = {}


def serve_from_copy(folder: Path | str, copy: Path) -> None:
    """From now on, open the local index `folder` as `copy`, read-only.

    A local folder opens in one process, so a server of several processes gives each a copy of the
    index (`EdgeClient.copy_to`) while the parent holds the folder: every caller in this process that
    asks for `folder` searches the copy, and a write is refused with `index_read_only`.
    """
    with _open_lock:
        _copies[_resolved(str(folder))] = Path(copy)


def open_book_index(
    *,
    path: Path | str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    collection: str = "book",
    embedding_model: str | None = None,
) -> BookIndex:
    """The index at a Qdrant server `url`, or on Qdrant Edge in the folder `path`; one client per location.

    A local folder is locked by the process that opens it, so a process must reuse one client rather
    than open two.
    """
    if not url and not path:
        raise BookIndexError("Either a Qdrant URL or a local folder is needed.", code="index_unconfigured")
    key = (url or _resolved(str(path)), collection, embedding_model)
    with _open_lock:
        if key not in _open:
            client = _client(path=path, url=url, api_key=api_key)
            embeddings, name = get_embeddings(embedding_model)
            _open[key] = BookIndex(client, collection, embeddings, name)
        return _open[key]


@lru_cache(maxsize=64)
def _resolved(path: str) -> str:
    # Every turn asks for its index; resolving the folder is a system call per path component.
    return str(Path(path).resolve())


def _client(*, path: Path | str | None, url: str | None, api_key: str | None) -> EdgeClient | QdrantServer:
    if url:
        # Imported here: qdrant-client and langchain-qdrant cost a local index's process about 45 MB.
        from booktutor.tools.qdrant_server import QdrantServer

        return QdrantServer.connect(url, api_key)
    copy = _copies.get(_resolved(str(path)))
    if copy is not None:
        return EdgeClient(copy, read_only=True)
    folder = Path(path)
    try:
        return EdgeClient(folder)
    except EdgeFolderLocked as exc:
        raise BookIndexError(
            f"The local index at {folder} is in use by another booktutor process "
            "(a local folder allows one). Stop it, or run a Qdrant server and set QDRANT_URL.",
            code="index_locked",
        ) from exc


def close_book_index(index: BookIndex) -> None:
    """Close one index's client so the folder can be opened again (by this or another process)."""
    with _open_lock:
        for key in [key for key, value in _open.items() if value is index]:
            del _open[key]
    index.client.close()


def close_all() -> None:
    """Close every open client (tests and process shutdown)."""
    with _open_lock:
        for index in _open.values():
            index.client.close()
        _open.clear()
