"""booktutor's own time per turn: a model that answers 100 tokens at once, turns one after another.

Side by side in one run, interleaved turn by turn: the model called directly (the anchor), the bare
graph in-process on its Postgres checkpointer (this checkout), and each `booktutor serve` given with
`--app name=/path/to/venv/bin/python`. booktutor's own time is a turn's wall time minus the median
time of the model called directly; added TTFT is the same difference for the first token.

    .venv/bin/python benchmarks/turn.py --turns 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from common import QUESTION, booktutor_serve, database, graph_in_process, header, median, parse_apps, pct, question, rss_mb, scripted_model, stream


async def over_http(port: int, body: dict, path: str) -> tuple[float, float]:
    s = await stream(port, path, body)
    if s.error or not s.token_arrivals():
        raise RuntimeError(s.error or "no tokens")
    end = s.events[-1][0]
    return end - s.started, s.token_arrivals()[0] - s.started


async def run(args) -> None:
    apps = parse_apps(args.app)
    with contextlib.ExitStack() as stack:
        model_port = stack.enter_context(scripted_model(tokens=args.tokens, delay_ms=args.delay_ms))
        servers = [stack.enter_context(booktutor_serve(name, python, workers, model_port=model_port)) for name, python, workers in apps]
        url = stack.enter_context(database())
        async with graph_in_process(model_port, url) as graph_turn:

            async def graph_times() -> tuple[float, float]:
                seconds, first_token, _ = await graph_turn()
                return seconds, first_token

            direct = {"model": "bench-answer", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
            targets = {"model direct": lambda: over_http(model_port, direct, "/v1/chat/completions"), "graph in-process": graph_times}
            for server in servers:
                targets[f"serve {server.name}"] = lambda port=server.port: over_http(port, {"message": question()}, "/v1/chat")
            for fn in targets.values():  # warm up
                await fn()
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
            for _ in range(args.turns):
                for name, fn in targets.items():
                    times[name].append(await fn())
            header(f"Per turn: {args.tokens} tokens, {args.delay_ms:g} ms apart, {args.turns} sequential turns, interleaved")
            for server in servers:
                print(f"RSS after the turns, {server.name}: {rss_mb(server.pid):.0f} MB")
            base_total = median([t for t, _ in times["model direct"]])
            base_ttft = median([f for _, f in times["model direct"]])
            print("| target | turn p50 ms | turn p99 ms | own p50 ms | own p99 ms | TTFT p50 ms | added TTFT p50 ms |")
            print("|---|---|---|---|---|---|---|")
            for name, values in times.items():
                total = [t * 1000 for t, _ in values]
                ttft = [f * 1000 for _, f in values]
                print(
                    f"| {name} | {pct(total, 50):.1f} | {pct(total, 99):.1f} | {pct(total, 50) - base_total * 1000:.1f} | "
                    f"{pct(total, 99) - base_total * 1000:.1f} | {pct(ttft, 50):.1f} | {pct(ttft, 50) - base_ttft * 1000:.1f} |"
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=0)
    parser.add_argument("--app", action="append", default=[], help="name=/path/to/python[,workers=N] of a checkout to serve")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
