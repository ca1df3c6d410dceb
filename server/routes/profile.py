"""The reader's profile: what they told us about themselves, so answers fit them."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from booktutor.server import crud
from booktutor.server.bodies import StoredBody
from booktutor.server.deps import CurrentReader, SessionDep
from booktutor.tools.translation import LANGUAGES, language_info

router = APIRouter(prefix="/v1", tags=["profile"])

ExperienceLevel = Literal["beginner", "intermediate", "advanced", ""]


class ProfileBody(StoredBody):
    """A whole profile. Fields left out are reset to their defaults (PUT replaces the profile)."""

    # A misspelt field would otherwise be dropped silently and the reader would think it was saved.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    software_background: str = Field(default="", max_length=500, description="e.g. 'Python, some C++'.")
    hardware_background: str = Field(default="", max_length=500, description="e.g. 'Arduino, no robots yet'.")
    experience_level: ExperienceLevel = Field(default="", description="Empty when not given.")
    goals: str = Field(default="", max_length=1000, description="What the reader wants to build or learn.")
    preferred_language: str = Field(
        default="en",
        max_length=16,
        description=f"Language code answers are written in; one of {', '.join(sorted(LANGUAGES))} (`ur-PK` works too).",
    )


class ProfileOut(BaseModel):
    software_background: str
    hardware_background: str
    experience_level: str
    goals: str
    preferred_language: str


DEFAULTS = ProfileOut(**ProfileBody().model_dump())


@router.get("/profile", response_model=ProfileOut)
async def get_profile(reader: CurrentReader, session: SessionDep) -> ProfileOut:
    """The reader's profile; defaults (empty, English) when they have not saved one."""
    stored = await crud.get_profile(session, reader_id=reader.id)
    if stored is None:
        return DEFAULTS
    return ProfileOut.model_validate(stored, from_attributes=True)


@router.put(
    "/profile",
    response_model=ProfileOut,
    responses={
        400: {"description": "An unsupported language (`unsupported_language`)."},
        422: {"description": "Invalid fields (`invalid_request`)."},
    },
)
async def put_profile(body: ProfileBody, reader: CurrentReader, session: SessionDep) -> ProfileOut:
    """Save the reader's profile (anonymous visitors too, under their visitor id) and return it."""
    language, _, _ = language_info(body.preferred_language)
    fields = {**body.model_dump(), "preferred_language": language}
    saved = await crud.upsert_profile(session, reader_id=reader.id, fields=fields)
    return ProfileOut.model_validate(saved, from_attributes=True)
