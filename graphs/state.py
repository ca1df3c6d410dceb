"""The state of a tutor thread, checkpointed after every step."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from booktutor.tools.index import Passage

TurnKind = Literal["question", "follow_up", "explain", "translate", "small_talk"]


def add_passages(existing: list[Passage] | None, new: list[Passage] | None) -> list[Passage]:
    """Append retrieved passages, keeping the first copy of each point id."""
    merged = list(existing or [])
    seen = {p["id"] for p in merged}
    for passage in new or []:
        if passage["id"] not in seen:
            seen.add(passage["id"])
            merged.append(passage)
    return merged


class InputState(TypedDict, total=False):
    """What a caller sends for one turn."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The conversation; a turn adds one human message."""
    selected_text: Optional[str]
    """A passage the reader selected on the page; the answer is about it."""
    page: Optional[str]
    """Doc path or URL of the page the reader is on."""
    language: Optional[str]
    """Language code to answer in (e.g. `ur`); English when unset."""


class State(InputState, total=False):
    """Everything a turn reads and writes."""

    turn: TurnKind
    """What kind of turn the route step decided this is."""
    translate_to: Optional[str]
    """The language the route step decided the reply is translated into; None means it stays as written."""
    answer_language: Optional[str]
    """The language the route step decided a configured model writes the answer in directly (streamed as
    written, no translation after it); None means English."""
    query: str
    """The standalone search query the rewrite step produced."""
    passages: Annotated[list[Passage], add_passages]
    """Passages retrieved for this turn, the selection's own section first; reset at each turn."""
    citations: list[dict[str, Any]]
    """The passages the answer cites, as {n, path, title, heading, url}."""
    error: Optional[dict[str, str]]
    """A failure the caller should show ({code, message}); the answer so far is kept."""


class OutputState(TypedDict, total=False):
    """What a caller reads back after a turn."""

    messages: list[AnyMessage]
    """The conversation including the new answer."""
    citations: list[dict[str, Any]]
    """The passages the answer cites."""
    passages: list[Passage]
    """Every passage the answer was given."""
    turn: TurnKind
    """The kind of turn."""
    translate_to: Optional[str]
    """The language the reply was to be translated into (None: English); the reply itself says the
    language it ended up in, which stays English when translation failed."""
    error: Optional[dict[str, str]]
    """A failure to show, if any."""
