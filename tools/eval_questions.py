"""An evaluation set: questions with the pages that should answer them, one JSON object a line.

Read apart from the evaluation itself (which needs the index) so the CLI refuses a missing or
malformed file at once, before it loads the search stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from booktutor.tools.errors import InvalidInputError


def load_questions(file: Path) -> list[dict[str, Any]]:
    """Questions from a JSONL file; each needs `question` and `expected_sources`, which may be empty only
    for a question marked `"off_topic": true` (one the book does not answer, which should be declined).

    Optional fields: `kind`, `history` (earlier turns), `selected_text`, `page`, and for answer scoring
    `answer` (a short reference answer) with its `key_terms`."""
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
        if (
            not isinstance(item, dict)
            or not item.get("question")
            or not isinstance(item.get("expected_sources"), list)
            or not (item["expected_sources"] or item.get("off_topic"))
        ):
            raise InvalidInputError(
                f"{file}:{number}: each line needs 'question' and 'expected_sources' (empty only with "
                "'off_topic': true)",
                code="eval_file_invalid",
            )
        questions.append(item)
    if not questions:
        raise InvalidInputError(f"{file} has no questions.", code="eval_file_invalid")
    return questions
