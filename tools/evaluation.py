"""Retrieval evaluation: recall@k and MRR of expected source pages, overall and per question kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from booktutor.tools.errors import InvalidInputError
from booktutor.tools.index import BookIndex
from booktutor.tools.retrieval import search

# Passages fetched per question before collapsing them to pages; pages are what a question expects.
PASSAGES_PER_PAGE = 4


def load_questions(file: Path) -> list[dict[str, Any]]:
    """Questions from a JSONL file; each needs `question` and `expected_sources`."""
    if not file.is_file():
        raise InvalidInputError(f"Evaluation file not found: {file}", code="eval_file_not_found")
    questions = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{file}:{number}: not JSON ({exc.msg})", code="eval_file_invalid") from exc
        if not isinstance(item, dict) or not item.get("question") or not item.get("expected_sources"):
            raise InvalidInputError(
                f"{file}:{number}: each line needs 'question' and 'expected_sources'", code="eval_file_invalid"
            )
        questions.append(item)
    if not questions:
        raise InvalidInputError(f"{file} has no questions.", code="eval_file_invalid")
    return questions


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
