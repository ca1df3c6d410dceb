"""One error envelope for every HTTP failure: `{"error": {"code", "message"}}`, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from booktutor.tools.errors import BooktutorError

log = logging.getLogger("booktutor.server")

# HTTP status for error codes raised below the server (tools, graphs, the tutor).
STATUS_BY_CODE = {
    "thread_not_found": 404,
    "run_not_found": 404,
    "chapter_not_found": 404,
    "chapter_empty": 400,
    "chapter_too_large": 413,
    "profile_required": 409,
    "model_error": 502,
    "thread_busy": 409,
    "run_finished": 409,
    "model_required": 503,
    "index_empty": 503,
    "index_locked": 503,
    "index_unavailable": 503,
    "database_unavailable": 503,
    "server_busy": 503,
    "embedding_mismatch": 503,
    "translation_failed": 502,
    "rate_limited": 429,
    "body_too_large": 413,
    "forbidden": 403,
}


class ApiError(BooktutorError):
    """An error raised by the HTTP layer itself, with its status."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.headers = headers or {}


def envelope(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _count(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(code).inc()


def error_response(error: BooktutorError) -> JSONResponse:
    status = getattr(error, "status", None) or STATUS_BY_CODE.get(error.code, 400)
    headers = dict(getattr(error, "headers", {}) or {})
    if getattr(error, "retry_after", None):
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(envelope(error.code, error.message), status_code=status, headers=headers)


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
            return JSONResponse(envelope("malformed_json", "The request body is not valid JSON."), status_code=400)
        message = "; ".join(_describe(e) for e in errors[:5])
        _count(request, "invalid_request")
        return JSONResponse(envelope("invalid_request", message), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "auth_required", 403: "forbidden"}
        code = codes.get(error.status_code, "http_error")
        _count(request, code)
        return JSONResponse(
            envelope(code, str(error.detail)), status_code=error.status_code, headers=getattr(error, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        _count(request, "internal_error")
        return JSONResponse(envelope("internal_error", "Something went wrong on our side."), status_code=500)
