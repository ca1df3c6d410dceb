"""A turn's inputs as one value, checked in one place, whichever door (HTTP, CLI) they came through.

Kept light (no LangGraph, no database at import) so the CLI refuses bad input in a fraction of a
second, before it loads the search stack or starts PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from booktutor.tools.errors import InvalidInputError
from booktutor.tools.languages import language_info

if TYPE_CHECKING:
    from booktutor.graphs.settings import Settings


@dataclass(frozen=True)
class TurnInput:
    """What a reader sends for one turn."""

    message: str
    """The reader's question or request."""
    selected_text: Optional[str] = None
    """A passage the reader selected on the page; the answer is about it."""
    page: Optional[str] = None
    """Doc path or URL of the page the reader is on."""
    language: Optional[str] = None
    """Language code to answer in (e.g. `ur`); the reader's preferred language, else English, when unset."""

    def validate(self, settings: "Settings") -> None:
        """Refuse input that cannot make a useful turn, before anything is written."""
        if not self.message or not self.message.strip():
            raise InvalidInputError("The message is empty. Ask a question about the book.", code="empty_message")
        if len(self.message) > settings.max_message_chars:
            raise InvalidInputError(
                f"The message is {len(self.message)} characters; the limit is {settings.max_message_chars}. "
                "Shorten it, or select the passage and ask about it.",
                code="message_too_long",
            )
        if self.selected_text is not None and len(self.selected_text) > settings.max_selection_chars:
            raise InvalidInputError(
                f"The selected text is {len(self.selected_text)} characters; the limit is "
                f"{settings.max_selection_chars}.",
                code="selection_too_long",
            )
        for name in ("message", "selected_text", "page", "language"):
            # Postgres text cannot hold NUL, so such a turn would fail only when its checkpoint is written.
            if "\x00" in (getattr(self, name) or ""):
                raise InvalidInputError(f"The {name.replace('_', ' ')} contains a NUL character.", code="nul_character")
        if self.language:
            language_info(self.language)

    @property
    def title(self) -> str:
        """What a new thread started by this turn is called."""
        return self.message.strip()

    def graph_input(self) -> dict[str, Any]:
        """The graph's input for this turn.

        Every per-turn field is sent, even when empty, so a turn never inherits the previous one's.
        """
        from langchain_core.messages import HumanMessage

        return {
            "messages": [HumanMessage(self.message.strip())],
            "selected_text": self.selected_text or None,
            "page": self.page or None,
            "language": self.language or None,
        }
