"""One error envelope for every HTTP failure: `{"error": {"code", "message"}}`, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from booktutor.tools.errors import BooktutorError

log = logging.getLogger("booktutor.server")

# The one table from error code to HTTP status, for errors raised anywhere (tools, graphs, the tutor,
# the HTTP layer). A code not listed is a request the caller can fix: 400.
STATUS_BY_CODE = {
    # the request itself
    "malformed_json": 400,
    "invalid_request": 422,
    "invalid_last_event_id": 400,
    "body_too_large": 413,
    # a turn's input (graphs/turn.py) and other languages
    "empty_message": 400,
    "message_too_long": 400,
    "selection_too_long": 400,
    "nul_character": 400,
    "unsupported_language": 400,
    # chapters
    "chapter_empty": 400,
    "chapter_too_large": 413,
    "chapter_not_found": 404,
    "profile_required": 409,
    # who is asking
    "auth_required": 401,
    "auth_failed": 401,
    "invalid_token": 401,
    "token_expired": 401,
    "invalid_visitor_id": 401,
    "auth_not_configured": 401,
    "auth_unavailable": 503,
    "forbidden": 403,
    "rate_limited": 429,
    # what they ask about
    "not_found": 404,
    "method_not_allowed": 405,
    "thread_not_found": 404,
    "message_not_found": 404,
    "run_not_found": 404,
    "thread_busy": 409,
    "run_finished": 409,
    "ingest_running": 409,
    "index_read_only": 409,
    # ingest: the folder named cannot be ingested
    "ingest_failed": 400,
    "docs_not_found": 400,
    "docs_not_a_folder": 400,
    "docs_empty": 400,
    # what the server depends on
    "model_error": 502,
    "translation_failed": 502,
    "model_required": 503,
    "index_empty": 503,
    "index_locked": 503,
    "index_needs_rebuild": 503,
    "index_unavailable": 503,
    "index_unconfigured": 503,
    "embedding_mismatch": 503,
    "database_unavailable": 503,
    "server_busy": 503,
    "not_ready": 503,
    "widget_not_built": 503,
    "internal_error": 500,
}


# Seconds a client is asked to wait before retrying while the database is unreachable.
DATABASE_RETRY_AFTER = 2


def _database_error_classes() -> list[type[BaseException]]:
    """The exception classes a lost or refused database connection arrives as, from each driver."""
    import psycopg
    import sqlalchemy.exc
    from psycopg_pool import PoolTimeout

    classes: list[type[BaseException]] = [sqlalchemy.exc.DBAPIError, psycopg.Error, PoolTimeout, ConnectionError]
    try:
        import asyncpg

        classes += [asyncpg.PostgresError, asyncpg.InterfaceError]
    except ImportError:
        pass
    return classes


def status_for(code: str) -> int:
    """The HTTP status of an error code."""
    return STATUS_BY_CODE.get(code, 400)


class HttpError(BooktutorError):
    """A booktutor error raised by the HTTP layer; its status comes from the table like every other."""

    @property
    def status(self) -> int:
        return status_for(self.code)


class ApiError(HttpError):
    """An error raised by a route or the run manager, optionally with response headers."""

    def __init__(self, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code)
        self.headers = headers or {}


def envelope(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _count(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(code).inc()


def error_response(error: BooktutorError) -> JSONResponse:
    headers = dict(getattr(error, "headers", {}) or {})
    if getattr(error, "retry_after", None):
        headers["Retry-After"] = str(error.retry_after)
    elif error.code == "database_unavailable":
        headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return JSONResponse(envelope(error.code, error.message), status_code=status_for(error.code), headers=headers)


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body",))
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BooktutorError)
    async def booktutor_error(request: Request, error: BooktutorError) -> JSONResponse:
        _count(request, error.code)
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = error.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            _count(request, "malformed_json")
            return JSONResponse(
                envelope("malformed_json", "The request body is not valid JSON."), status_code=status_for("malformed_json")
            )
        nul = next((e for e in errors if e.get("type") == "nul_character"), None)
        if nul is not None:
            # Text Postgres cannot store (see server/bodies.py): a request the caller can fix, not a 422 shape error.
            _count(request, "nul_character")
            return JSONResponse(envelope("nul_character", f"{nul.get('msg')}."), status_code=status_for("nul_character"))
        message = "; ".join(_describe(e) for e in errors[:5])
        _count(request, "invalid_request")
        return JSONResponse(envelope("invalid_request", message), status_code=status_for("invalid_request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Starlette's own errors (an unknown path, a wrong method) arrive with a status; name it.
        codes = {404: "not_found", 405: "method_not_allowed", 401: "auth_required", 403: "forbidden"}
        code = codes.get(error.status_code, "http_error")
        _count(request, code)
        return JSONResponse(
            envelope(code, str(error.detail)), status_code=error.status_code, headers=getattr(error, "headers", None)
        )

    async def database_failure(request: Request, error: Exception) -> JSONResponse:
        # Registered for the driver's own exception classes (not `Exception`), so the response goes out
        # through the normal path and the keep-alive connection survives.
        from booktutor.server.db import is_outage

        if is_outage(error):
            _count(request, "database_unavailable")
            return JSONResponse(
                envelope("database_unavailable", "The database is unreachable; try again shortly."),
                status_code=status_for("database_unavailable"),
                headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
            )
        log.exception("database error on %s %s", request.method, request.url.path)
        _count(request, "internal_error")
        return JSONResponse(
            envelope("internal_error", "Something went wrong on our side."), status_code=status_for("internal_error")
        )

    for kind in _database_error_classes():
        app.add_exception_handler(kind, database_failure)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        _count(request, "internal_error")
        return JSONResponse(
            envelope("internal_error", "Something went wrong on our side."), status_code=status_for("internal_error")
        )
