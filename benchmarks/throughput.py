"""Throughput: turns per second with N clients asking one after another, against `langgraph dev`.

A scripted model answers 100 tokens at once (0 ms apart), so a turn costs only the servers' own work.
Each client creates a thread, streams one turn to its last token, and starts again. Side by side in
one run, interleaved per repetition: each `booktutor serve` given with `--app name=/path/to/python`
(its own Postgres database) and `langgraph dev` serving the same graph from the repo's
`langgraph.json` with the python given by `--langgraph-dev` (a venv with `langgraph-cli[inmem]` and
this project installed). Both read the same model settings and a copy of the same book index from
the environment, so they answer the same question with the same retrieval. With `--graph`, the floor
under both: the same graph in a process of its own, the clients' turns going straight into
`graph.astream` on the same Postgres checkpointer, with no HTTP, no stored run events, no auth.

Both get the same job concurrency (`--jobs`, default: the largest client count):
`BOOKTUTOR_MAX_CONCURRENT_RUNS` and `langgraph dev --n-jobs-per-worker` (whose default is one job at a
time). Not like-for-like on durability: `langgraph dev` keeps checkpoints in memory, booktutor
writes them to Postgres.

    python3 -m venv .venv-lgdev && .venv-lgdev/bin/pip install -e . "langgraph-cli[inmem]"
    .venv/bin/python benchmarks/throughput.py --clients 1,16,64 --seconds 20 --langgraph-dev .venv-lgdev/bin/python --graph
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterator

import psycopg

from common import (
    ADMIN_URL,
    QUESTION,
    REPO,
    WORK,
    Server,
    Stream,
    _wait_port,
    book_home,
    booktutor_serve,
    database,
    free_port,
    graph_env,
    graph_in_process,
    header,
    median,
    parse_apps,
    pct,
    question,
    scripted_model,
    stop,
    stream,
)

GRAPH_ID = "tutor"  # the graph's name in langgraph.json


# -- one turn on each server -------------------------------------------------------------------------


@dataclass
class Turn:
    """One finished (or failed) turn: how long it took and how many answer words streamed."""

    seconds: float
    words: int
    error: str | None = None


def _booktutor_turn(port: int) -> Callable[[], Awaitable[Turn]]:
    async def turn() -> Turn:
        s = await stream(port, "/v1/chat", {"message": question()})
        return _finish(s, len(s.token_arrivals()))

    return turn


def _langgraph_turn(port: int, stream_mode: list[str]) -> Callable[[], Awaitable[Turn]]:
    """A turn as the LangGraph API runs it: create a thread, then stream a run on it.

    `messages-tuple` streams each model chunk as `[chunk, metadata]` (what the SDK's `useStream`
    asks for); plain `messages` resends the whole message so far with every chunk.
    """

    async def turn() -> Turn:
        started = time.monotonic()
        try:
            thread = await post_json(port, "/threads", {})
        except Exception as exc:  # noqa: BLE001 - a benchmark reports failures, it does not stop on them
            return Turn(time.monotonic() - started, 0, f"create thread: {exc}")
        body = {
            "assistant_id": GRAPH_ID,
            "input": {"messages": [{"role": "user", "content": question()}]},
            "stream_mode": stream_mode,
        }
        s = await stream(port, f"/threads/{thread['thread_id']}/runs/stream", body)
        s.started = started
        return _finish(s, _langgraph_words(s))

    return turn


def _langgraph_words(s: Stream) -> int:
    """Answer words streamed by the `answer` node, from either messages stream mode."""
    words = 0
    seen: dict[str, int] = {}  # `messages` mode: characters already counted per message id
    for _, event, data in s.events:
        if event == "messages":  # messages-tuple: [chunk, metadata]
            chunk, meta = data
            if meta.get("langgraph_node") == "answer":
                words += _text(chunk).count(" ")
        elif event == "messages/metadata":
            for message_id, value in data.items():
                if value["metadata"].get("langgraph_node") == "answer":
                    seen.setdefault(message_id, 0)
        elif event == "messages/partial":
            for message in data:
                if message.get("id") in seen:
                    text = _text(message)
                    words += text[seen[message["id"]] :].count(" ")
                    seen[message["id"]] = len(text)
    return words


def _text(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return content


def _finish(s: Stream, words: int) -> Turn:
    end = s.events[-1][0] if s.events else time.monotonic()
    error = s.error or next((json.dumps(d)[:200] for _, e, d in s.events if e == "error"), None)
    if error is None and words == 0:
        error = "no answer tokens"
    return Turn(end - s.started, words, error)


async def post_json(port: int, path: str, body: dict) -> dict:
    """A plain JSON POST on its own connection (raw asyncio, like the streaming client)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        payload = json.dumps(body).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        )
        await writer.drain()
        head, _, rest = (await reader.read()).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if b"transfer-encoding: chunked" in head.lower():
            rest = _unchunk(rest)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {rest[:200]!r}")
        return json.loads(rest)
    finally:
        writer.close()


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


async def retrieved(port: int, *, langgraph: bool) -> list[tuple[str, str]]:
    """The passages (path, heading) a server retrieves for the question, to check both search alike."""
    if not langgraph:
        s = await stream(port, "/v1/chat", {"message": QUESTION})
        return [(p["path"], p.get("heading")) for _, e, d in s.events if e == "sources" for p in d["sources"]]
    thread = await post_json(port, "/threads", {})
    body = {"assistant_id": GRAPH_ID, "input": {"messages": [{"role": "user", "content": QUESTION}]}, "stream_mode": ["updates"]}
    s = await stream(port, f"/threads/{thread['thread_id']}/runs/stream", body)
    return [(p["path"], p.get("heading")) for _, e, d in s.events if e == "updates" and "retrieve" in d for p in d["retrieve"]["passages"]]


# -- langgraph dev -----------------------------------------------------------------------------------


@contextlib.contextmanager
def langgraph_dev(python: str, *, model_port: int, jobs: int, allow_blocking: bool) -> Iterator[Server]:
    """`langgraph dev` on the repo's `langgraph.json`, with the model settings and book index `booktutor_serve` uses.

    It runs in a folder of its own (its in-memory runtime pickles threads into `./.langgraph_api`
    and would reload them next time), from a copy of `langgraph.json` whose paths are made absolute.
    """
    home = WORK / f"home-langgraph-dev-{uuid.uuid4().hex[:6]}"
    shutil.copytree(book_home(python), home)
    config = json.loads((REPO / "langgraph.json").read_text())
    config["dependencies"] = [str((REPO / d).resolve()) for d in config.get("dependencies", [])]
    config["graphs"] = {name: str(REPO / spec) for name, spec in config["graphs"].items()}
    (home / "langgraph.json").write_text(json.dumps(config))
    port = free_port()
    env = {
        **graph_env(home, model_port=model_port),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        # Its own loggers log every run at INFO; booktutor_serve runs at WARNING too.
        "LOG_LEVEL": "WARNING",
    }
    command = [
        str(Path(python).parent / "langgraph"), "dev", "--config", str(home / "langgraph.json"), "--port", str(port),
        "--no-browser", "--no-reload", "--n-jobs-per-worker", str(jobs), "--server-log-level", "WARNING",
    ]  # fmt: skip
    if allow_blocking:
        command.append("--allow-blocking")
    log = open(WORK / f"langgraph-dev-{home.name.rsplit('-', 1)[1]}.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=home)
    try:
        _wait_port(port, process, timeout=180, path="/ok")
        warm = asyncio.run(_langgraph_turn(port, ["messages-tuple"])())
        if warm.error:
            raise RuntimeError(f"langgraph dev could not answer: {warm.error} (see {log.name})")
        yield Server(name="langgraph dev", port=port, pid=process.pid)
    finally:
        stop(process)
        shutil.rmtree(home, ignore_errors=True)


# -- the load ----------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        p = pending.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{p}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
    return total


def postgres_cpu_seconds(pid: int) -> float:
    """CPU time of the Postgres backends serving the database a server's DATABASE_URL names (0 without one).

    Backends are separate processes, not the server's children, so their share of a turn is counted here.
    """
    with contextlib.suppress(OSError):
        env = dict(item.partition("=")[::2] for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if item)
        if url := env.get("DATABASE_URL"):
            with psycopg.connect(ADMIN_URL, autocommit=True) as c:
                backends = c.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (url.rsplit("/", 1)[1],)).fetchall()
            return sum(cpu_seconds(p) for (p,) in backends)
    return 0.0


@dataclass
class Load:
    """What one timed window measured."""

    turns: list[Turn] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0
    postgres_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.turns) / self.seconds

    @property
    def cpu_per_turn(self) -> float:
        """Server CPU milliseconds per counted turn (the server process and its children, not Postgres)."""
        return self.cpu * 1000 / max(1, len(self.turns))

    @property
    def postgres_per_turn(self) -> float:
        return self.postgres_cpu * 1000 / max(1, len(self.turns))

    @property
    def cpu_share(self) -> float:
        """Cores the server kept busy on average during the window."""
        return self.cpu / self.seconds


async def load(turn: Callable[[], Awaitable[Turn]], *, clients: int, warmup: float, seconds: float, pid: int) -> Load:
    """`clients` loops of back-to-back turns; counts the turns that end inside the timed window.

    The window opens after `warmup` (every client has a turn in flight by then) and closes `seconds`
    later; clients then stop starting turns, and the turns in flight finish uncounted before the next
    target runs.
    """
    result = Load(seconds=seconds)
    start = time.monotonic()
    opens, closes = start + warmup, start + warmup + seconds
    cpu_at_open: float | None = None

    async def client() -> None:
        while time.monotonic() < closes:
            t = await turn()
            end = time.monotonic()
            if t.error:
                # Both servers answer overload with a 503 (or an error event) and ask for a pause; a
                # client that retried at once would measure its own retry storm.
                await asyncio.sleep(1)
            if not opens <= end <= closes:
                continue
            if t.error:
                result.errors.append(t.error)
            else:
                result.turns.append(t)

    async def meter() -> None:
        nonlocal cpu_at_open
        await asyncio.sleep(max(0.0, opens - time.monotonic()))
        cpu_at_open = cpu_seconds(pid)
        # The pool keeps its connections, so the backends at the close were (mostly) there at the open.
        postgres_at_open = await asyncio.to_thread(postgres_cpu_seconds, pid)
        await asyncio.sleep(max(0.0, closes - time.monotonic()))
        result.cpu = cpu_seconds(pid) - cpu_at_open
        result.postgres_cpu = max(0.0, await asyncio.to_thread(postgres_cpu_seconds, pid) - postgres_at_open)

    await asyncio.gather(meter(), *(client() for _ in range(clients)))
    return result


# -- the bare graph ----------------------------------------------------------------------------------


def graph_load(model_port: int, url: str, *, clients: int, warmup: float, seconds: float) -> Load:
    """The bare graph under the same load, without HTTP: `clients` loops of turns straight into
    `graph.astream`, in a process of its own so that its CPU is counted alone (see `_graph_worker`)."""
    spec = {"model_port": model_port, "url": url, "clients": clients, "warmup": warmup, "seconds": seconds}
    # DATABASE_URL in the process's own environment, where `postgres_cpu_seconds` looks for it.
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, __file__, "--graph-worker", json.dumps(spec)], env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Load(
        turns=[Turn(t, w) for t, w in report["turns"]],
        errors=report["errors"],
        seconds=seconds,
        cpu=report["cpu"],
        postgres_cpu=report["postgres_cpu"],
    )


async def _graph_worker(spec: dict) -> None:
    """One `graph_load` window, run in this process; prints what it measured as one JSON line."""
    async with graph_in_process(spec["model_port"], spec["url"]) as graph_turn:

        async def turn() -> Turn:
            started = time.monotonic()
            try:
                seconds, _, words = await graph_turn()
            except Exception as exc:  # noqa: BLE001 - a benchmark reports failures, it does not stop on them
                return Turn(time.monotonic() - started, 0, repr(exc)[:200])
            return Turn(seconds, words, None if words else "no answer tokens")

        result = await load(turn, clients=spec["clients"], warmup=spec["warmup"], seconds=spec["seconds"], pid=os.getpid())
    report = {
        "turns": [(t.seconds, t.words) for t in result.turns],
        "errors": result.errors,
        "cpu": result.cpu,
        "postgres_cpu": result.postgres_cpu,
    }
    print(json.dumps(report), flush=True)


# -- the report --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=20, help="length of each timed window")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before each window opens")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=0)
    parser.add_argument("--jobs", type=int, default=None, help="runs each server may run at once (default: the most clients)")
    parser.add_argument("--app", action="append", default=[], help="name=/path/to/python[,workers=N] of a checkout to serve")
    parser.add_argument("--langgraph-dev", default=None, help="python of a venv with langgraph-cli[inmem] and this project")
    parser.add_argument("--lg-stream-mode", default="messages-tuple", help="comma-separated stream modes for langgraph dev")
    parser.add_argument("--allow-blocking", action="store_true", help="run langgraph dev without its blocking-call detector")
    parser.add_argument("--graph", action="store_true", help="also load the bare graph in a process of its own (the floor)")
    parser.add_argument("--graph-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.graph_worker:
        asyncio.run(_graph_worker(json.loads(args.graph_worker)))
        return
    counts = [int(n) for n in args.clients.split(",")]
    jobs = args.jobs or max(counts)
    apps = parse_apps(args.app)
    lg_python = args.langgraph_dev and os.path.abspath(args.langgraph_dev)
    skip_lg = None
    if not lg_python:
        skip_lg = "no --langgraph-dev python given"
    elif not (Path(lg_python).parent / "langgraph").exists():
        skip_lg = f"{Path(lg_python).parent / 'langgraph'} not found (pip install 'langgraph-cli[inmem]' into that venv)"
    with contextlib.ExitStack() as stack:
        model_port = stack.enter_context(scripted_model(tokens=args.tokens, delay_ms=args.delay_ms))
        extra = {"BOOKTUTOR_MAX_CONCURRENT_RUNS": str(jobs)}
        targets: list[tuple[Server, Callable[[], Awaitable[Turn]]]] = []
        for name, python, workers in apps:
            server = stack.enter_context(booktutor_serve(name, python, workers, model_port=model_port, extra_env=extra))
            targets.append((Server(f"serve {name}", server.port, server.pid), _booktutor_turn(server.port)))
        if skip_lg is None:
            server = stack.enter_context(langgraph_dev(lg_python, model_port=model_port, jobs=jobs, allow_blocking=args.allow_blocking))
            targets.append((server, _langgraph_turn(server.port, args.lg_stream_mode.split(","))))
        header(
            f"Throughput: {args.tokens} tokens {args.delay_ms:g} ms apart, {args.seconds:g} s windows after {args.warmup:g} s "
            f"of load, interleaved ×{args.repeat}, medians"
        )
        print(
            f"Job concurrency {jobs} for both: BOOKTUTOR_MAX_CONCURRENT_RUNS={jobs}, langgraph dev --n-jobs-per-worker {jobs}"
            f"{' --allow-blocking' if args.allow_blocking else ''} (its default is 1); langgraph dev stream_mode "
            f"{args.lg_stream_mode}, checkpoints in memory; booktutor checkpoints in Postgres."
        )
        if skip_lg:
            print(f"langgraph dev skipped: {skip_lg}.")
        graph_url = stack.enter_context(database()) if args.graph else None
        if graph_url:
            print(
                "graph in-process: the same graph and Postgres checkpointer in a process of its own, the clients' turns "
                "straight into `graph.astream` (no HTTP, no stored run events, no auth or limits)."
            )
        if len(targets) > 1:
            passages = {server.name: asyncio.run(retrieved(server.port, langgraph=server.name == "langgraph dev")) for server, _ in targets}
            same = len({tuple(p) for p in passages.values()}) == 1 and all(passages.values())
            print(
                f"Retrieval: the same {len(next(iter(passages.values())))} passages from every server."
                if same
                else f"Retrieval differs between servers: {passages}"
            )
        print("| clients | target | turns/s | runs | vs langgraph dev | turn p50 s | turn p95 s | words/turn | errors | server CPU cores | CPU ms/turn | Postgres CPU ms/turn | load |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
        for n in counts:
            runs: dict[str, list[Load]] = {}
            for _ in range(args.repeat):
                for server, turn in targets:
                    runs.setdefault(server.name, []).append(
                        asyncio.run(load(turn, clients=n, warmup=args.warmup, seconds=args.seconds, pid=server.pid))
                    )
                    time.sleep(1)
                if graph_url:
                    runs.setdefault("graph in-process", []).append(
                        graph_load(model_port, graph_url, clients=n, warmup=args.warmup, seconds=args.seconds)
                    )
                    time.sleep(1)
            lg_rate = median([r.rate for r in runs["langgraph dev"]]) if "langgraph dev" in runs else None
            for name, loads in runs.items():
                rate = median([r.rate for r in loads])
                seconds = [t.seconds for r in loads for t in r.turns]
                words = median([float(t.words) for r in loads for t in r.turns])
                errors = sum(len(r.errors) for r in loads)
                ratio = f"{rate / lg_rate:.2f}×" if lg_rate else "–"
                postgres = f"{median([r.postgres_per_turn for r in loads]):.0f}" if any(r.postgres_cpu for r in loads) else "–"
                print(
                    f"| {n} | {name} | {rate:.2f} | {' / '.join(f'{r.rate:.2f}' for r in loads)} | {ratio} | {pct(seconds, 50):.2f} | {pct(seconds, 95):.2f} | {words:.0f} | "
                    f"{errors} | {median([r.cpu_share for r in loads]):.2f} | {median([r.cpu_per_turn for r in loads]):.0f} | {postgres} | {os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
                for message in sorted({e for r in loads for e in r.errors})[:3]:
                    print(f"  {name} error: {message}", flush=True)


if __name__ == "__main__":
    main()
