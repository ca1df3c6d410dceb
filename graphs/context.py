"""Per-run knobs, read by nodes through `Runtime[Context]`; unset fields take the process settings.

The server builds a run's context with `Settings.context()`; Studio (`langgraph dev`), which loads the
graph without the server, gets the same values from the field defaults, and either may override a
field per run (another model for a role, a smaller `k`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from booktutor.agents.endpoint import Endpoint, Role
from booktutor.graphs.settings import get_settings, local_index_path
from booktutor.tools.index import BookIndex, open_book_index


def _setting(name: str):
    return field(default_factory=lambda: get_settings().context_defaults()[name])


@dataclass(kw_only=True)
class Context:
    """Where the book lives, how much to retrieve, which model speaks for each role, and who is reading."""

    home: str = _setting("home")
    """Data folder of the embedded defaults (the local Qdrant index lives in `<home>/qdrant`)."""
    qdrant_url: Optional[str] = _setting("qdrant_url")
    """A Qdrant server; unset means the local index (Qdrant Edge) in the data folder."""
    qdrant_api_key: Optional[str] = _setting("qdrant_api_key")
    """API key for the Qdrant server."""
    collection: str = _setting("collection")
    """The Qdrant collection holding the book."""
    embedding_model: Optional[str] = _setting("embedding_model")
    """An OpenAI-compatible embedding model; unset means the offline MiniLM."""
    k: int = _setting("k")
    """How many passages the answer is given."""
    answer_model: str = _setting("answer_model")
    """The model that writes answers (on the configured endpoint; offline without one)."""
    rewrite_model: str = _setting("rewrite_model")
    """The model that rewrites a question into a standalone search query."""
    translate_model: str = _setting("translate_model")
    """The model that translates answers and selections."""
    personalize_model: str = _setting("personalize_model")
    """The model that rewrites a chapter for a reader."""
    endpoint: Endpoint = _setting("endpoint")
    """The OpenAI-compatible server the models run on; one with no URL and no key means offline."""
    history_turns: int = 6
    """How many earlier messages the answer and rewrite steps see."""
    profile: Optional[dict[str, Any]] = None
    """The reader's profile (software/hardware background, level, goals, preferred language)."""

    def __post_init__(self) -> None:
        # A context sent as JSON (Studio, the LangGraph API) carries the endpoint as a plain object.
        if isinstance(self.endpoint, dict):
            self.endpoint = Endpoint(**self.endpoint)

    def model(self, role: Role) -> str:
        """The model name this run asks for in `role`."""
        return getattr(self, f"{role}_model")


def open_index(context: Context) -> BookIndex:
    """The book index a context points at: a Qdrant server, or Qdrant Edge in `<home>/qdrant`.

    `open_book_index` keeps one client per location, so every caller shares the one opened index.
    """
    return open_book_index(
        path=None if context.qdrant_url else local_index_path(context.home),
        url=context.qdrant_url,
        api_key=context.qdrant_api_key,
        collection=context.collection,
        embedding_model=context.embedding_model,
    )
