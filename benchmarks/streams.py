"""Concurrent streams: N readers at once, a scripted model streaming 200 tokens 50 ms apart.

Side by side in one run, interleaved per repetition: the model called directly (the anchor) and each
`booktutor serve` given with `--app name=/path/to/venv/bin/python`. Prints, per stream count, time to
first token p50/p95, the added gap between tokens p50/p99 (over the model's own 50 ms), how many
streams finished, and the server's RSS at its peak.

    .venv/bin/python benchmarks/streams.py --streams 25,100,300,1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from common import QUESTION, Stream, booktutor_serve, header, median, parse_apps, question, rss_mb, scripted_model, stream, summarize



async def burst(port: int, n: int, *, direct: bool, timeout: float, pid: int | None) -> tuple[list[Stream], float]:
    """`n` streams started at once; the peak RSS of `pid` while they run."""
    if direct:
        body = {"model": "bench-answer", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
        path = "/v1/chat/completions"
    else:
        body, path = {"message": question()}, "/v1/chat"
    peak = 0.0

    async def watch() -> None:
        nonlocal peak
        while pid:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    tasks = [asyncio.create_task(stream(port, path, body)) for _ in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    watcher.cancel()
    results = [t.result() for t in done]
    return results, peak


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", default="25,100,300,1000")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=50)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120, help="seconds a burst may take before it is cut")
    parser.add_argument("--app", action="append", default=[], help="name=/path/to/python[,workers=N] of a checkout to serve")
    args = parser.parse_args()
    counts = [int(n) for n in args.streams.split(",")]
    apps = parse_apps(args.app)
    with contextlib.ExitStack() as stack:
        model_port = stack.enter_context(scripted_model(tokens=args.tokens, delay_ms=args.delay_ms))
        servers = [stack.enter_context(booktutor_serve(name, python, workers, model_port=model_port)) for name, python, workers in apps]
        header(f"Concurrent streams: {args.tokens} tokens × {args.delay_ms:g} ms, interleaved ×{args.repeat}")
        for server in servers:
            print(f"RSS when ready, {server.name}: {rss_mb(server.pid):.0f} MB", flush=True)
        print("| streams | target | finished | TTFT p50 ms | TTFT p95 ms | added gap p50 ms | added gap p99 ms | peak RSS MB | load |")
        print("|---|---|---|---|---|---|---|---|---|", flush=True)
        for n in counts:
            rows: dict[str, list[dict]] = {}
            for _ in range(args.repeat):
                targets = [("model direct", model_port, True, None)] + [(s.name, s.port, False, s.pid) for s in servers]
                for name, port, direct, pid in targets:
                    results, peak = asyncio.run(burst(port, n, direct=direct, timeout=args.timeout, pid=pid))
                    row = summarize(results, model_gap=args.delay_ms / 1000)
                    row["rss"] = peak
                    rows.setdefault(name, []).append(row)
                    time.sleep(1)
            for name, runs in rows.items():
                m = {k: median([r[k] for r in runs]) for k in runs[0]}
                rss = f"{m['rss']:.0f}" if m["rss"] else "–"
                print(
                    f"| {n} | {name} | {m['finished']:.0f}/{n} | {m['ttft_p50']:.0f} | {m['ttft_p95']:.0f} | "
                    f"{m['gap_p50']:.1f} | {m['gap_p99']:.1f} | {rss} | {header_load()} |",
                    flush=True,
                )


def header_load() -> str:
    import os

    return f"{os.getloadavg()[0]:.1f}"


if __name__ == "__main__":
    main()
