"""Per-run knobs, read by nodes through `Runtime[Context]`; unset fields fall back to the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional


def _env(name: str, default: str | None = None):
    return field(default_factory=lambda: os.getenv(name, default))


@dataclass(kw_only=True)
class Context:
    """Where the book lives, how much to retrieve, and who is reading."""

    home: str = _env("BOOKTUTOR_HOME", ".booktutor")
    """Data folder of the embedded defaults (the local Qdrant index lives in `<home>/qdrant`)."""
    qdrant_url: Optional[str] = _env("QDRANT_URL")
    """A Qdrant server; unset means Qdrant local mode in the data folder."""
    qdrant_api_key: Optional[str] = _env("QDRANT_API_KEY")
    """API key for the Qdrant server."""
    collection: str = _env("BOOKTUTOR_COLLECTION", "book")
    """The Qdrant collection holding the book."""
    embedding_model: Optional[str] = _env("BOOKTUTOR_EMBEDDING_MODEL")
    """An OpenAI-compatible embedding model; unset means the offline MiniLM."""
    k: int = field(default_factory=lambda: int(os.getenv("BOOKTUTOR_TOP_K", "5")))
    """How many passages the answer is given."""
    history_turns: int = 6
    """How many earlier messages the answer and rewrite steps see."""
    profile: Optional[dict[str, Any]] = None
    """The reader's profile (software/hardware background, level, goals, preferred language)."""
