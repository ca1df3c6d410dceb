"""Evaluation: retrieval (recall@k and MRR of expected source pages) and, given an answerer, answers
(key terms of the reference answer found, and declines right and wrong), overall and per question kind.

Each question goes the way a chat turn does: made standalone by `search_query` (the `rewrite_query`
tool) and searched by `search` (the `search_book` tool), with the reader's own words fused in; the
answerer is handed the passages the answer step would get.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

from langchain_core.runnables import Runnable

from booktutor.tools.eval_questions import load_questions
from booktutor.tools.index import BookIndex, Passage
from booktutor.tools.personalization import search_query
from booktutor.tools.retrieval import search
from booktutor.tools.sparse import terms

# Passages fetched per question before collapsing them to pages; pages are what a question expects.
PASSAGES_PER_PAGE = 4
UNCOVERED = "uncovered"
"""The `kind` of a question near the book's subject that the book does not answer (see `_answers`)."""

Answerer = Callable[[dict[str, Any], list[Passage]], Awaitable[str]]
"""(evaluation question, the passages the answer step gets) -> the answer's text."""

_CITATION = re.compile(r"\[\d{1,2}\]")
_MARKUP = re.compile(r"[`*_]")


def history_lines(item: dict[str, Any]) -> list[str]:
    """An evaluation question's earlier turns as the rewrite step reads a thread's: "role: text"."""
    lines = []
    for turn in item.get("history") or []:
        if not isinstance(turn, dict):
            lines.append(f"user: {turn}")
        else:
            role = "user" if turn.get("role") in ("user", "human") else "assistant"
            lines.append(f"{role}: {turn.get('content', '')}")
    return lines


def declined(answer: str) -> bool:
    """An answer that cites nothing: it says the book does not cover the question."""
    return not _CITATION.search(answer)


def key_term_found(term: str, answer: str) -> bool:
    """A reference key term is in the answer: verbatim (case and Markdown emphasis aside) or, for words,
    with every stemmed term of it present ("spins in place" finds "spin in place")."""
    flat = " ".join(_MARKUP.sub("", answer).lower().split())
    if " ".join(_MARKUP.sub("", term).lower().split()) in flat:
        return True
    wanted = set(terms(term))
    return bool(wanted) and wanted <= set(terms(flat)) and not re.search(r"\d", term)


async def retrieve_for(
    index: BookIndex, item: dict[str, Any], *, k: int, rewriter: Runnable | None = None
) -> tuple[str, list[Passage]]:
    """(the standalone query, `k` passages) for one evaluation question, as the chat's retrieve step."""
    question = item["question"]
    selected = item.get("selected_text")
    query = await search_query(
        rewriter, question, history=history_lines(item), profile=item.get("profile"), selected_text=selected
    )
    # What the previous answer cited, as a thread's last AI message carries it.
    earlier = [t for t in item.get("history") or [] if isinstance(t, dict) and t.get("role") in ("assistant", "ai")]
    cited_before = (earlier[-1].get("sources") or None) if earlier else None
    passages = await asyncio.to_thread(
        search, index, query, asked=question, k=k, page=item.get("page"), selected_text=selected, cited_before=cited_before
    )
    return query, passages


async def ranked_pages(
    index: BookIndex, item: dict[str, Any], *, k: int, rewriter: Runnable | None = None
) -> list[str]:
    """Distinct page paths in rank order for one evaluation question."""
    _, passages = await retrieve_for(index, item, k=k * PASSAGES_PER_PAGE, rewriter=rewriter)
    return list(dict.fromkeys(p["path"] for p in passages))[:k]


async def evaluate_file(
    file: Path,
    index: BookIndex,
    *,
    k: int = 5,
    rewriter: Runnable | None = None,
    answerer: Answerer | None = None,
    answer_k: int = 5,
) -> dict[str, Any]:
    """Run every question and aggregate recall@k and MRR; `rewriter` is the model the chat's rewrite step
    uses (None offline). With an `answerer` (see `Answerer`), each question is also answered from
    `answer_k` passages and the answer scored against the question's `key_terms`."""
    questions = load_questions(file)
    rows = []
    for item in questions:
        expected = list(item["expected_sources"])
        row: dict[str, Any] = {"id": item.get("id", ""), "kind": item.get("kind", "all"), "expected": expected}
        if expected:
            pages = await ranked_pages(index, item, k=k, rewriter=rewriter)
            first = next((rank for rank, page in enumerate(pages, start=1) if page in expected), None)
            row |= {
                "recall": len([p for p in expected if p in pages]) / len(expected),
                "rr": 1.0 / first if first else 0.0,
                "got": pages,
            }
        if answerer is not None:
            _, passages = await retrieve_for(index, item, k=answer_k, rewriter=rewriter)
            text = await answerer(item, passages)
            key_terms = list(item.get("key_terms") or [])
            row |= {
                "off_topic": bool(item.get("off_topic")),
                "declined": declined(text),
                "terms": (sum(key_term_found(t, text) for t in key_terms) / len(key_terms)) if key_terms else None,
                "answer": text,
            }
        rows.append(row)

    kinds = sorted({r["kind"] for r in rows})
    report: dict[str, Any] = {
        "file": str(file),
        "k": k,
        "overall": _retrieval([r for r in rows if "recall" in r]),
        "by_kind": {kind: _retrieval([r for r in rows if r["kind"] == kind and "recall" in r]) for kind in kinds},
        "misses": [
            {key: r[key] for key in ("id", "kind", "expected", "got")}
            for r in rows
            if "recall" in r and r["recall"] < 1.0
        ],
    }
    report["by_kind"] = {kind: figures for kind, figures in report["by_kind"].items() if figures["questions"]}
    if answerer is not None:
        report["answers"] = _answers(rows)
        report["answers_by_kind"] = {kind: _answers([r for r in rows if r["kind"] == kind]) for kind in kinds}
        report["answer_misses"] = [
            {key: r[key] for key in ("id", "kind", "off_topic", "declined", "terms", "answer")}
            for r in rows
            if (r["off_topic"] != r["declined"]) or (r["terms"] is not None and r["terms"] < 0.5)
        ]
    return report


def _retrieval(rows: list[dict[str, Any]]) -> dict[str, float]:
    count = len(rows)
    return {
        "questions": count,
        "recall": sum(r["recall"] for r in rows) / count if count else 0.0,
        "mrr": sum(r["rr"] for r in rows) / count if count else 0.0,
    }


def _answers(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Key terms found (the mean share per answerable question, and the share of answers holding at least
    half of theirs), and declines: of the questions the book answers (wrong) and of the rest (right).

    Questions the book does not answer are off-topic (far from its subject: a capital city, a recipe) or,
    with `"kind": "uncovered"`, near its subject but not in it (drones, in a book on humanoids); their
    declines are counted apart, because a similarity threshold tells the first kind from the book and
    hardly the second."""
    answerable = [r for r in rows if not r["off_topic"]]
    scored = [r for r in answerable if r["terms"] is not None]
    off_topic = [r for r in rows if r["off_topic"] and r["kind"] != UNCOVERED]
    uncovered = [r for r in rows if r["off_topic"] and r["kind"] == UNCOVERED]
    return {
        "questions": len(rows),
        "key_terms": sum(r["terms"] for r in scored) / len(scored) if scored else None,
        "half_or_more": sum(r["terms"] >= 0.5 for r in scored) / len(scored) if scored else None,
        "answerable": len(answerable),
        "answerable_declined": sum(r["declined"] for r in answerable) / len(answerable) if answerable else None,
        "off_topic": len(off_topic),
        "off_topic_declined": sum(r["declined"] for r in off_topic) / len(off_topic) if off_topic else None,
        "uncovered": len(uncovered),
        "uncovered_declined": sum(r["declined"] for r in uncovered) / len(uncovered) if uncovered else None,
        # The two kinds together: what a reader asking outside the book meets, and what the targets are set on.
        "not_covered_declined": (
            sum(r["declined"] for r in off_topic + uncovered) / len(off_topic + uncovered) if off_topic or uncovered else None
        ),
    }
