"""Several `booktutor serve` processes on one Postgres, as a load balancer would use them.

Real processes, real HTTP, a scripted model slow enough to interrupt: a run started on one process is
resumed, continued, refused and cancelled on another; processes are SIGKILLed mid-turn; and Postgres
(a throwaway cluster started here, never the shared server) goes away under concurrent chats.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator

import httpx
import pytest

from tests.conftest import BOOKTUTOR, CORPUS, MODEL_VARIABLES, REPO, free_port, run_cli
from tests.openai_stub import ScriptedOpenAI
from tests.server.conftest import JWT_SECRET, auth
from booktutor.server.db import PING_AFTER_SECONDS

TOPICS = "How do ROS 2 nodes exchange messages through topics?"
LONG = " ".join(f"word{n}" for n in range(120)) + " [1]."
SHORT = "Nodes publish and subscribe on topics [1]."
LEASE_SECONDS = 1.5
REQUEST_TIMEOUT_SECONDS = 2
# Seconds a "(stall)" question waits before the model says anything: longer than any test waits.
STALL_SECONDS = 20
PG_BIN = Path("/usr/lib/postgresql/15/bin")
FIGURES: dict[str, object] = {}


def scripted_model(body: dict) -> str:
    """The rewrite step gets a query at once; an answer is long, short or stalls, by a marker in the question."""
    last = str(body["messages"][-1].get("content"))
    if "Standalone search query" in last:
        return "ROS 2 topics"
    if "(stall)" in last:
        time.sleep(STALL_SECONDS)
        return SHORT
    return LONG if "(long)" in last else SHORT


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    """Print what the tests measured once they are done (visible with -s)."""
    yield
    print("\nscale-out figures:", json.dumps(FIGURES, indent=1))


@pytest.fixture(scope="module")
def model():
    server = ScriptedOpenAI().start()
    server.respond_with(scripted_model)
    server.token_delay = 0.02
    yield server
    server.stop()



class Server:
    """One `booktutor serve` process with its own copy of the book's local index."""

    def __init__(
        self, name: str, *, corpus_home: Path, database_url: str, model_url: str, root: Path, workers: int = 1
    ) -> None:
        self.home = root / name
        self.database_url = database_url
        if not self.home.exists():
            shutil.copytree(corpus_home / "qdrant", self.home / "qdrant")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
        env.update(
            BOOKTUTOR_HOME=str(self.home),
            DATABASE_URL=database_url,
            OPENAI_BASE_URL=model_url,
            OPENAI_API_KEY="test-key",
            BOOKTUTOR_MODEL_RETRIES="0",
            BOOKTUTOR_JWT_SECRET=JWT_SECRET,
            BOOKTUTOR_RATE_LIMIT="1000/minute",
            BOOKTUTOR_RUN_LEASE_SECONDS=str(LEASE_SECONDS),
            BOOKTUTOR_HEARTBEAT_SECONDS="1",
            BOOKTUTOR_LOG_LEVEL="WARNING",
            BOOKTUTOR_REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT_SECONDS),
        )
        self.log = open(root / f"{name}.log", "ab")
        self.process = subprocess.Popen(
            [*BOOKTUTOR, "serve", "--port", str(self.port), "--workers", str(workers)],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited: {self.output()}"
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture(scope="module")
def spawn(corpus_home, database_url, model, tmp_path_factory):
    """Start servers on the session's database; all are stopped at the end of the module."""
    root = tmp_path_factory.mktemp("servers")
    started: list[Server] = []

    def start(name: str, *, database: str = database_url, workers: int = 1) -> Server:
        server = Server(
            name, corpus_home=corpus_home, database_url=database, model_url=model.base_url, root=root, workers=workers
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def pair(spawn):
    a, b = spawn("a"), spawn("b")
    return a.wait_ready(), b.wait_ready()


async def sse(response: httpx.Response) -> AsyncIterator[dict]:
    """The events of a streaming response as {id, event, data}, as they arrive."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "event" in fields:
                yield {"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])}
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            fields[key] = fields.get(key, "") + value.removeprefix(" ")


def text_of(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "token")


async def collect(http: httpx.AsyncClient, method: str, url: str, **kwargs) -> tuple[int, list[dict]]:
    async with http.stream(method, url, **kwargs) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, [response.json()]
        return 200, [event async for event in sse(response)]


class Started:
    """A chat whose stream is read in the background; `first` holds once `ready` says enough arrived."""

    def __init__(self, http: httpx.AsyncClient, url: str, body: dict, headers: dict, *, tokens: int = 0) -> None:
        self.events: list[dict] = []
        self.status = 0
        self._ready = asyncio.Event()
        self._tokens = tokens
        self.task = asyncio.create_task(self._read(http, url, body, headers))

    async def _read(self, http, url, body, headers) -> None:
        try:
            async with http.stream("POST", url + "/v1/chat", json=body, headers=headers) as response:
                self.status = response.status_code
                if response.status_code != 200:
                    await response.aread()
                    self.events.append(response.json())
                    return
                async for event in sse(response):
                    self.events.append(event)
                    if sum(e["event"] == "token" for e in self.events) >= self._tokens:
                        self._ready.set()
        except httpx.HTTPError:
            pass  # the server was killed under us
        finally:
            self._ready.set()

    async def ready(self, timeout: float = 30) -> "Started":
        await asyncio.wait_for(self._ready.wait(), timeout)
        assert self.events and self.events[0]["event"] == "metadata", self.events
        return self

    @property
    def run_id(self) -> str:
        return self.events[0]["data"]["run_id"]

    @property
    def thread_id(self) -> str:
        return self.events[0]["data"]["thread_id"]


async def wait_status(http, url: str, run_id: str, headers: dict, *, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = (await http.get(f"{url}/v1/runs/{run_id}", headers=headers)).json()["status"]
        if status != "running" or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def messages(http, url: str, thread_id: str, headers: dict) -> list[tuple[str, str]]:
    response = await http.get(f"{url}/v1/threads/{thread_id}", headers=headers)
    assert response.status_code == 200, response.text
    return [(m["role"], m["content"]) for m in response.json()["messages"]]


# -- two processes, one conversation ------------------------------------------------------------------


async def test_a_run_started_on_one_process_is_resumed_continued_refused_and_cancelled_on_another(pair):
    a, b = pair
    headers = auth("scale-out-reader")
    async with httpx.AsyncClient(timeout=30) as http:
        # Started on A; the reader's connection drops after a few tokens; B serves the rest.
        first = await Started(http, a.url, {"message": f"{TOPICS} (long)"}, headers, tokens=5).ready()
        first.task.cancel()
        seen = list(first.events)
        resumed_at = time.monotonic()
        arrivals: dict[str, float] = {}
        rest: list[dict] = []
        async with http.stream(
            "GET", f"{b.url}/v1/runs/{first.run_id}/stream", headers={**headers, "Last-Event-ID": seen[-1]["id"]}
        ) as response:
            assert response.status_code == 200
            async for event in sse(response):
                arrivals.setdefault("first", time.monotonic())
                rest.append(event)
        ids = [e["id"] for e in seen + rest]
        assert ids == [f"{first.run_id}:{n}" for n in range(len(ids))], "no event twice, none missing"
        assert rest[-1]["event"] == "done"
        assert text_of(seen) + text_of(rest) == LONG
        FIGURES["resume on the other process: first event after (ms)"] = round(1000 * (arrivals["first"] - resumed_at), 1)

        # A follow-up on B continues A's thread.
        status, events = await collect(
            http, "POST", f"{b.url}/v1/chat", json={"message": "And services?", "thread_id": first.thread_id}, headers=headers
        )
        assert status == 200 and events[-1]["event"] == "done"
        roles = [role for role, _ in await messages(http, a.url, first.thread_id, headers)]
        assert roles == ["user", "assistant", "user", "assistant"]

        # While A answers, B refuses a second message (after checking ownership) and cancels A's run.
        running = await Started(
            http, a.url, {"message": "Tell me more (long)", "thread_id": first.thread_id}, headers, tokens=1
        ).ready()
        live_on_b = asyncio.create_task(
            collect(http, "GET", f"{b.url}/v1/runs/{running.run_id}/stream", headers=headers)
        )
        stranger = await http.post(
            f"{b.url}/v1/chat", json={"message": "hi", "thread_id": first.thread_id}, headers=auth("someone-else")
        )
        busy = await http.post(f"{b.url}/v1/chat", json={"message": "and?", "thread_id": first.thread_id}, headers=headers)
        cancelled = await http.post(f"{b.url}/v1/runs/{running.run_id}/cancel", headers=headers)
        await asyncio.wait_for(running.task, 10)
        _, followed = await asyncio.wait_for(live_on_b, 10)

    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "thread_not_found"
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "thread_busy"
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert running.events[-1]["event"] == "error" and running.events[-1]["data"]["code"] == "cancelled"
    assert followed[-1]["data"]["code"] == "cancelled"
    assert [e["id"] for e in followed] == [e["id"] for e in running.events], "A's and B's readers saw the same run"


async def test_events_reach_a_follower_on_the_other_process_promptly(pair):
    a, b = pair
    headers = auth("latency-reader")
    async with httpx.AsyncClient(timeout=30) as http:
        started = await Started(http, a.url, {"message": f"{TOPICS} (long)"}, headers).ready()
        on_a: dict[str, float] = {}
        on_b: dict[str, float] = {}

        async def follow(url: str, into: dict[str, float]) -> None:
            async with http.stream("GET", f"{url}/v1/runs/{started.run_id}/stream", headers=headers) as response:
                async for event in sse(response):
                    into[event["id"]] = time.monotonic()

        await asyncio.gather(follow(a.url, on_a), follow(b.url, on_b))
        await started.task

    delays = [1000 * (on_b[i] - on_a[i]) for i in on_a if i in on_b]
    assert len(delays) == len(on_a) == len(on_b)
    FIGURES["live events, other process minus same process: median / max (ms)"] = (
        round(statistics.median(delays), 1),
        round(max(delays), 1),
    )
    assert statistics.median(delays) < 100


# -- connections that never finish their request ------------------------------------------------------


def test_a_request_that_does_not_arrive_in_time_is_cut_off_and_others_are_served(pair):
    a, _ = pair
    silent = socket.create_connection(("127.0.0.1", a.port))
    trickling = socket.create_connection(("127.0.0.1", a.port))
    half_body = socket.create_connection(("127.0.0.1", a.port))
    started = time.monotonic()
    trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: booktutor\r\n")
    half_body.sendall(b"PUT /v1/profile HTTP/1.1\r\nHost: booktutor\r\nContent-Length: 100\r\n\r\n{\"goals\"")
    for _ in range(3):
        time.sleep(0.5)
        trickling.sendall(b"X")  # a byte now and then does not buy more time

    closed_after = []
    for sock in (silent, trickling, half_body):
        sock.settimeout(REQUEST_TIMEOUT_SECONDS + 5)
        assert sock.recv(1024) == b"", "the server closes the connection without answering"
        closed_after.append(time.monotonic() - started)
        sock.close()
    # Meanwhile, and afterwards, whole requests are answered.
    assert httpx.get(a.url + "/healthz", timeout=5).status_code == 200
    assert all(REQUEST_TIMEOUT_SECONDS - 0.5 < t < REQUEST_TIMEOUT_SECONDS + 2 for t in closed_after), closed_after
    FIGURES["incomplete requests cut off after (s)"] = [round(t, 2) for t in closed_after]


def test_several_workers_on_the_local_index_each_search_a_copy_while_the_index_stays_as_it_was(spawn):
    server = spawn("workers", workers=2).wait_ready()
    serving = server.home / "qdrant" / "serving"
    deadline = time.monotonic() + 60
    while len(copies := sorted(serving.glob("worker-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = {int(copy.name.removeprefix("worker-")) for copy in copies}
    assert len(workers) == 2, f"each worker copies the index: {copies}"
    for pid in workers:
        os.kill(pid, 0)  # a live process

    async def chats() -> list[tuple[int, list[dict]]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            return await asyncio.gather(
                *(collect(http, "POST", "/v1/chat", json={"message": TOPICS}, headers=auth(f"reader-{n}")) for n in range(8))
            )

    for status, events in asyncio.run(chats()):
        assert status == 200, events
        done = events[-1]
        assert done["event"] == "done" and done["data"]["citations"], events[-3:]
        assert text_of(events) == SHORT

    # Neither the API nor another process can change the index under the workers' copies.
    response = httpx.post(
        server.url + "/v1/ingest", json={"path": str(CORPUS)}, headers=auth("editor", role="admin"), timeout=30
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "index_read_only"
    assert "booktutor ingest" in response.json()["error"]["message"]
    refused = run_cli("ingest", str(CORPUS), env={"BOOKTUTOR_HOME": str(server.home), "DATABASE_URL": server.database_url})
    assert refused.returncode == 1 and "error (index_locked)" in refused.stderr

    server.stop()
    assert server.process.returncode == 0, Path(server.log.name).read_text(errors="replace")[-3000:]
    assert not serving.exists(), "the copies are removed when the server stops"
    again = run_cli("ingest", str(CORPUS), "--json", env={"BOOKTUTOR_HOME": str(server.home), "DATABASE_URL": server.database_url})
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"] == json.loads(again.stdout)["files"], "nothing was written to the index"


# -- a process killed mid-turn ------------------------------------------------------------------------

KILL_ROUNDS = 2


async def test_a_process_killed_mid_turn_loses_no_question_and_its_runs_read_interrupted(pair, spawn):
    _, b = pair
    headers = auth("crash-reader")
    lost = duplicated = vanished = 0
    statuses: list[str] = []
    async with httpx.AsyncClient(timeout=30) as http:
        for round_ in range(KILL_ROUNDS):
            victim = spawn(f"victim-{round_}").wait_ready()
            # After `done`: a finished turn; before the first token: a stalled model; mid-answer: tokens flowing.
            finished = await Started(http, victim.url, {"message": f"Q{round_} done"}, headers).ready()
            await finished.task
            stalled = await Started(http, victim.url, {"message": f"Q{round_} (stall)"}, headers).ready()
            midway = await Started(http, victim.url, {"message": f"Q{round_} (long)"}, headers, tokens=5).ready()
            await asyncio.sleep(0.3)
            victim.kill()
            for chat, expected in ((finished, "done"), (stalled, "interrupted"), (midway, "interrupted")):
                status = await wait_status(http, b.url, chat.run_id, headers, timeout=LEASE_SECONDS + 5)
                statuses.append(status)
                assert status == expected, (chat.events[0], status)
            _, replay = await collect(
                http, "GET", f"{b.url}/v1/runs/{midway.run_id}/stream", headers={**headers, "Last-Event-ID": midway.events[-1]["id"]}
            )
            assert replay[-1]["event"] == "error" and replay[-1]["data"]["code"] == "run_interrupted"

            for chat, question in ((finished, f"Q{round_} done"), (stalled, f"Q{round_} (stall)"), (midway, f"Q{round_} (long)")):
                before = await messages(http, b.url, chat.thread_id, headers)
                lost += ("user", question) not in before
                status, events = await collect(
                    http, "POST", f"{b.url}/v1/chat", json={"message": "Asking again.", "thread_id": chat.thread_id}, headers=headers
                )
                assert status == 200 and events[-1]["event"] == "done", events
                after = await messages(http, b.url, chat.thread_id, headers)
                vanished += sum(1 for m in before if m not in after)
                # Every question once (answers may repeat: the scripted model says the same thing twice).
                duplicated += sum(after.count(m) - 1 for m in set(after) if m[0] == "user")
                assert after[: len(before)] == before and after[-2:] == [("user", "Asking again."), ("assistant", SHORT)]
    FIGURES["SIGKILL mid-turn: kills / turns / lost questions / duplicates / vanished"] = (
        KILL_ROUNDS,
        len(statuses),
        lost,
        duplicated,
        vanished,
    )
    assert (lost, duplicated, vanished) == (0, 0, 0)


# -- Postgres goes away under concurrent chats ----------------------------------------------------------


class ThrowawayPostgres:
    """A PostgreSQL cluster of this test's own, run as an unprivileged user when the tests run as root."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="booktutor-outage-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody")
            self._as_user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _run(self, *command) -> None:
        subprocess.run([*self._as_user, *map(str, command)], check=True, capture_output=True, timeout=60, cwd=self.dir)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.dir / "log", "-w", "start")

    def stop(self) -> None:
        # Immediate: connections are cut as by a crash or a network failure, not wound down politely.
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*self._as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def throwaway_postgres():
    cluster = ThrowawayPostgres()
    cluster.start()
    yield cluster
    cluster.remove()


CONCURRENT_CHATS = 8


async def test_a_postgres_outage_answers_503_and_clear_errors_and_recovers_at_once(spawn, throwaway_postgres):
    server = spawn("outage", database=throwaway_postgres.url).wait_ready()
    headers = auth("outage-reader")
    async with httpx.AsyncClient(timeout=30) as http:
        # Threads with a turn behind them, then a long answer in flight on each.
        threads = []
        for n in range(CONCURRENT_CHATS):
            status, events = await collect(http, "POST", f"{server.url}/v1/chat", json={"message": f"Q{n}"}, headers=headers)
            assert status == 200 and events[-1]["event"] == "done"
            threads.append(events[0]["data"]["thread_id"])
        in_flight = [
            Started(http, server.url, {"message": f"More {n} (long)", "thread_id": t}, headers, tokens=1)
            for n, t in enumerate(threads)
        ]
        await asyncio.gather(*(chat.ready() for chat in in_flight))

        throwaway_postgres.stop()
        during = [
            await http.post(f"{server.url}/v1/chat", json={"message": TOPICS}, headers=headers),
            await http.post(f"{server.url}/v1/chat", json={"message": "again", "thread_id": threads[0]}, headers=headers),
            await http.get(f"{server.url}/v1/threads", headers=headers),
            await http.get(f"{server.url}/v1/runs/{in_flight[0].run_id}", headers=headers),
        ]
        await asyncio.wait_for(asyncio.gather(*(chat.task for chat in in_flight)), 30)

        throwaway_postgres.start()
        back_at = time.monotonic()
        while True:
            status, events = await collect(http, "POST", f"{server.url}/v1/chat", json={"message": "Back?"}, headers=headers)
            if status == 200 and events[-1]["event"] == "done":
                break
            assert status == 503 and time.monotonic() - back_at < 10, (status, events)
            await asyncio.sleep(0.1)
        recovered_after = time.monotonic() - back_at

        # Every thread is intact and usable: its earlier turn, the interrupted question, a new answer.
        for n, thread_id in enumerate(threads):
            status, events = await collect(
                http, "POST", f"{server.url}/v1/chat", json={"message": "Asking again.", "thread_id": thread_id}, headers=headers
            )
            assert status == 200 and events[-1]["event"] == "done", events
            history = await messages(http, server.url, thread_id, headers)
            assert history[:2] == [("user", f"Q{n}"), ("assistant", SHORT)]
            assert history[-2:] == [("user", "Asking again."), ("assistant", SHORT)]
            assert len(history) - len(set(history)) <= 1  # the two identical scripted answers, nothing else twice

    for response in during:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "database_unavailable"
        assert response.headers["Retry-After"] == "2"
        # A handled error keeps the connection open for the next request.
        assert response.headers.get("connection", "keep-alive").lower() != "close"
    endings = [chat.events[-1] for chat in in_flight]
    # A stream ends with its answer (finished before the outage) or with the error that names the outage.
    assert {e["data"].get("code", e["event"]) for e in endings} <= {"done", "database_unavailable"}, endings
    assert any(e["event"] == "error" for e in endings)
    assert recovered_after < 2
    FIGURES["Postgres outage: chats in flight / requests during / 503s / clear error events / recovered after (s)"] = (
        CONCURRENT_CHATS,
        len(during),
        sum(r.status_code == 503 for r in during),
        sum(e["data"].get("code") == "database_unavailable" for e in endings),
        round(recovered_after, 2),
    )


async def test_after_a_postgres_restart_a_server_that_sat_idle_answers_its_first_request(spawn, throwaway_postgres):
    # Pooled connections are not pinged on every checkout (a round trip per turn), only once they have
    # sat unchecked for PING_AFTER_SECONDS: a restart that broke them all is then noticed before use.
    server = spawn("idle-restart", database=throwaway_postgres.url).wait_ready()
    headers = auth("idle-restart-reader")
    async with httpx.AsyncClient(timeout=30) as http:
        status, events = await collect(http, "POST", f"{server.url}/v1/chat", json={"message": TOPICS}, headers=headers)
        assert status == 200 and events[-1]["event"] == "done", events
        thread_id = events[0]["data"]["thread_id"]

        throwaway_postgres.stop()
        throwaway_postgres.start()
        await asyncio.sleep(PING_AFTER_SECONDS + 0.5)

        status, events = await collect(
            http, "POST", f"{server.url}/v1/chat", json={"message": "Asking again.", "thread_id": thread_id}, headers=headers
        )
        assert status == 200 and events[-1]["event"] == "done", events
        listed = await http.get(f"{server.url}/v1/threads", headers=headers)
        assert listed.status_code == 200 and thread_id in {t["thread_id"] for t in listed.json()["threads"]}
