"""Retrieval quality on the real book: the evaluation gate, selections, and the reader's page."""

from __future__ import annotations

import pytest

from tests.conftest import EVAL_SET
from booktutor.tools.evaluation import evaluate_file, load_questions
from booktutor.tools.errors import InvalidInputError
from booktutor.tools.index import collapse_duplicates
from booktutor.tools.retrieval import build_search_tool, search

# The targets for the default offline setup (measured: 0.979 / 0.903, paraphrases 1.0 / 0.875).
RECALL_AT_5 = 0.90
MRR = 0.75
# Paraphrases (a learner's own words) are the hard kind; at most one of the eight may miss the top 5.
PARAPHRASE_RECALL_AT_5 = 0.85


async def test_dev_set_meets_the_retrieval_gate(book_index):
    report = await evaluate_file(EVAL_SET, book_index, k=5)

    assert report["overall"]["questions"] == 48
    assert report["overall"]["recall"] >= RECALL_AT_5, report["misses"]
    assert report["overall"]["mrr"] >= MRR, report["misses"]
    assert report["by_kind"]["selection"]["recall"] == 1.0, report["misses"]
    assert report["by_kind"]["paraphrase"]["recall"] >= PARAPHRASE_RECALL_AT_5, report["misses"]
    assert set(report["by_kind"]) == {"conceptual", "factual", "howto", "paraphrase", "selection"}


def test_selected_text_brings_its_own_section_first(book_index):
    selection = next(q for q in load_questions(EVAL_SET) if q["kind"] == "selection")
    expected = selection["expected_sources"][0]

    passages = search(book_index, selection["question"], k=5, selected_text=selection["selected_text"])

    assert passages[0]["path"] == expected
    assert len({p["id"] for p in passages}) == len(passages)


def test_selection_with_page_is_located_on_that_page(book_index):
    for item in (q for q in load_questions(EVAL_SET) if q["kind"] == "selection"):
        page = item["expected_sources"][0]
        passages = search(book_index, item["question"], k=5, selected_text=item["selected_text"], page=page)
        assert passages[0]["path"] == page, item["id"]


def test_page_the_reader_is_on_leads_without_hiding_the_book(book_index):
    question = "What is the difference between a service and an action?"
    passages = search(book_index, question, k=5, page="01-ros2/03-services-actions.md")
    assert passages[0]["path"] == "01-ros2/03-services-actions.md"
    by_url = search(book_index, question, k=5, page=passages[0]["url"].split("#")[0])
    assert by_url[0]["path"] == "01-ros2/03-services-actions.md"


async def test_search_book_is_a_langchain_tool(book_index):
    tool = build_search_tool(book_index)
    assert tool.name == "search_book" and "query" in tool.args
    passages = await tool.ainvoke({"query": "How do ROS 2 nodes exchange messages through topics?", "k": 3})
    assert len(passages) == 3
    assert "01-ros2/02-nodes-topics.md" in {p["path"] for p in passages}
    assert all(p["url"].startswith("/docs/") for p in passages)


def test_bad_evaluation_files_are_refused_clearly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no sources"}\n')
    with pytest.raises(InvalidInputError, match="expected_sources"):
        load_questions(bad)
    with pytest.raises(InvalidInputError, match="not found"):
        load_questions(tmp_path / "missing.jsonl")


def test_a_follow_up_searches_the_pages_the_previous_answer_cited(book_index):
    question = "What hardware does it need?"  # "it" is Isaac Sim, the page the previous answer cited
    query = f"How do I install Isaac Sim with Docker? {question}"  # as the rewrite step joins a follow-up
    plain = [p["path"] for p in search(book_index, query, asked=question, k=5)]
    followed = [p["path"] for p in search(book_index, query, asked=question, k=5, cited_before=["03-isaac/01-isaac-sim.md"])]

    assert plain[0] != "03-isaac/01-isaac-sim.md"
    assert followed[0] == "03-isaac/01-isaac-sim.md"
    assert "00-introduction/03-hardware-requirements.md" in followed  # the rest of the book is still there


def test_near_duplicates_collapse_and_stopping_early_changes_nothing(book_index):
    hits = book_index.search("How do ROS 2 nodes exchange messages through topics?", k=24)
    # Boilerplate repeated across pages: the same passage again under other ids, one with a word changed.
    copies = [{**hits[0], "id": "copy-1"}, {**hits[1], "id": "copy-2", "text": hits[1]["text"] + " Again."}]
    ranked = [hits[0], hits[1], *copies, *hits[2:]]

    collapsed = collapse_duplicates(ranked)

    assert [p["id"] for p in collapsed[:2]] == [hits[0]["id"], hits[1]["id"]]
    assert not {"copy-1", "copy-2"} & {p["id"] for p in collapsed}
    for keep in (1, 3, 5, 10):
        assert collapse_duplicates(ranked, keep=keep) == collapsed[:keep]
