"""Request bodies whose text may reach Postgres: a NUL character is refused before anything is written.

Postgres text cannot hold NUL (`\\u0000`), so a profile goal, feedback comment or chapter carrying one
would fail only when its row is written, as a 500. Every body model that is stored derives from
`StoredBody`; the error handler answers the `nul_character` code with 400 (see server/errors.py). A
turn's own inputs are checked the same way by `TurnInput.validate`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

NUL_CHARACTER = "nul_character"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(item) for item in value)
    return False


class StoredBody(BaseModel):
    """A request body checked, field by field, for text Postgres cannot store."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, value in data.items():
                if _has_nul(value):
                    raise PydanticCustomError(NUL_CHARACTER, f"{name} contains a NUL character")
        return data
