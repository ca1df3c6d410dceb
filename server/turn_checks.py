"""The checks a turn's input must pass before anything is written or started.

Its own light module (no LangGraph, no database) so the CLI refuses bad input in a fraction of a
second, before it imports the search stack or starts PostgreSQL; the tutor runs the same checks.
"""

from __future__ import annotations

from booktutor.server.settings import Settings
from booktutor.tools.errors import InvalidInputError
from booktutor.tools.languages import language_info


def validate_turn(
    settings: Settings,
    *,
    message: str,
    selected_text: str | None = None,
    language: str | None = None,
) -> None:
    """Refuse input that cannot make a useful turn, before anything is written."""
    if not message or not message.strip():
        raise InvalidInputError("The message is empty. Ask a question about the book.", code="empty_message")
    if len(message) > settings.max_message_chars:
        raise InvalidInputError(
            f"The message is {len(message)} characters; the limit is {settings.max_message_chars}. "
            "Shorten it, or select the passage and ask about it.",
            code="message_too_long",
        )
    if selected_text is not None and len(selected_text) > settings.max_selection_chars:
        raise InvalidInputError(
            f"The selected text is {len(selected_text)} characters; the limit is {settings.max_selection_chars}.",
            code="selection_too_long",
        )
    if language:
        language_info(language)
