"""Where the models run and which model each role asks for: plain values, no model client imported.

Kept apart from `models.py` so the settings (read at every command's start) stay quick to import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

Role = Literal["answer", "rewrite", "translate", "personalize"]
ROLES: tuple[Role, ...] = ("answer", "rewrite", "translate", "personalize")
DEFAULT_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server. Neither a base URL nor a key means none: the offline model speaks."""

    base_url: Optional[str] = None
    api_key: Optional[str] = None
    timeout: float = 60.0
    retries: int = 2

    @property
    def configured(self) -> bool:
        return bool(self.base_url or self.api_key)


OFFLINE = Endpoint()
