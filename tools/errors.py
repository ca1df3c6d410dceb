"""Errors that reach users: each carries a machine-readable code and a sentence a reader can act on."""

from __future__ import annotations


class BooktutorError(Exception):
    """Base for failures users should see as a message, never as a traceback."""

    code = "booktutor_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ModelRequiredError(BooktutorError):
    code = "model_required"


class BookIndexError(BooktutorError):
    """The book index is missing, empty or was built differently."""

    code = "index_unavailable"


class IngestError(BooktutorError):
    code = "ingest_failed"


class InvalidInputError(BooktutorError):
    code = "invalid_input"
