"""Prometheus metrics and structured request logs (request, reader, thread and run ids on every line)."""

from __future__ import annotations

import contextvars
import json
import logging
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
reader_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("reader_id", default=None)
thread_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("thread_id", default=None)
run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The server's Prometheus metrics, on a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "booktutor_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "booktutor_http_request_seconds", "HTTP request duration", ["route"], registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.time_to_first_token = Histogram(
            "booktutor_time_to_first_token_seconds", "Run start to first answer token", registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.run_seconds = Histogram(
            "booktutor_run_seconds", "Run duration", ["outcome"], registry=self.registry, buckets=_LATENCY_BUCKETS
        )
        self.retrieval_seconds = Histogram(
            "booktutor_retrieval_seconds", "Query rewrite done to passages retrieved", registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.errors = Counter("booktutor_errors", "Errors returned, by code", ["code"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ContextFilter(logging.Filter):
    """Adds the current request, reader, thread and run ids to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.reader_id = reader_id_var.get()
        record.thread_id = thread_id_var.get()
        record.run_id = run_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, the ids alongside the message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "reader_id", "thread_id", "run_id", "method", "path", "status", "duration_ms"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger("booktutor")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


access_log = logging.getLogger("booktutor.access")


class RequestContext:
    """Pure ASGI middleware: a request id (echoed as X-Request-Id), metrics and one access-log line."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        tokens = [request_id_var.set(request_id), reader_id_var.set(None), thread_id_var.set(None), run_id_var.set(None)]
        started = time.perf_counter()
        status = 500

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.request_seconds.labels(template).observe(elapsed)
            access_log.info(
                "request",
                extra={"method": scope["method"], "path": scope["path"], "status": status,
                       "duration_ms": round(elapsed * 1000, 1)},
            )
            for var, token in zip((request_id_var, reader_id_var, thread_id_var, run_id_var), tokens):
                var.reset(token)
