"""Answer quality of the default offline setup, on the dev answer set and on the unseen sets.

The unseen sets (eval/unseen-*.jsonl) were written before any tuning and are never used to choose a
threshold or a weight; the dev answer set (eval/dev-answers.jsonl) is the one tuned on.
"""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from booktutor.graphs.context import Context
from booktutor.graphs.nodes import evaluation_answerer
from booktutor.tools.evaluation import evaluate_file

DEV = REPO / "eval" / "dev-answers.jsonl"
UNSEEN_BOOK = REPO / "eval" / "unseen-physical-ai.jsonl"
UNSEEN_SAMPLE = REPO / "eval" / "unseen-sample-book.jsonl"

# Targets: key terms of the reference found >= 50 % on average, >= 60 % of answers hold half of theirs;
# >= 90 % of off-topic and uncovered questions declined and <= 5 % of answerable ones (measured: see the
# README).
KEY_TERMS = 0.50
HALF_OR_MORE = 0.60
ANSWERABLE_DECLINED = 0.05
OFF_TOPIC_DECLINED = 0.90
# Questions near the book's subject that it does not answer ("kind": "uncovered": drones, exoskeletons,
# welding, Rust, a PS4 gamepad, in a book on humanoids) come as close to the book as learners' own
# paraphrases of what it does answer. Of the dev set's 24, the similarity threshold declines 7, a word of
# the question that the passages never use and that carries much of its meaning ("underwater", "swarms")
# 4 more, and the words the whole book never uses, taken together, 9 more: when they outweigh every other
# word ("surgical" and "surgeon", "warranty" and "insurance"), or leave the question closer to its best
# passage without them ("Rust"). 20 of 24: the gate fails at 19.
DEV_UNCOVERED_DECLINED = 0.83
# What the unseen sets show today (a regression guard; the threshold is never tuned on these sets): their
# answers hold half their key terms in 12 of 16 (physical-AI pages) and 18 of 21 (sample book); of their
# off-topic and uncovered questions together 4 of 5 and 5 of 6 are declined: a circuit-board question
# finds "Actuators" and "How do legged walking robots keep their balance?" a caster "for balance".
UNSEEN_HALF_OR_MORE = 0.75
UNSEEN_NOT_COVERED_DECLINED = 0.80


def answerer(index):
    """The default offline answer model reading `index`'s book, as `booktutor eval` runs it."""
    return evaluation_answerer(Context(home="unused", qdrant_url=None, embedding_model=None, k=5), index)


async def test_dev_answers_meet_the_targets(book_index):
    report = await evaluate_file(DEV, book_index, k=5, answerer=answerer(book_index))
    answers = report["answers"]

    assert answers["key_terms"] >= KEY_TERMS, report["answer_misses"]
    assert answers["half_or_more"] >= HALF_OR_MORE, report["answer_misses"]
    assert answers["answerable_declined"] <= ANSWERABLE_DECLINED, report["answer_misses"]
    assert answers["off_topic_declined"] >= OFF_TOPIC_DECLINED, report["answer_misses"]
    assert answers["uncovered_declined"] >= DEV_UNCOVERED_DECLINED, report["answer_misses"]
    assert report["overall"]["recall"] >= 0.95 and report["overall"]["mrr"] >= 0.85


@pytest.mark.parametrize("unseen", ["book", "sample"])
async def test_unseen_sets_hold_up(unseen, book_index, sample_book_index):
    file, index = (UNSEEN_BOOK, book_index) if unseen == "book" else (UNSEEN_SAMPLE, sample_book_index)
    report = await evaluate_file(file, index, k=5, answerer=answerer(index))
    answers = report["answers"]

    assert answers["key_terms"] >= KEY_TERMS, report["answer_misses"]
    assert answers["half_or_more"] >= UNSEEN_HALF_OR_MORE, report["answer_misses"]
    assert answers["answerable_declined"] <= ANSWERABLE_DECLINED, report["answer_misses"]
    assert answers["off_topic_declined"] >= OFF_TOPIC_DECLINED, report["answer_misses"]
    declined = answers["off_topic"] * answers["off_topic_declined"] + answers["uncovered"] * answers["uncovered_declined"]
    assert declined / (answers["off_topic"] + answers["uncovered"]) >= UNSEEN_NOT_COVERED_DECLINED, report["answer_misses"]
    # Retrieval carries over: within 0.05 of the dev gate's figures.
    assert report["overall"]["recall"] >= 0.95 - 0.05 and report["overall"]["mrr"] >= 0.85 - 0.05, report["misses"]


async def test_the_sample_books_first_questions_get_their_answers(sample_book_index):
    from booktutor.tools.evaluation import retrieve_for

    answer_from = answerer(sample_book_index)
    for question, wanted in [
        ("What is Pip's track width?", "0.16"),
        ("How does it turn in place?", "| `v_L = -v_R` | Spins in place around its centre, `v = 0` |"),
        ("How do I get started tuning PID on a real robot?", "1. Set `Ki` and `Kd` to zero."),
        # The README's quick-start question: the derivative section, not the index page's list of chapters.
        ("How does a PID controller use the derivative term?", "The derivative term looks at **how fast the error is changing**"),
    ]:
        item = {"question": question}
        _, passages = await retrieve_for(sample_book_index, item, k=5)
        answer = await answer_from(item, passages)
        assert wanted in answer, answer
