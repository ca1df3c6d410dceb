"""What every benchmark shares: a streaming HTTP client, the processes under test, and the statistics.

The client is raw asyncio (HTTP/1.1, chunked SSE), not httpx: at a thousand streams the load
generator must cost far less CPU than the server it measures, on the same two cores.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psycopg

REPO = Path(__file__).resolve().parents[1]
SAMPLE_BOOK = REPO / "examples" / "sample-book"
WORK = Path(os.getenv("BENCH_WORK", "/tmp/booktutor-bench"))
ADMIN_URL = os.getenv("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# -- the question -----------------------------------------------------------------------------------

QUESTION = "How does a PID controller use the derivative term?"
_asked = itertools.count(1)


def question() -> str:
    """The benchmark question, numbered so that no turn finds its embedding cached by an earlier one."""
    return f"{QUESTION} ({next(_asked)})"


def time_searches(index, questions: list[str], *, rounds: int) -> list[float]:
    """Milliseconds per hybrid search, query embedding included: each round numbers the questions
    anew, so no search finds its query's embedding cached by an earlier one."""
    index.search(questions[0], k=5)
    latencies = []
    for round_ in range(rounds):
        for question in questions:
            started = time.perf_counter()
            index.search(f"{question} ({round_})", k=5)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def chunk_texts(root: Path) -> list[str]:
    """Every chunk's embedding text in a docs folder, as ingest makes them."""
    from booktutor.tools.docusaurus.pages import find_doc_files, read_page
    from booktutor.tools.ingest import page_records

    texts = []
    for file in find_doc_files(root):
        page = read_page(root, file, base_url="/docs")
        texts += [r.embedding_text() for r in page_records(page, file_hash="", module="")]
    return texts


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_report(numbers: dict, *, as_json: bool) -> None:
    """A benchmark's figures as one JSON line, or one aligned `name  value` line each."""
    if as_json:
        print(json.dumps(numbers))
        return
    width = max(map(len, numbers))
    for key, value in numbers.items():
        print(f"{key:<{width}}  {value}")


# -- statistics --------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), in MB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the streaming client ----------------------------------------------------------------------------


@dataclass
class Stream:
    """One streamed response: when it started, and when each event arrived."""

    started: float
    status: int = 0
    events: list[tuple[float, str, dict]] = field(default_factory=list)
    error: str | None = None

    def times(self, name: str) -> list[float]:
        return [t for t, event, _ in self.events if event == name]

    @property
    def text(self) -> str:
        return "".join(d.get("text", "") for _, e, d in self.events if e == "token")

    def token_arrivals(self) -> list[float]:
        """Arrival time of every token's text, counting an event that carries k tokens k times.

        Both the model and booktutor send words ending in a space, so words are the unit either way.
        """
        arrivals = []
        for t, event, data in self.events:
            if event == "token":
                arrivals += [t] * max(1, data.get("text", "").count(" "))
        return arrivals


async def _read_chunked(reader: asyncio.StreamReader):
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        yield await reader.readexactly(size)
        await reader.readexactly(2)


async def stream(port: int, path: str, body: dict, *, headers: dict[str, str] | None = None) -> Stream:
    """POST `body` as JSON and read the SSE answer, timing every event (OpenAI `data:` lines count as
    events named `token` when they carry content)."""
    result = Stream(started=time.monotonic())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    except OSError as exc:
        result.error = f"connect: {exc}"
        return result
    try:
        payload = json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
            f"Connection: close\r\n{extra}Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        result.status = int(head.split(" ", 2)[1])
        if result.status != 200:
            result.error = f"HTTP {result.status}: {(await reader.read(500)).decode(errors='replace')}"
            return result
        # Blocks are timed as they arrive and parsed afterwards, so the client's CPU stays low.
        raw: list[tuple[float, bytes]] = []
        buffer = b""
        async for piece in _read_chunked(reader):
            buffer += piece.replace(b"\r\n", b"\n")
            if b"\n\n" in buffer:
                *blocks, buffer = buffer.split(b"\n\n")
                now = time.monotonic()
                raw += [(now, block) for block in blocks]
        for now, block in raw:
            name, data = "message", ""
            for line in block.decode().split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
            if not data or data == "[DONE]":
                continue
            parsed = json.loads(data)
            if "choices" in parsed:  # the model's own stream
                content = "".join((c.get("delta") or {}).get("content") or "" for c in parsed["choices"])
                if content:
                    result.events.append((now, "token", {"text": content}))
                continue
            result.events.append((now, name, parsed))
    except Exception as exc:  # noqa: BLE001 - a benchmark reports failures, it does not stop on them
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()
    return result


def summarize(streams: list[Stream], *, model_gap: float) -> dict[str, float]:
    """TTFT p50/p95, added gap between paints p50/p99 (ms), how many finished.

    The added gap of a token event is the time since the previous one less the time the model took to
    produce the words it carries, so an event holding several tokens is not counted as a stall.
    """
    ttft, gaps = [], []
    for s in streams:
        paints = [(t, max(1, d.get("text", "").count(" "))) for t, e, d in s.events if e == "token"]
        if not paints:
            continue
        ttft.append((paints[0][0] - s.started) * 1000)
        gaps += [((b - a) - words * model_gap) * 1000 for (a, _), (b, words) in zip(paints, paints[1:])]
    done = sum(1 for s in streams if s.error is None and s.token_arrivals() and not s.times("error"))
    return {
        "finished": done,
        "ttft_p50": pct(ttft, 50),
        "ttft_p95": pct(ttft, 95),
        "gap_p50": pct(gaps, 50),
        "gap_p99": pct(gaps, 99),
    }


# -- the processes under test ------------------------------------------------------------------------


@contextlib.contextmanager
def scripted_model(*, tokens: int, delay_ms: float) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "scripted_model.py"), "--port", str(port), "--tokens", str(tokens), "--delay-ms", str(delay_ms)],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, process, timeout=30)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _wait_port(port: int, process: subprocess.Popen, *, timeout: float, path: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if path is None:
                    return
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if b" 200 " in s.recv(100):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"nothing answered on port {port} within {timeout:.0f}s")


def book_home(python: str = sys.executable) -> Path:
    """A data folder with the sample book ingested by the install of `python` (once; later runs copy
    it). Each install ingests its own: the index's on-disk format is not the same in every version."""
    home = WORK / f"book-home-{hashlib.sha1(str(python).encode()).hexdigest()[:8]}"
    if not (home / "qdrant").exists():
        home.mkdir(parents=True, exist_ok=True)
        with database() as url:
            env = {**_clean_env(), "BOOKTUTOR_HOME": str(home), "DATABASE_URL": url}
            subprocess.run([python, "-m", "booktutor.server.cli", "ingest", str(SAMPLE_BOOK)], env=env, check=True, stdout=subprocess.DEVNULL)
    return home


@contextlib.contextmanager
def database() -> Iterator[str]:
    name = f"booktutor_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKTUTOR_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_"))}
    env.pop("DATABASE_URL", None)
    return env


def graph_env(home: Path, *, model_port: int) -> dict[str, str]:
    """The environment the graph reads its context from: the scripted model and a book index folder.

    Every server under test gets this, so they answer the same question with the same retrieval.
    """
    return {
        **_clean_env(),
        "BOOKTUTOR_HOME": str(home),
        "OPENAI_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
        "OPENAI_API_KEY": "bench",
        "BOOKTUTOR_ANSWER_MODEL": "bench-answer",
        "BOOKTUTOR_REWRITE_MODEL": "bench-rewrite",
        "BOOKTUTOR_MODEL_RETRIES": "0",
        "BOOKTUTOR_MODEL_TIMEOUT": "600",
    }


@contextlib.asynccontextmanager
async def graph_in_process(model_port: int, url: str):
    """This checkout's graph with its Postgres checkpointer, in this process: the floor under a served turn
    (no HTTP, no stored run events, no auth). Yields `turn()`, which asks one new question on a new thread
    and returns (seconds, seconds to the first answer token, answer words)."""
    os.environ.update({**graph_env(book_home(), model_port=model_port), "DATABASE_URL": url})
    from booktutor.graphs.turn import TurnInput
    from booktutor.server.settings import get_settings
    from booktutor.server.tutor import open_tutor

    settings = get_settings()
    async with open_tutor(settings) as tutor:
        context = settings.context()

        async def turn() -> tuple[float, float, int]:
            started = time.monotonic()
            first, words = None, 0
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            # The `custom` stream is the one the server reads: answer tokens as {"token": text}.
            async for chunk in tutor.graph.astream(
                TurnInput(message=question()).graph_input(), config, context=context, stream_mode="custom"
            ):
                if token := chunk.get("token"):
                    first = first or time.monotonic()
                    words += len(token.split())
            end = time.monotonic()
            return end - started, (first or end) - started, words

        await turn()  # loads the index, the embedding model, the HTTP client
        yield turn


@dataclass
class Server:
    name: str
    port: int
    pid: int


@contextlib.contextmanager
def booktutor_serve(
    name: str, python: str, workers: int = 1, *, model_port: int, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`booktutor serve` from the venv of `python`, on its own database and copy of the book index."""
    home = WORK / f"home-{name}-{uuid.uuid4().hex[:6]}"
    shutil.copytree(book_home(python), home)
    port = free_port()
    with database() as url:
        env = {
            **graph_env(home, model_port=model_port),
            "DATABASE_URL": url,
            "BOOKTUTOR_ALLOW_ANONYMOUS": "true",
            "BOOKTUTOR_RATE_LIMIT": "1000000/minute",
            "BOOKTUTOR_ANONYMOUS_RATE_LIMIT": "1000000/minute",
            "BOOKTUTOR_REQUEST_RATE_LIMIT": "1000000/minute",
            "BOOKTUTOR_MAX_CONCURRENT_RUNS": "5000",
            "BOOKTUTOR_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        log = open(WORK / f"serve-{name}.log", "w")
        process = subprocess.Popen(
            [python, "-m", "booktutor.server.cli", "serve", "--port", str(port), *(["--workers", str(workers)] if workers > 1 else [])],
            env=env, stdout=log, stderr=log, cwd=home
        )
        try:
            _wait_port(port, process, timeout=180, path="/healthz")
            # One turn first, so client objects built on first use are not counted in a burst.
            # (On a thread of its own: a caller may already be running an event loop.)
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                warm = pool.submit(asyncio.run, stream(port, "/v1/chat", {"message": "What is a PID controller?"})).result()
            if warm.error:
                raise RuntimeError(f"{name} could not answer: {warm.error}")
            yield Server(name=name, port=port, pid=process.pid)
        finally:
            stop(process)
            shutil.rmtree(home, ignore_errors=True)


def stop(process: subprocess.Popen) -> None:
    """Terminate a server and wait for it; kill it if it does not stop within 20 s."""
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def parse_apps(values: list[str]) -> list[tuple[str, str, int]]:
    """`--app name=/path/to/python[,workers=N]`: name, interpreter and `serve --workers`; default: this
    checkout's own interpreter as `now`, one process."""
    if not values:
        return [("now", sys.executable, 1)]
    apps = []
    for value in values:
        name, _, rest = value.partition("=")
        python, _, workers = rest.partition(",workers=")
        apps.append((name, os.path.abspath(python), int(workers or 1)))
    return apps


def header(title: str) -> None:
    print(f"\n## {title}\nload average {load_average()} · {os.cpu_count()} cores · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
