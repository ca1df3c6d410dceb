"""The app's own tables (checkpoint tables belong to langgraph-checkpoint-postgres)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Thread(Base):
    """A conversation; its messages live in the checkpoints under the same id."""

    __tablename__ = "threads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reader_id: Mapped[Optional[str]] = mapped_column(String(128), index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class IngestRun(Base):
    """One `booktutor ingest`: what it found and changed."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    root: Mapped[str] = mapped_column(String(1024))
    collection: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    files: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Profile(Base):
    """What a reader told us about themselves; answers are written for it."""

    __tablename__ = "profiles"

    reader_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    software_background: Mapped[str] = mapped_column(String(500), default="")
    hardware_background: Mapped[str] = mapped_column(String(500), default="")
    experience_level: Mapped[str] = mapped_column(String(20), default="")
    goals: Mapped[str] = mapped_column(String(1000), default="")
    preferred_language: Mapped[str] = mapped_column(String(16), default="en")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    def as_context(self) -> dict[str, str]:
        """The profile as the graph's Context expects it (empty fields left out)."""
        fields = ("software_background", "hardware_background", "experience_level", "goals", "preferred_language")
        return {name: getattr(self, name) for name in fields if getattr(self, name)}


class Feedback(Base):
    """A reader's rating of one answer."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reader_id: Mapped[str] = mapped_column(String(128), index=True)
    thread_id: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str] = mapped_column(String(128))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChapterSection(Base):
    """One finished section of a translated or personalized chapter.

    Keyed by the chapter's content hash, what was made (`kind`: translate / personalize), for whom
    (`target`: a language code or a profile fingerprint) and the section's position; `section_hash` lets
    an edited chapter reuse the sections it did not change.
    """

    __tablename__ = "chapter_sections"
    __table_args__ = (Index("ix_chapter_sections_reuse", "kind", "target", "section_hash"),)

    chapter_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    section_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    section_hash: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
