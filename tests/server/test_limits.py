"""Body size, request rate and concurrency limits, driven through real ASGI apps and the `limits` library."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from booktutor.server.auth import Reader
from booktutor.server.limits import BodySizeLimit, ConcurrencyLimit, RateLimited, RateLimiter, ServerBusy, costs
from booktutor.server.settings import Settings
from booktutor.tools.errors import BooktutorError

MiB = 1024 * 1024


class Question(BaseModel):
    message: str


class Counted:
    """Outermost ASGI layer: counts the body bytes actually pulled from the client (the transport)."""

    def __init__(self, app) -> None:
        self.app = app
        self.pulled = 0
        self.headers: dict[bytes, bytes] = {}

    async def __call__(self, scope, receive, send) -> None:
        self.headers = dict(scope.get("headers", []))

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                self.pulled += len(message.get("body", b""))
            return message

        await self.app(scope, counting_receive, send)


def tutor_app(ran: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/ask")
    async def ask(question: Question) -> dict:
        ran.append(question.message)
        return {"echo": question.message}

    @app.post("/raw")
    async def raw(request: Request) -> dict:
        # An endpoint that swallows every error must still not get the oversized body.
        try:
            body = await request.body()
        except Exception:
            ran.append("swallowed")
            return {"size": -1}
        ran.append("read")
        return {"size": len(body)}

    return app


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://booktutor.test")


def assert_too_large(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "body_too_large"
    assert f"{limit:,}" in error["message"]
    assert response.headers["content-type"] == "application/json"


async def chunks(count: int, size: int, produced: list[int]):
    for _ in range(count):
        produced.append(size)
        yield b"x" * size


# -- BodySizeLimit ----------------------------------------------------------------------------------


async def test_small_json_passes():
    ran: list[str] = []
    async with client(BodySizeLimit(tutor_app(ran), max_bytes=1_000)) as http:
        response = await http.post("/ask", json={"message": "What is a ROS 2 topic?"})
    assert response.status_code == 200
    assert response.json() == {"echo": "What is a ROS 2 topic?"}
    assert ran == ["What is a ROS 2 topic?"]


async def test_body_of_exactly_the_limit_passes():
    ran: list[str] = []
    body = b"y" * 4096
    async with client(BodySizeLimit(tutor_app(ran), max_bytes=len(body))) as http:
        response = await http.post("/raw", content=body)
    assert response.status_code == 200 and response.json() == {"size": 4096}


async def test_declared_content_length_over_limit_is_refused_before_the_app_runs():
    ran: list[str] = []
    app = Counted(BodySizeLimit(tutor_app(ran), max_bytes=1_000))
    async with client(app) as http:
        response = await http.post("/ask", json={"message": "x" * 5_000})
    assert_too_large(response, 1_000)
    assert ran == []
    assert app.pulled == 0


async def test_middleware_installed_on_fastapi_app():
    ran: list[str] = []
    app = tutor_app(ran)
    app.add_middleware(BodySizeLimit, max_bytes=Settings(max_body_bytes=2_048).max_body_bytes)
    async with client(app) as http:
        assert (await http.post("/ask", json={"message": "fine"})).status_code == 200
        assert_too_large(await http.post("/ask", json={"message": "x" * 4_000}), 2_048)
    assert ran == ["fine"]


async def test_chunked_64_mb_upload_is_cut_off_just_past_the_limit():
    limit = Settings(max_body_bytes=1_500_000).max_body_bytes
    ran: list[str] = []
    produced: list[int] = []
    app = Counted(BodySizeLimit(tutor_app(ran), max_bytes=limit))
    async with client(app) as http:
        response = await http.post("/ask", content=chunks(64, MiB, produced), headers={"content-type": "application/json"})
    assert b"content-length" not in app.headers
    assert app.headers.get(b"transfer-encoding") == b"chunked"
    assert_too_large(response, limit)
    assert ran == []
    assert app.pulled < limit + MiB
    assert sum(produced) < limit + MiB


async def test_chunked_upload_refused_even_if_the_endpoint_swallows_errors():
    limit = 1_000_000
    ran: list[str] = []
    produced: list[int] = []
    app = Counted(BodySizeLimit(tutor_app(ran), max_bytes=limit))
    async with client(app) as http:
        response = await http.post("/raw", content=chunks(64, MiB, produced))
    assert_too_large(response, limit)
    assert ran == ["swallowed"]
    assert app.pulled <= limit + MiB
    assert len(produced) == 1


async def test_small_chunked_upload_passes():
    ran: list[str] = []
    produced: list[int] = []
    app = Counted(BodySizeLimit(tutor_app(ran), max_bytes=1_000_000))
    async with client(app) as http:
        response = await http.post("/raw", content=chunks(4, 100_000, produced))
    assert response.status_code == 200 and response.json() == {"size": 400_000}
    assert app.pulled == 400_000


async def test_non_http_scopes_pass_through_untouched():
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], receive, send))

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        pass

    await BodySizeLimit(app, max_bytes=10)({"type": "lifespan"}, receive, send)
    assert seen == [("lifespan", receive, send)]


# -- RateLimiter ------------------------------------------------------------------------------------


def limiter(signed_in: str = "3/minute", anonymous: str = "2/minute") -> RateLimiter:
    return RateLimiter(Settings(**{"rate_limit": signed_in, "anonymous_rate_limit": anonymous}))


ADA = Reader(id="user:ada", anonymous=False)
BOB = Reader(id="user:bob", anonymous=False)
VISITOR = Reader(id="anon:visitor_1234", anonymous=True)


def test_call_over_the_limit_is_refused_with_retry_after():
    limits = limiter()
    for _ in range(3):
        limits.check(ADA)
    with pytest.raises(RateLimited) as caught:
        limits.check(ADA)
    error = caught.value
    assert isinstance(error, BooktutorError)
    assert error.code == "rate_limited" and error.status == 429
    assert 1 <= error.retry_after <= 60
    assert error.as_dict()["code"] == "rate_limited"
    assert str(error.retry_after) in error.message


def test_anonymous_limit_is_lower_than_signed_in():
    limits = limiter(signed_in="3/minute", anonymous="1/minute")
    limits.check(VISITOR)
    with pytest.raises(RateLimited):
        limits.check(VISITOR)
    for _ in range(3):
        limits.check(ADA)


def test_readers_are_independent():
    limits = limiter(signed_in="1/minute", anonymous="1/minute")
    limits.check(ADA)
    limits.check(BOB)
    limits.check(VISITOR)
    limits.check(Reader(id="anon:another_visitor", anonymous=True))
    with pytest.raises(RateLimited):
        limits.check(ADA)
    with pytest.raises(RateLimited):
        limits.check(VISITOR)


def test_retry_after_is_at_least_one_second_and_the_window_moves_on():
    limits = limiter(signed_in="1/second")
    limits.check(ADA)
    with pytest.raises(RateLimited) as caught:
        limits.check(ADA)
    assert caught.value.retry_after == 1
    time.sleep(1.1)
    limits.check(ADA)


def test_a_thousand_readers_start_no_sweep_per_hit_and_run_out_windows_are_still_swept(monkeypatch):
    limits = limiter(signed_in="2/second")
    started = []
    start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: (started.append(thread), start(thread))[1])

    until, n = time.monotonic() + 0.5, 0
    while time.monotonic() < until:
        limits.check(Reader(id=f"user:{n}", anonymous=False))
        n += 1
    assert n > 1000
    assert len(started) <= 1  # one sweep scheduled, not one every 10 ms

    time.sleep(1.6)  # every window has run out
    limits.check(ADA)
    time.sleep(1.3)  # the sweep that hit scheduled has run
    assert sum(1 for entries in limits._limiter.storage.events.values() if entries) <= 1


def test_default_limits_from_settings(monkeypatch):
    monkeypatch.delenv("BOOKTUTOR_RATE_LIMIT", raising=False)
    monkeypatch.delenv("BOOKTUTOR_ANONYMOUS_RATE_LIMIT", raising=False)
    limits = RateLimiter(Settings())
    for _ in range(10):
        limits.check(VISITOR)
    with pytest.raises(RateLimited):
        limits.check(VISITOR)
    for _ in range(60):
        limits.check(ADA)
    with pytest.raises(RateLimited):
        limits.check(ADA)


def test_bad_limit_string_fails_at_startup():
    with pytest.raises(ValueError):
        limiter(signed_in="lots")


# -- quotas shared through Redis ---------------------------------------------------------------------

REDIS_URL = os.getenv("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    host, _, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].partition(":")
    try:
        socket.create_connection((host, int(port or 6379)), timeout=1).close()
    except OSError:
        pytest.fail(f"the shared-quota test needs Redis at TEST_REDIS_URL={REDIS_URL} (`.ci/run` starts one)")
    return REDIS_URL


def test_processes_sharing_redis_share_a_readers_quota(redis_url):
    reader = Reader(id=f"user:{uuid.uuid4().hex}", anonymous=False)
    here = RateLimiter(Settings(rate_limit="3/minute", redis_url=redis_url))
    here.check(reader)
    here.check(reader)
    # Another process (another worker, another machine) counts against the same window.
    script = (
        "import sys\n"
        "from booktutor.server.auth import Reader\n"
        "from booktutor.server.limits import RateLimited, RateLimiter\n"
        "from booktutor.server.settings import Settings\n"
        f"limits = RateLimiter(Settings(rate_limit='3/minute', redis_url={redis_url!r}))\n"
        f"reader = Reader(id={reader.id!r}, anonymous=False)\n"
        "limits.check(reader)\n"
        "try:\n    limits.check(reader)\nexcept RateLimited as error:\n    sys.exit(f'refused {error.retry_after}')\n"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert other.returncode == 1 and other.stderr.strip().startswith("refused"), other.stderr
    with pytest.raises(RateLimited):
        here.check(reader)


def test_unreachable_redis_lets_requests_through():
    limits = RateLimiter(Settings(rate_limit="1/minute", redis_url="redis://127.0.0.1:9/0"))
    limits.check(ADA)
    limits.check(ADA)


# -- ConcurrencyLimit -------------------------------------------------------------------------------


def test_concurrency_limit_acquire_and_release():
    runs = ConcurrencyLimit(2)
    assert runs.in_use == 0
    assert runs.try_acquire() and runs.try_acquire()
    assert runs.in_use == 2
    assert not runs.try_acquire()
    assert runs.in_use == 2
    runs.release()
    assert runs.in_use == 1
    assert runs.try_acquire()
    runs.release()
    runs.release()
    assert runs.in_use == 0
    with pytest.raises(RuntimeError):
        runs.release()


async def test_concurrency_limit_under_concurrent_tasks():
    runs = ConcurrencyLimit(3)
    busy = 0
    peak = 0

    async def run() -> bool:
        nonlocal busy, peak
        if not runs.try_acquire():
            return False
        try:
            busy += 1
            peak = max(peak, busy)
            await asyncio.sleep(0.01)
            busy -= 1
            return True
        finally:
            runs.release()

    results = await asyncio.gather(*(run() for _ in range(10)))
    assert results.count(True) == 3 and peak == 3
    assert runs.in_use == 0


def test_concurrency_limit_needs_a_slot():
    with pytest.raises(ValueError):
        ConcurrencyLimit(0)


def test_server_busy_error():
    error = ServerBusy()
    assert isinstance(error, BooktutorError)
    assert error.code == "server_busy" and error.status == 503
    assert error.message


# -- what counts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "costly"),
    [
        ("POST", "/v1/chat", True),
        ("POST", "/v1/explain", True),
        ("POST", "/v1/translate", True),
        ("POST", "/v1/chapters/translate", True),
        ("POST", "/v1/chapters/personalize", True),
        ("POST", "/v1/threads/t1/messages/m1/translate", True),
        ("GET", "/v1/profile", False),
        ("PUT", "/v1/profile", False),
        ("GET", "/v1/threads", False),
        ("GET", "/v1/threads/t1", False),
        ("DELETE", "/v1/threads/t1", False),
        ("GET", "/v1/runs/r1/stream", False),
        ("POST", "/v1/runs/r1/cancel", False),
        ("POST", "/v1/threads/t1/messages/m1/feedback", False),
        ("GET", "/v1/chapters/status", False),
    ],
)
def test_only_what_costs_counts_against_the_quota(method, path, costly):
    assert costs(method, path) is costly


def test_a_reader_browsing_the_panel_never_meets_the_quota():
    limits = limiter(anonymous="10/minute")
    for _ in range(10):
        limits.check_request(VISITOR, "POST", "/v1/chat")
        for method, path in (("GET", "/v1/threads"), ("GET", "/v1/profile"), ("GET", "/v1/runs/r1/stream")):
            limits.check_request(VISITOR, method, path)
    with pytest.raises(RateLimited):
        limits.check_request(VISITOR, "POST", "/v1/chat")
    # Reading stays open while the turn quota is used up.
    limits.check_request(VISITOR, "GET", "/v1/threads")


def test_a_runaway_client_is_still_limited():
    limits = RateLimiter(Settings(rate_limit="3/minute", anonymous_rate_limit="2/minute", request_rate_limit="5/minute"))
    for _ in range(5):
        limits.check_request(VISITOR, "GET", "/v1/threads")
    with pytest.raises(RateLimited):
        limits.check_request(VISITOR, "GET", "/v1/threads")
