"""Embedding documents in length-sorted batches gives each text the vector it gets on its own."""

from __future__ import annotations

import numpy as np
import pytest

from booktutor.tools.embeddings import BATCH, DIMENSIONS, MAX_TOKENS, MiniLMEmbeddings, offline_embeddings

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


def test_batched_documents_match_texts_embedded_alone(embeddings):
    assert len(TEXTS) > BATCH  # more than one batch, of texts of very different lengths
    together = np.array(embeddings.embed_documents(TEXTS))
    alone = np.array([embeddings.embed_query(text) for text in TEXTS])
    assert together.shape == (len(TEXTS), DIMENSIONS)
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    assert (together * alone).sum(axis=1).min() >= 0.9999
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


def test_runs_hold_few_texts_and_no_more_word_pieces_than_one_long_text(embeddings, monkeypatch):
    runs = []
    embed_ids = embeddings._embed_ids

    def recording(batch):
        runs.append([len(ids) for ids in batch])
        return embed_ids(batch)

    monkeypatch.setattr(embeddings, "_embed_ids", recording)
    embeddings.embed_documents(TEXTS * 3)
    assert sum(map(len, runs)) == len(TEXTS) * 3
    assert any(len(run) > 1 for run in runs)
    assert all(len(run) <= BATCH and len(run) * max(run) <= MAX_TOKENS for run in runs if len(run) > 1)
