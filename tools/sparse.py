"""Sparse lexical vectors for hybrid search: BM25 term weights, IDF applied by Qdrant.

Qdrant's `Modifier.IDF` keeps inverse document frequencies up to date as the collection changes, so
documents carry only the length-normalised term-frequency half of BM25 and queries carry a weight of 1
per term. Terms are Snowball-stemmed and hashed to 31-bit indices.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from functools import lru_cache
from hashlib import blake2b
from typing import Iterable

import snowballstemmer
from qdrant_edge import SparseVector

# BM25 defaults; AVERAGE_LENGTH approximates the stemmed, stopword-free length of one chunk.
K1 = 1.2
B = 0.75
AVERAGE_LENGTH = 120.0

# Keeps identifiers such as "ros2", "rclpy", "c++", "cmd_vel" and "nav2" as single terms.
_TOKEN = re.compile(r"[a-z0-9][a-z0-9_+#]*")
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves i'm it's let's use using used""".split()
)


# A Snowball stemmer keeps the word it is working on in its own fields, so concurrent searches (each on
# a worker thread) would garble each other's words: one stemmer per thread.
_STEMMERS = threading.local()


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    # The Snowball stemmer is pure Python; a book's vocabulary is small, so each word is stemmed once.
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = snowballstemmer.stemmer("english")
    return stemmer.stemWord(word)


def terms(text: str) -> list[str]:
    """Stemmed, stopword-free terms of `text`, in order."""
    return [_stem(w) for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS and len(w) < 40]


def one_letter_away(word: str) -> set[str]:
    """Every spelling one edit from `word`: a letter dropped, added or changed, or two neighbours swapped."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return (
        {a + b[1:] for a, b in splits if b}
        | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        | {a + c + b[1:] for a, b in splits if b for c in letters}
        | {a + c + b for a, b in splits for c in letters}
    )


def stopword_slips(word: str) -> set[str]:
    """The words too common to be terms that `word` is one edit from ("whqt": "what"): what a reader may
    have meant that no spelling of the book's words can offer."""
    return one_letter_away(word.lower()) & _STOPWORDS


@lru_cache(maxsize=65536)
def _term_index(term: str) -> int:
    return int.from_bytes(blake2b(term.encode(), digest_size=4).digest(), "big") & 0x7FFFFFFF


class BM25SparseEmbeddings:
    """BM25-style sparse vectors, as Qdrant Edge's `SparseVector` (langchain-qdrant's `SparseEmbeddings`
    calls; tools/qdrant_server.py hands them to langchain-qdrant for a server)."""

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        return [self._document_vector(text) for text in texts]

    def embed_query(self, text: str) -> SparseVector:
        return self.terms_vector(terms(text))

    @staticmethod
    def terms_vector(found: Iterable[str]) -> SparseVector:
        """The query vector of analyzer terms as they are (`terms` output, not analyzed again)."""
        indices = sorted({_term_index(term) for term in found})
        return SparseVector(indices, [1.0] * len(indices))

    @staticmethod
    def _document_vector(text: str) -> SparseVector:
        counts = Counter(_term_index(term) for term in terms(text))
        length = sum(counts.values())
        norm = K1 * (1 - B + B * length / AVERAGE_LENGTH)
        indices = sorted(counts)
        values = [counts[i] * (K1 + 1) / (counts[i] + norm) for i in indices]
        return SparseVector(indices, values)
