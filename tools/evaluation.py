"""Retrieval evaluation: recall@k and MRR of expected source pages, overall and per question kind.

Each question goes the way a chat turn does: made standalone by `search_query` (the `rewrite_query`
tool) and searched by `search` (the `search_book` tool), with the reader's own words fused in.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable

from booktutor.tools.eval_questions import load_questions
from booktutor.tools.index import BookIndex
from booktutor.tools.personalization import search_query
from booktutor.tools.retrieval import search

# Passages fetched per question before collapsing them to pages; pages are what a question expects.
PASSAGES_PER_PAGE = 4


def _history(item: dict[str, Any]) -> list[str]:
    """An evaluation question's earlier turns as the rewrite step reads a thread's: "role: text"."""
    lines = []
    for turn in item.get("history") or []:
        if not isinstance(turn, dict):
            lines.append(f"user: {turn}")
        else:
            role = "user" if turn.get("role") in ("user", "human") else "assistant"
            lines.append(f"{role}: {turn.get('content', '')}")
    return lines


async def ranked_pages(
    index: BookIndex, item: dict[str, Any], *, k: int, rewriter: Runnable | None = None
) -> list[str]:
    """Distinct page paths in rank order for one evaluation question."""
    question = item["question"]
    selected = item.get("selected_text")
    query = await search_query(
        rewriter, question, history=_history(item), profile=item.get("profile"), selected_text=selected
    )
    passages = await asyncio.to_thread(
        search, index, query, asked=question, k=k * PASSAGES_PER_PAGE, page=item.get("page"), selected_text=selected
    )
    return list(dict.fromkeys(p["path"] for p in passages))[:k]


async def evaluate_file(
    file: Path, index: BookIndex, *, k: int = 5, rewriter: Runnable | None = None
) -> dict[str, Any]:
    """Run every question and aggregate recall@k and MRR; `rewriter` is the model the chat's rewrite step
    uses (None offline)."""
    questions = load_questions(file)
    rows = []
    for item in questions:
        pages = await ranked_pages(index, item, k=k, rewriter=rewriter)
        expected = list(item["expected_sources"])
        hits = [p for p in expected if p in pages]
        first = next((rank for rank, page in enumerate(pages, start=1) if page in expected), None)
        rows.append(
            {
                "id": item.get("id", ""),
                "kind": item.get("kind", "all"),
                "recall": len(hits) / len(expected),
                "rr": 1.0 / first if first else 0.0,
                "expected": expected,
                "got": pages,
            }
        )

    def aggregate(selected: list[dict]) -> dict[str, float]:
        return {
            "questions": len(selected),
            "recall": sum(r["recall"] for r in selected) / len(selected),
            "mrr": sum(r["rr"] for r in selected) / len(selected),
        }

    kinds = sorted({r["kind"] for r in rows})
    return {
        "k": k,
        "overall": aggregate(rows),
        "by_kind": {kind: aggregate([r for r in rows if r["kind"] == kind]) for kind in kinds},
        "misses": [
            {key: r[key] for key in ("id", "kind", "expected", "got")} for r in rows if r["recall"] < 1.0
        ],
    }
