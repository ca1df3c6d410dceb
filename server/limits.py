"""Guards against one client exhausting the server: body size, request rate and concurrent runs."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from typing import Any, Awaitable, Callable, MutableMapping

import limits
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from booktutor.server.auth import Reader
from booktutor.server.errors import HttpError

log = logging.getLogger("booktutor.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(HttpError):
    """The request body is over the configured limit (HTTP 413)."""

    code = "body_too_large"


class RateLimited(HttpError):
    """The reader made too many requests; `retry_after` is how many seconds to wait (HTTP 429)."""

    code = "rate_limited"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(
            message or f"Too many requests; try again in {self.retry_after} second{'s' if self.retry_after != 1 else ''}."
        )


class ServerBusy(HttpError):
    """Every run slot of this process is taken (HTTP 503)."""

    code = "server_busy"

    def __init__(self, message: str = "The tutor is busy with other readers; try again in a moment.") -> None:
        super().__init__(message)


class BodySizeLimit:
    """Pure ASGI middleware refusing HTTP request bodies larger than `max_bytes` with a 413 envelope.

    A declared `Content-Length` over the limit is refused before the app runs. Otherwise the body is
    counted as the app reads it, which also covers chunked uploads that declare no length: once the
    count passes the limit nothing more is read, the 413 is sent (if the app has not started a
    response) and the app's pending `receive()` raises, so it never sees the complete body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return

        received = 0
        over = False
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, over, refused
            if over:
                raise _BodyOverLimit()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    if not started:
                        refused = True
                        await self._refuse(send)
                    raise _BodyOverLimit()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Once the 413 has gone out, whatever the app sends (say, a 500 for our exception) is dropped.
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # Our own stop signal, or what the app made of it: the client already has its 413.
            if not refused:
                raise

    async def _refuse(self, send: Send) -> None:
        error = BodyTooLarge(f"The request body is larger than the limit of {self.max_bytes:,} bytes.")
        body = json.dumps({"error": error.as_dict()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body stays unread, so the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyOverLimit(Exception):
    """Raised from `receive()` to stop an app that is reading an oversized body."""


def _declared_length(scope: Scope) -> int | None:
    longest: int | None = None
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                # The server rejects malformed lengths; counting still protects us if one slips through.
                continue
            longest = length if longest is None else max(longest, length)
    return longest


# Requests that cost: each starts a tutor run or a model call. Reading one's own profile, threads or
# a run's stream costs nothing worth rationing, so a reader browsing the widget never meets the quota.
COSTLY_REQUESTS = re.compile(
    r"POST /v1/(chat|explain|translate|chapters/(translate|personalize)|ingest"
    r"|threads/[^/]+/messages/[^/]+/translate)/?"
)


def costs(method: str, path: str) -> bool:
    """Whether a request counts against the reader's quota of turns and translations."""
    return COSTLY_REQUESTS.fullmatch(f"{method.upper()} {path}") is not None


class _MemoryStorage(MemoryStorage):
    """`limits`' in-process storage, sweeping out expired entries once a second instead of 10 ms after
    every hit.

    Its sweep walks every reader's window (a thread started per sweep): with a thousand readers a busy
    process spent more on it than on their requests. A hit never depends on it, since it reads its own
    reader's entries and their times; the sweep only frees the memory of windows that ran out.
    """

    SWEEP_SECONDS = 1.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # overrides the base class's private scheduler
        if not self.timer.is_alive():
            self.timer = threading.Timer(self.SWEEP_SECONDS, self._MemoryStorage__expire_events)
            self.timer.daemon = True
            self.timer.start()


class RateLimiter:
    """Per-reader limits over a moving window (`limits` strings such as "60/minute").

    What costs (turns, translations; see `costs`) is counted against `anonymous_rate_limit` for
    anonymous readers and `rate_limit` for signed-in ones. Every request, costly or not, also counts
    against the much larger `request_rate_limit`, which only a runaway client reaches.

    Where the counts live: with `BOOKTUTOR_REDIS_URL` set, in Redis, so every process and machine
    counts against the same window (the moving window runs as one Redis script, so concurrent hits
    cannot both slip in). Without it, in this process's memory: one process needs nothing more, but
    with N processes a reader may make up to N times the configured rate. Postgres is not used for
    this: a hit on every request would add a write to the database the turns already wait on.
    If Redis cannot be reached, requests are let through (logged) rather than refused: a quota
    protects the model bill, it must not take the tutor down with it.
    """

    def __init__(self, settings: Any) -> None:
        self._signed_in = limits.parse(settings.rate_limit)
        self._anonymous = limits.parse(settings.anonymous_rate_limit)
        self._requests = limits.parse(settings.request_rate_limit)
        storage = (
            storage_from_string(settings.redis_url, wrap_exceptions=True)
            if getattr(settings, "redis_url", None)
            else _MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(storage)

    def check_request(self, reader: Reader, method: str, path: str) -> None:
        """Count one HTTP request for `reader`, or raise `RateLimited`."""
        self._hit(self._requests, "request", reader)
        if costs(method, path):
            self.check(reader)

    def check(self, reader: Reader) -> None:
        """Count one costly request for `reader`, or raise `RateLimited` if their window is full."""
        self._hit(self._anonymous if reader.anonymous else self._signed_in, "reader", reader)

    def _hit(self, item: limits.RateLimitItem, kind: str, reader: Reader) -> None:
        try:
            if self._limiter.hit(item, kind, reader.id):
                return
            stats = self._limiter.get_window_stats(item, kind, reader.id)
        except StorageError as exc:
            log.warning("rate limits not checked, their storage is unreachable: %s", exc)
            return
        raise RateLimited(math.ceil(stats.reset_time - time.time()))


class ConcurrencyLimit:
    """At most `max_runs` tutor runs at once in this process; the caller answers `ServerBusy` when full."""

    def __init__(self, max_runs: int) -> None:
        if max_runs < 1:
            raise ValueError("max_runs must be at least 1")
        self.max_runs = max_runs
        self._in_use = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        """How many slots are taken."""
        return self._in_use

    def try_acquire(self) -> bool:
        """Take a slot if one is free; never waits."""
        with self._lock:
            if self._in_use >= self.max_runs:
                return False
            self._in_use += 1
            return True

    def release(self) -> None:
        """Give back a slot taken with `try_acquire`."""
        with self._lock:
            if self._in_use == 0:
                raise RuntimeError("ConcurrencyLimit.release() called more often than try_acquire()")
            self._in_use -= 1
