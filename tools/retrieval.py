"""The `search_book` tool: hybrid search of the book, with the reader's selection first."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from booktutor.tools.index import RRF_K, BookIndex, Passage

# How many of the pages a previous answer cited (its first citations) a follow-up searches too.
FOLLOW_UP_PAGES = 1
# A cited page's ranking counts half of the search's own (chosen on the dev follow-ups): enough to lift
# the page "it" points at, not enough to put it before what the follow-up's own words ask for.
CITED_WEIGHT = 0.5


class SearchBookInput(BaseModel):
    query: str = Field(description="What to look for, as a standalone question or keywords.")
    k: int = Field(default=5, ge=1, le=50, description="How many passages to return.")
    page: Optional[str] = Field(
        default=None, description="Doc path or URL of the page the reader is on, to search that page first."
    )
    module: Optional[str] = Field(default=None, description="Limit the search to one module folder, e.g. '01-ros2'.")
    selected_text: Optional[str] = Field(
        default=None, description="A passage the reader selected; the section it comes from is returned first."
    )
    asked: Optional[str] = Field(
        default=None,
        description="The reader's own words when `query` is a rewrite of them; both are searched and fused.",
    )
    cited_before: Optional[list[str]] = Field(
        default=None,
        description="Doc paths the previous answer cited, for a follow-up: their passages are searched too and fused.",
    )


def search(
    index: BookIndex,
    query: str,
    *,
    k: int = 5,
    page: str | None = None,
    module: str | None = None,
    selected_text: str | None = None,
    asked: str | None = None,
    cited_before: list[str] | None = None,
) -> list[Passage]:
    """Passages for `query`: the selection's own section(s) first, then search results, no repeats.

    When `query` rewrites what the reader `asked`, both are searched and the rankings fused: the rewrite
    carries the conversation's topic, the reader's words what they want to know now (a follow-up's
    "how is that different from a service?" must not be drowned by the earlier question it was joined to).
    """
    located = index.locate(selected_text, page=page) if selected_text else []
    # A follow-up ("what hardware does it need?") is most likely about the pages just cited: their best
    # passages are one more ranking in the fusion, so they rise without hiding the rest of the book.
    before = [index.search(query, k=k, page=path) for path in list(dict.fromkeys(cited_before or []))[:FOLLOW_UP_PAGES]]
    if asked and asked.strip() and asked.strip() != query.strip():
        # Fused from deeper lists (a passage fourth in both rankings beats one first in a single one);
        # ties go to the reader's own words.
        depth = 2 * k
        results = _fused(index.search(asked, k=depth, module=module), index.search(query, k=depth, module=module))
    else:
        results = index.search(query, k=k, module=module)
    if before:
        results = _fused(results, *before, weights=(1.0, *[CITED_WEIGHT] * len(before)))
    if page and not selected_text:
        # The reader's page is context, not a wall: its best passages lead, the rest of the book follows.
        on_page = index.search(query, k=2, page=page)
        results = on_page + results
    seen = {p["id"] for p in located}
    merged = list(located)
    for passage in results:
        if passage["id"] not in seen:
            seen.add(passage["id"])
            merged.append(passage)
    return merged[: max(k, len(located))]


def fuse(rankings: Iterable[Sequence[str]], limit: int) -> list[tuple[str, float]]:
    """Reciprocal Rank Fusion as Qdrant computes it, ties kept in first-seen order."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rank + RRF_K)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)[:limit]


def _fused(*rankings: list[Passage], weights: tuple[float, ...] | None = None) -> list[Passage]:
    """Reciprocal Rank Fusion of passage rankings; with `weights`, each ranking's share is scaled."""
    by_id = {p["id"]: p for ranking in rankings for p in ranking}
    if weights is None:
        fused = fuse([[p["id"] for p in r] for r in rankings], len(by_id))
    else:
        scores: dict[str, float] = {}
        for ranking, weight in zip(rankings, weights, strict=True):
            for rank, passage in enumerate(ranking):
                scores[passage["id"]] = scores.get(passage["id"], 0.0) + weight / (rank + RRF_K)
        fused = sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
    return [{**by_id[point_id], "score": score} for point_id, score in fused]


def build_search_tool(index: BookIndex) -> BaseTool:
    """`search_book` bound to one index."""

    def search_book(
        query: str,
        k: int = 5,
        page: str | None = None,
        module: str | None = None,
        selected_text: str | None = None,
        asked: str | None = None,
        cited_before: list[str] | None = None,
    ) -> list[Passage]:
        return search(
            index, query, k=k, page=page, module=module, selected_text=selected_text, asked=asked, cited_before=cited_before
        )

    return StructuredTool.from_function(
        search_book,
        name="search_book",
        description=(
            "Search the textbook. Returns passages with their path, title, heading and URL for citations."
        ),
        args_schema=SearchBookInput,
    )
