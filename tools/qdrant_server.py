"""A Qdrant server (QDRANT_URL) through qdrant-client, spoken to in Qdrant Edge's types.

`BookIndex` writes its requests in `qdrant_edge` types, which the local index (tools/edge_client.py)
takes as they are. `QdrantServer` answers the same calls for a server, translating each request into
qdrant-client's models here, in one place; its search goes through langchain-qdrant. Only this module
imports qdrant-client and langchain-qdrant (about 45 MB of modules), and only a process configured for
a server imports this module.
"""

from __future__ import annotations

import uuid
from typing import Any, Sequence

import qdrant_edge as qe
from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings, SparseVector
from qdrant_client import QdrantClient, models

_DISTANCES = {
    qe.Distance.Cosine: models.Distance.COSINE,
    qe.Distance.Dot: models.Distance.DOT,
    qe.Distance.Euclid: models.Distance.EUCLID,
}
_MODIFIERS = {qe.Modifier.Idf: models.Modifier.IDF}
_PAYLOAD_SCHEMAS = {
    qe.PayloadSchemaType.Keyword: models.PayloadSchemaType.KEYWORD,
    qe.PayloadSchemaType.Integer: models.PayloadSchemaType.INTEGER,
}


class QdrantServer:
    """Collections of a Qdrant server (or any `QdrantClient`), with `EdgeClient`'s calls."""

    def __init__(self, client: QdrantClient) -> None:
        self.qdrant = client
        # langchain-qdrant's store reads the collection's configuration when it is made: one per collection.
        self._stores: dict[str, QdrantVectorStore] = {}

    @classmethod
    def connect(cls, url: str, api_key: str | None) -> QdrantServer:
        return cls(QdrantClient(url=url, api_key=api_key, timeout=30))

    # -- collections --------------------------------------------------------------------------

    def check_writable(self) -> None:
        """A server's collections can change while processes search them."""

    def collection_exists(self, name: str) -> bool:
        return self.qdrant.collection_exists(name)

    def create_collection(self, name: str, config: qe.EdgeConfig) -> None:
        # Edge's memory settings (where its files live) mean nothing to a server and are not passed on.
        self.qdrant.create_collection(
            name,
            vectors_config={
                key: models.VectorParams(size=p.size, distance=_DISTANCES[p.distance]) for key, p in config.vectors.items()
            },
            sparse_vectors_config={
                key: models.SparseVectorParams(modifier=_MODIFIERS.get(p.modifier)) for key, p in config.sparse_vectors.items()
            },
        )

    def create_payload_index(self, name: str, field_name: str, field_schema: qe.PayloadSchemaType) -> None:
        self.qdrant.create_payload_index(name, field_name, _PAYLOAD_SCHEMAS[field_schema])

    def vector_sizes(self, name: str) -> dict[str, int]:
        vectors = self.qdrant.get_collection(name).config.params.vectors
        return {key: p.size for key, p in vectors.items()} if isinstance(vectors, dict) else {}

    def collection_names(self) -> list[str]:
        return sorted(c.name for c in self.qdrant.get_collections().collections)

    def delete_collection(self, name: str) -> None:
        self._stores.pop(name, None)
        self.qdrant.delete_collection(name)

    def close(self) -> None:
        self.qdrant.close()

    # -- points -------------------------------------------------------------------------------

    def upsert(self, name: str, points: Sequence[qe.Point]) -> None:
        structs = [models.PointStruct(id=_client_id(p.id), vector=_client_vectors(p.vector), payload=p.payload) for p in points]
        self.qdrant.upsert(name, structs, wait=True)

    def delete(self, name: str, points_selector: qe.Filter) -> None:
        self.qdrant.delete(name, client_filter(points_selector), wait=True)

    def count(self, name: str) -> int:
        return self.qdrant.count(name, exact=True).count

    def scroll(
        self,
        name: str,
        scroll_filter: qe.Filter | None = None,
        limit: int = 10,
        offset: Any = None,
        with_payload: bool | list[str] = True,
        with_vectors: bool | list[str] = False,
    ) -> tuple[list[models.Record], Any]:
        """qdrant-client's records: the same `id`, `payload` and `vector` fields as Edge's."""
        return self.qdrant.scroll(
            name,
            scroll_filter=client_filter(scroll_filter),
            limit=limit,
            offset=offset,
            with_payload=with_payload,
            with_vectors=with_vectors,
        )

    def sparse_match(self, name: str, using: str, vector: qe.SparseVector) -> bool:
        """Whether any point's sparse vector `using` shares a dimension with `vector`."""
        query = models.SparseVector(indices=list(vector.indices), values=list(vector.values))
        return bool(self.qdrant.query_points(name, query=query, using=using, limit=1, with_payload=False).points)

    def search(
        self,
        collection: str,
        query: str,
        *,
        embeddings: Embeddings,
        sparse: Any,
        vector_names: tuple[str, str],
        limit: int,
        query_filter: qe.Filter | None,
    ) -> list[tuple[str, str, dict, float]]:
        """The hybrid query run by Qdrant itself, through langchain-qdrant: (id, text, metadata, score).

        `sparse` is booktutor's BM25 embedder; `vector_names` are the dense and the sparse vector's.
        """
        store = self._stores.get(collection)
        if store is None:
            store = self._stores[collection] = QdrantVectorStore(
                client=self.qdrant,
                collection_name=collection,
                embedding=embeddings,
                sparse_embedding=_LangChainSparse(sparse),
                retrieval_mode=RetrievalMode.HYBRID,
                vector_name=vector_names[0],
                sparse_vector_name=vector_names[1],
            )
        hits = store.similarity_search_with_score(query, k=limit, filter=client_filter(query_filter))
        return [(doc.metadata["_id"], doc.page_content, doc.metadata, score) for doc, score in hits]


class _LangChainSparse(SparseEmbeddings):
    """booktutor's BM25 vectors as langchain-qdrant's sparse embeddings."""

    def __init__(self, sparse: Any) -> None:
        self.sparse = sparse

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        return [SparseVector(indices=v.indices, values=v.values) for v in self.sparse.embed_documents(texts)]

    def embed_query(self, text: str) -> SparseVector:
        v = self.sparse.embed_query(text)
        return SparseVector(indices=v.indices, values=v.values)


# -- translating Qdrant Edge's types -----------------------------------------------------------------


def _client_id(point_id: Any) -> Any:
    return str(point_id) if isinstance(point_id, uuid.UUID) else point_id


def _client_vectors(vectors: dict[str, Any]) -> dict[str, Any]:
    return {
        key: models.SparseVector(indices=list(v.indices), values=list(v.values)) if isinstance(v, qe.SparseVector) else list(v)
        for key, v in vectors.items()
    }


def client_filter(found: qe.Filter | None) -> models.Filter | None:
    """An Edge filter as qdrant-client's (the conditions `BookIndex` builds)."""
    if found is None:
        return None

    def conditions(items: list | None) -> list | None:
        return None if items is None else [_client_condition(c) for c in items]

    return models.Filter(must=conditions(found.must), should=conditions(found.should), must_not=conditions(found.must_not))


def _client_condition(condition: Any) -> Any:
    if isinstance(condition, qe.Filter):
        return client_filter(condition)
    if isinstance(condition, qe.HasIdCondition):
        return models.HasIdCondition(has_id=sorted(_client_id(i) for i in condition.point_ids))
    if isinstance(condition, qe.FieldCondition):
        match = condition.match
        if isinstance(match, qe.MatchValue):
            return models.FieldCondition(key=condition.key, match=models.MatchValue(value=match.value))
        if isinstance(match, qe.MatchAny):
            return models.FieldCondition(key=condition.key, match=models.MatchAny(any=list(match.value)))
    raise NotImplementedError(f"condition {condition!r}")
