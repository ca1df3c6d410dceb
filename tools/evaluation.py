"""Retrieval evaluation: recall@k and MRR of expected source pages, overall and per question kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from booktutor.tools.eval_questions import load_questions
from booktutor.tools.index import BookIndex
from booktutor.tools.retrieval import search

# Passages fetched per question before collapsing them to pages; pages are what a question expects.
PASSAGES_PER_PAGE = 4


def _query(item: dict[str, Any]) -> str:
    """The question, made standalone from `history` the way the offline rewrite step does it."""
    history = item.get("history") or []
    previous = [
        turn.get("content", "") if isinstance(turn, dict) else str(turn)
        for turn in history
        if not isinstance(turn, dict) or turn.get("role") in ("user", "human")
    ]
    if previous:
        from booktutor.tools.personalization import looks_like_follow_up

        if looks_like_follow_up(item["question"]):
            return f"{previous[-1]} {item['question']}"
    return item["question"]


def ranked_pages(index: BookIndex, item: dict[str, Any], *, k: int) -> list[str]:
    """Distinct page paths in rank order for one evaluation question."""
    passages = search(
        index,
        _query(item),
        k=k * PASSAGES_PER_PAGE,
        page=item.get("page"),
        selected_text=item.get("selected_text"),
    )
    return list(dict.fromkeys(p["path"] for p in passages))[:k]


def evaluate_file(file: Path, index: BookIndex, *, k: int = 5) -> dict[str, Any]:
    """Run every question and aggregate recall@k and MRR."""
    questions = load_questions(file)
    rows = []
    for item in questions:
        pages = ranked_pages(index, item, k=k)
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
