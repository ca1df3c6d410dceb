"""Process settings: one pydantic-settings class, read from the environment (and a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from booktutor.graphs.context import Context


class Settings(BaseSettings):
    """Everything a booktutor process needs to know; every field has an environment variable."""

    # The prefix keeps field names from matching unrelated variables such as HOME or ENVIRONMENT.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True, env_prefix="BOOKTUTOR_"
    )

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

    # -- the HTTP server --
    environment: Literal["development", "production"] = Field(default="development", validation_alias="BOOKTUTOR_ENV")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="BOOKTUTOR_CORS_ORIGINS")
    jwt_secret: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_JWT_SECRET")
    jwks_url: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_JWKS_URL")
    jwt_algorithm: str = Field(default="RS256", validation_alias="BOOKTUTOR_JWT_ALGORITHM")
    jwt_audience: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_JWT_AUDIENCE")
    jwt_issuer: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_JWT_ISSUER")
    allow_anonymous: Optional[bool] = Field(default=None, validation_alias="BOOKTUTOR_ALLOW_ANONYMOUS")
    visitor_secret: Optional[str] = Field(default=None, min_length=32, validation_alias="BOOKTUTOR_VISITOR_SECRET")
    admin_subjects: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="BOOKTUTOR_ADMIN_SUBJECTS")
    rate_limit: str = Field(default="60/minute", validation_alias="BOOKTUTOR_RATE_LIMIT")
    anonymous_rate_limit: str = Field(default="10/minute", validation_alias="BOOKTUTOR_ANONYMOUS_RATE_LIMIT")
    request_rate_limit: str = Field(default="600/minute", validation_alias="BOOKTUTOR_REQUEST_RATE_LIMIT")
    max_body_bytes: int = Field(default=1_000_000, ge=1024, validation_alias="BOOKTUTOR_MAX_BODY_BYTES")
    max_concurrent_runs: int = Field(default=16, ge=1, validation_alias="BOOKTUTOR_MAX_CONCURRENT_RUNS")
    run_retention_seconds: float = Field(default=600, ge=1, validation_alias="BOOKTUTOR_RUN_RETENTION_SECONDS")
    heartbeat_seconds: float = Field(default=15, gt=0, validation_alias="BOOKTUTOR_HEARTBEAT_SECONDS")
    chapter_concurrency: int = Field(default=4, ge=1, le=64, validation_alias="BOOKTUTOR_CHAPTER_CONCURRENCY")
    max_chapter_chars: int = Field(default=200_000, ge=1, validation_alias="BOOKTUTOR_MAX_CHAPTER_CHARS")

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data):
        # Comma-separated lists in environment variables: BOOKTUTOR_CORS_ORIGINS=https://a,https://b
        if isinstance(data, dict):
            for key in ("cors_origins", "BOOKTUTOR_CORS_ORIGINS", "admin_subjects", "BOOKTUTOR_ADMIN_SUBJECTS"):
                if isinstance(data.get(key), str):
                    data[key] = [item.strip() for item in data[key].split(",") if item.strip()]
        return data

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.environment != "production":
            return self
        problems = []
        if not (self.jwt_secret or self.jwks_url) and not self.allow_anonymous:
            problems.append("set BOOKTUTOR_JWT_SECRET or BOOKTUTOR_JWKS_URL (or BOOKTUTOR_ALLOW_ANONYMOUS=true)")
        if self.jwt_secret and len(self.jwt_secret) < 32:
            problems.append("BOOKTUTOR_JWT_SECRET must be at least 32 characters")
        if self.allow_anonymous and len(self.visitor_secret or "") < 32:
            problems.append("anonymous visitors need BOOKTUTOR_VISITOR_SECRET (at least 32 characters) to sign their ids")
        if "*" in self.cors_origins:
            problems.append("BOOKTUTOR_CORS_ORIGINS must list origins, not '*'")
        if problems:
            raise ValueError("unsafe production settings: " + "; ".join(problems))
        return self

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
