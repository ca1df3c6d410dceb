"""The `rewrite_query` tool: personalization-aware rewriting of a turn into a standalone search query."""

from __future__ import annotations

import re
from typing import Any, Optional

from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

# Openings and references that only make sense after an earlier turn.
_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|then|what about|how about|what if|compared)\b|^why(\s+not)?\s*\??\s*$"
    r"|\b(it|its|that|this|these|those|they|them|the same|the former|the latter|one)\b",
    re.I,
)


def looks_like_follow_up(question: str) -> bool:
    """A short message leaning on something said before ("and how is that different...?")."""
    return len(question.split()) <= 18 and bool(_FOLLOW_UP.search(question))


async def search_query(
    rewriter: Runnable | None,
    question: str,
    *,
    history: list[str] | None = None,
    profile: dict[str, Any] | None = None,
    selected_text: str | None = None,
) -> str:
    """The query a turn searches the book with: `question` made standalone for this reader.

    `history` holds earlier turns, oldest first, as "user: text" / "assistant: text". With a language
    model (`rewriter`: {question, history, profile} -> query) a turn with history or a profile is
    rewritten. Without one, a follow-up is prefixed with the previous question so retrieval keeps its
    topic; anything else is searched as asked (rewriting it blind would only lose the reader's words).
    A selection is appended: it says what the question is about better than "what does this mean?".
    """
    history = history or []
    if rewriter is not None and (history or profile):
        rewritten = await rewriter.ainvoke({"question": question, "history": history[-6:], "profile": profile})
        query = rewritten.strip().strip('"').strip() or question
    else:
        previous = next((turn.split(": ", 1)[1] for turn in reversed(history) if turn.startswith("user: ")), None)
        query = f"{previous} {question}" if previous and looks_like_follow_up(question) else question
    return f"{query}\n{selected_text[:1000]}" if selected_text else query


class RewriteQueryInput(BaseModel):
    question: str = Field(description="The reader's latest message.")
    history: list[str] = Field(default_factory=list, description="Earlier turns, oldest first, as 'role: text'.")
    profile: Optional[dict[str, Any]] = Field(default=None, description="The reader's profile.")
    selected_text: Optional[str] = Field(default=None, description="A passage the reader selected and asks about.")


def build_rewrite_tool(rewriter: Runnable | None) -> BaseTool:
    """`rewrite_query` (see `search_query`) using a language model when there is one, a conservative rule otherwise."""

    async def rewrite_query(
        question: str, history: list[str] | None = None, profile: dict | None = None, selected_text: str | None = None
    ) -> str:
        return await search_query(rewriter, question, history=history, profile=profile, selected_text=selected_text)

    return StructuredTool.from_function(
        coroutine=rewrite_query,
        name="rewrite_query",
        description="Turn the reader's latest message into a standalone search query for the book.",
        args_schema=RewriteQueryInput,
    )
