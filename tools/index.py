"""The book index: one Qdrant collection with a dense and a sparse vector per chunk.

Local mode (a folder) by default, a Qdrant server when a URL is given; the same client code runs both.
Points use langchain-qdrant's payload layout (`page_content` + `metadata`) so `QdrantVectorStore`
does the hybrid query and Reciprocal Rank Fusion.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from hashlib import sha256
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, TypedDict

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore, RetrievalMode
from qdrant_client import QdrantClient, models

from tools.embeddings import get_embeddings
from tools.errors import BookIndexError
from tools.sparse import BM25SparseEmbeddings, terms

DENSE = "dense"
SPARSE = "sparse"
# Fusion works on more candidates than the caller keeps, so a passage strong in only one of the
# two rankings can still surface.
PREFETCH = 24
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
        # The title and heading trail tell the embedding what a terse chunk is about.
        context = " › ".join(dict.fromkeys((self.title, *self.headings)))
        return f"{context}\n\n{self.text}"


def chunk_id(path: str, file_hash: str, index: int) -> str:
    """Deterministic point id: the same chunk of the same file version always gets the same id.

    A new version of a file gets all-new ids, so its old chunks (including the first one, which marks
    the file as ingested) stay distinguishable until they are deleted.
    """
    return str(uuid.uuid5(_CHUNK_NAMESPACE, f"{path}\x00{file_hash}\x00{index}"))


class BookIndex:
    """Write and search the chunks of one book."""

    def __init__(self, client: QdrantClient, collection: str, embeddings: Embeddings, embedding_name: str):
        self.client = client
        self.collection = collection
        self.embeddings = embeddings
        self.embedding_name = embedding_name
        self.sparse = BM25SparseEmbeddings()
        self._store: QdrantVectorStore | None = None
        self._vector_cache: OrderedDict[bytes, np.ndarray] = OrderedDict()

    # -- writing --------------------------------------------------------------------------------

    def ensure_collection(self, dimensions: int) -> None:
        if self.client.collection_exists(self.collection):
            self._check_dimensions(dimensions)
            return
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=dimensions, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        indexed = {
            "metadata.path": models.PayloadSchemaType.KEYWORD,
            "metadata.module": models.PayloadSchemaType.KEYWORD,
            "metadata.page_url": models.PayloadSchemaType.KEYWORD,
            "metadata.chunk_index": models.PayloadSchemaType.INTEGER,
        }
        with warnings.catch_warnings():
            # Local mode warns that payload indexes are a server feature; the server needs them.
            warnings.simplefilter("ignore")
            for field_name, schema in indexed.items():
                self.client.create_payload_index(self.collection, field_name, schema)

    def _check_dimensions(self, dimensions: int) -> None:
        vectors = self.client.get_collection(self.collection).config.params.vectors
        size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
        if size != dimensions:
            raise BookIndexError(
                f"The index '{self.collection}' was built with {size}-dimensional embeddings but "
                f"'{self.embedding_name}' makes {dimensions}. Re-ingest with --rebuild.",
                code="embedding_mismatch",
            )

    def manifest(self) -> dict[str, str]:
        """Path -> file hash of every file in the index, read from each file's first chunk.

        A file whose first chunks disagree (an ingest stopped between writing a new version and
        deleting the old one) maps to "" so the next ingest rewrites it.
        """
        if not self.client.collection_exists(self.collection):
            return {}
        found: dict[str, str] = {}
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                scroll_filter=models.Filter(
                    must=[models.FieldCondition(key="metadata.chunk_index", match=models.MatchValue(value=0))]
                ),
                with_payload=["metadata.path", "metadata.file_hash"],
                with_vectors=False,
                limit=1024,
                offset=offset,
            )
            for point in points:
                meta = (point.payload or {}).get("metadata", {})
                path, file_hash = meta["path"], meta["file_hash"]
                found[path] = file_hash if found.get(path, file_hash) == file_hash else ""
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
            models.PointStruct(
                id=record.id,
                vector={DENSE: d, SPARSE: models.SparseVector(indices=s.indices, values=s.values)},
                payload={
                    "page_content": record.text,
                    "metadata": {
                        "path": record.path,
                        "title": record.title,
                        "heading": record.heading,
                        "headings": list(record.headings),
                        "url": record.url,
                        "page_url": record.page_url,
                        "module": record.module,
                        "chunk_index": record.index,
                        "file_hash": record.file_hash,
                    },
                },
            )
            for record, d, s in zip(records, dense, sparse)
        ]
        self.client.upsert(self.collection, points, wait=True)
        kept: dict[str, list[str]] = {}
        for record in records:
            kept.setdefault(record.path, []).append(record.id)
        # Old chunks go only after the new ones are in: a reader never sees a page with no chunks.
        for path, ids in kept.items():
            if replacing is not None and path not in replacing:
                continue
            self.client.delete(
                self.collection,
                models.Filter(
                    must=[_path_is(path)],
                    must_not=[models.HasIdCondition(has_id=ids)],
                ),
                wait=True,
            )

    def remove_paths(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        if paths and self.client.collection_exists(self.collection):
            self.client.delete(
                self.collection,
                models.Filter(must=[models.FieldCondition(key="metadata.path", match=models.MatchAny(any=paths))]),
                wait=True,
            )

    def drop(self) -> None:
        if self.client.collection_exists(self.collection):
            self.client.delete_collection(self.collection)
        self._store = None

    # -- reading --------------------------------------------------------------------------------

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return self.client.count(self.collection, exact=True).count

    def _vector_store(self) -> QdrantVectorStore:
        if self._store is None:
            if not self.client.collection_exists(self.collection):
                raise BookIndexError(
                    "The book index is empty. Run `booktutor ingest PATH` with your docs folder first.",
                    code="index_empty",
                )
            self._check_dimensions(len(self.embeddings.embed_query("dimension probe")))
            self._store = QdrantVectorStore(
                client=self.client,
                collection_name=self.collection,
                embedding=self.embeddings,
                sparse_embedding=self.sparse,
                retrieval_mode=RetrievalMode.HYBRID,
                vector_name=DENSE,
                sparse_vector_name=SPARSE,
            )
        return self._store

    def search(self, query: str, *, k: int = 5, page: str | None = None, module: str | None = None) -> list[Passage]:
        """Hybrid (dense + BM25) search fused with RRF, near-duplicates collapsed."""
        conditions = []
        if page:
            conditions.append(_page_is(page))
        if module:
            conditions.append(models.FieldCondition(key="metadata.module", match=models.MatchValue(value=module)))
        hits = self._vector_store().similarity_search_with_score(
            query, k=max(PREFETCH, k), filter=models.Filter(must=conditions) if conditions else None
        )
        passages = [_passage(doc.metadata["_id"], doc.page_content, doc.metadata, score) for doc, score in hits]
        return collapse_duplicates(passages)[:k]

    def page_passages(self, page: str) -> list[Passage]:
        """Every chunk of one page, in reading order."""
        if not self.client.collection_exists(self.collection):
            return []
        points, _ = self.client.scroll(
            self.collection, scroll_filter=models.Filter(must=[_page_is(page)]), limit=2048, with_vectors=False
        )
        points.sort(key=lambda p: p.payload["metadata"]["chunk_index"])
        return [_passage(str(p.id), p.payload["page_content"], p.payload["metadata"], 1.0) for p in points]

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


def _path_is(path: str) -> models.FieldCondition:
    return models.FieldCondition(key="metadata.path", match=models.MatchValue(value=path))


def _page_is(page: str) -> models.Filter:
    """A page given as a doc path (`01-ros2/02-nodes-topics.md`) or as the URL the reader is on."""
    url = page.split("#", 1)[0].rstrip("/") or "/"
    return models.Filter(
        should=[
            _path_is(page.lstrip("./")),
            models.FieldCondition(key="metadata.page_url", match=models.MatchValue(value=url)),
        ]
    )


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


def collapse_duplicates(passages: list[Passage], threshold: float = 0.9) -> list[Passage]:
    """Drop passages whose terms nearly repeat a better-ranked one (boilerplate repeated across pages)."""
    kept: list[tuple[Passage, set[str]]] = []
    for passage in passages:
        words = set(terms(passage["text"]))
        if any(len(words & seen) / (len(words | seen) or 1) >= threshold for _, seen in kept):
            continue
        kept.append((passage, words))
    return [p for p, _ in kept]


# -- opening --------------------------------------------------------------------------------------

_open_lock = threading.Lock()
_open: dict[tuple, BookIndex] = {}


def open_book_index(
    *,
    path: Path | str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    collection: str = "book",
    embedding_model: str | None = None,
) -> BookIndex:
    """The index at a Qdrant server `url`, or in local mode at `path`; one client per location.

    Qdrant's local mode locks its folder, so a process must reuse one client rather than open two.
    """
    if not url and not path:
        raise BookIndexError("Either a Qdrant URL or a local folder is needed.", code="index_unconfigured")
    key = (url or str(Path(path).resolve()), collection, embedding_model)
    with _open_lock:
        if key not in _open:
            client = _client(path=path, url=url, api_key=api_key)
            embeddings, name = get_embeddings(embedding_model)
            _open[key] = BookIndex(client, collection, embeddings, name)
        return _open[key]


def _client(*, path: Path | str | None, url: str | None, api_key: str | None) -> QdrantClient:
    if url:
        return QdrantClient(url=url, api_key=api_key, timeout=30)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(folder))
    except RuntimeError as exc:  # another process holds the local-mode lock
        raise BookIndexError(
            f"The local index at {folder} is in use by another booktutor process "
            "(Qdrant local mode allows one). Stop it, or run a Qdrant server and set QDRANT_URL.",
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
