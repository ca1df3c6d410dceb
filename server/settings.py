"""Process settings: one pydantic-settings class, read from the environment (and a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from graphs.context import Context


class Settings(BaseSettings):
    """Everything a booktutor process needs to know; every field has an environment variable."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    home: Path = Field(default=Path(".booktutor"), validation_alias="BOOKTUTOR_HOME")
    database_url: Optional[str] = Field(default=None, validation_alias="DATABASE_URL")
    qdrant_url: Optional[str] = Field(default=None, validation_alias="QDRANT_URL")
    qdrant_api_key: Optional[str] = Field(default=None, validation_alias="QDRANT_API_KEY")
    collection: str = Field(default="book", validation_alias="BOOKTUTOR_COLLECTION")
    embedding_model: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_EMBEDDING_MODEL")
    book_url: str = Field(default="/docs", validation_alias="BOOKTUTOR_BOOK_URL")
    top_k: int = Field(default=5, ge=1, le=50, validation_alias="BOOKTUTOR_TOP_K")
    max_message_chars: int = Field(default=4000, ge=1, validation_alias="BOOKTUTOR_MAX_MESSAGE_CHARS")
    max_selection_chars: int = Field(default=8000, ge=1, validation_alias="BOOKTUTOR_MAX_SELECTION_CHARS")

    @property
    def qdrant_path(self) -> Path:
        return self.home / "qdrant"

    def context(self, **overrides) -> Context:
        """The graph's per-run context for this process."""
        return Context(
            home=str(self.home),
            qdrant_url=self.qdrant_url,
            qdrant_api_key=self.qdrant_api_key,
            collection=self.collection,
            embedding_model=self.embedding_model,
            k=self.top_k,
            **overrides,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
