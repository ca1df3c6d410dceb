"""Process settings: documented variables only, comma lists, and no unsafe production defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from booktutor.server.settings import Settings


def test_unrelated_variables_named_like_fields_are_ignored(monkeypatch):
    # HOME is set on every machine; it must not become the data folder.
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("COLLECTION", "other")
    settings = Settings()
    assert settings.home == Path(".booktutor")
    assert settings.environment == "development"
    assert settings.collection == "book"


def test_documented_variables_are_read(monkeypatch):
    monkeypatch.setenv("BOOKTUTOR_HOME", "/srv/tutor")
    monkeypatch.setenv("DATABASE_URL", "postgresql://tutor@db/tutor")
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("BOOKTUTOR_CORS_ORIGINS", "https://book.example, https://www.book.example")
    settings = Settings()
    assert settings.home == Path("/srv/tutor") and settings.qdrant_path == Path("/srv/tutor/qdrant")
    assert settings.database_url == "postgresql://tutor@db/tutor" and settings.qdrant_url == "http://qdrant:6333"
    assert settings.cors_origins == ["https://book.example", "https://www.book.example"]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "BOOKTUTOR_JWT_SECRET"),
        ({"jwt_secret": "short"}, "at least 32"),
        ({"jwt_secret": "x" * 40, "cors_origins": ["*"]}, "CORS"),
        ({"allow_anonymous": True}, "BOOKTUTOR_VISITOR_SECRET"),
    ],
)
def test_production_refuses_unsafe_settings(fields, problem):
    with pytest.raises(ValidationError, match=problem):
        Settings(environment="production", **fields)
    assert Settings(environment="production", jwt_secret="x" * 40).environment == "production"
