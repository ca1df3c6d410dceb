"""Process settings: one pydantic-settings class, the one place that reads the environment (and `.env`).

It sits below the server so the graph can take its defaults from it when Studio loads the graph on
its own; the server re-exports it from `server/settings.py`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from booktutor.agents.endpoint import DEFAULT_MODEL, ROLES, Endpoint, Role

if TYPE_CHECKING:
    from booktutor.graphs.context import Context


def local_index_path(home: Path | str) -> Path:
    """The local Qdrant folder inside a data folder."""
    return Path(home) / "qdrant"


class Settings(BaseSettings):
    """Everything a booktutor process needs to know; every field has an environment variable."""

    # The prefix keeps field names from matching unrelated variables such as HOME or ENVIRONMENT.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        env_prefix="BOOKTUTOR_",
        # Fields such as `model_timeout` are ours, not pydantic's `model_*` methods.
        protected_namespaces=(),
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

    # -- the language model: an OpenAI-compatible endpoint when a key or base URL is set, offline otherwise --
    openai_api_key: Optional[str] = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: Optional[str] = Field(default=None, validation_alias="OPENAI_BASE_URL")
    model: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_MODEL")
    answer_model: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_ANSWER_MODEL")
    rewrite_model: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_REWRITE_MODEL")
    translate_model: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_TRANSLATE_MODEL")
    personalize_model: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_PERSONALIZE_MODEL")
    model_timeout: float = Field(default=60, gt=0, validation_alias="BOOKTUTOR_MODEL_TIMEOUT")
    model_retries: int = Field(default=2, ge=0, validation_alias="BOOKTUTOR_MODEL_RETRIES")

    log_level: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_LOG_LEVEL")

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
    # A run whose process has not renewed its lease for this long is marked interrupted.
    run_lease_seconds: float = Field(default=15, ge=0.5, validation_alias="BOOKTUTOR_RUN_LEASE_SECONDS")
    redis_url: Optional[str] = Field(default=None, validation_alias="BOOKTUTOR_REDIS_URL")
    # How long a client may take to send one whole request (headers and body) before it is cut off.
    request_timeout_seconds: float = Field(default=60, gt=0, validation_alias="BOOKTUTOR_REQUEST_TIMEOUT_SECONDS")
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
        """Where the local index (Qdrant Edge) is kept when no QDRANT_URL is set."""
        return local_index_path(self.home)

    @property
    def model_endpoint(self) -> Endpoint:
        return Endpoint(
            base_url=self.openai_base_url,
            api_key=self.openai_api_key,
            timeout=self.model_timeout,
            retries=self.model_retries,
        )

    def model_for(self, role: Role) -> str:
        """The model a role asks for: its own variable, else BOOKTUTOR_MODEL, else the default."""
        return getattr(self, f"{role}_model") or self.model or DEFAULT_MODEL

    def context_defaults(self) -> dict[str, Any]:
        """The graph context's fields as this process configures them."""
        return {
            "home": str(self.home),
            "qdrant_url": self.qdrant_url,
            "qdrant_api_key": self.qdrant_api_key,
            "collection": self.collection,
            "embedding_model": self.embedding_model,
            "k": self.top_k,
            "endpoint": self.model_endpoint,
            **{f"{role}_model": self.model_for(role) for role in ROLES},
        }

    def context(self, **overrides: Any) -> "Context":
        """The graph's per-run context for this process; `overrides` set per-run fields (profile, a model)."""
        # Imported here: the context module takes its own defaults from this one.
        from booktutor.graphs.context import Context

        return Context(**{**self.context_defaults(), **overrides})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
