"""CPU per streamed token: what one more token costs the server, measured on its own process.

Each `booktutor serve` (given with `--app name=/path/to/python`) answers the same burst of streams twice,
interleaved: once with 1-token answers, once with `--tokens`-token answers, the model pacing tokens
`--delay-ms` apart (so every token is its own event, as with a real model). The server's CPU time
difference divided by the extra tokens is its cost per token.

    .venv/bin/python benchmarks/token_cost.py --streams 50 --tokens 200 --delay-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket

from common import booktutor_serve, header, median, parse_apps, question, scripted_model, stream



def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def script(model_port: int, tokens: int, delay_ms: float) -> None:
    body = json.dumps({"tokens": tokens, "delay_ms": delay_ms}).encode()
    with socket.create_connection(("127.0.0.1", model_port)) as s:
        s.sendall(b"POST /control HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        s.recv(100)


async def burst(port: int, n: int) -> int:
    results = await asyncio.gather(*(stream(port, "/v1/chat", {"message": question()}) for _ in range(n)))
    failed = [r.error for r in results if r.error]
    if failed:
        raise RuntimeError(failed[0])
    return sum(len(r.token_arrivals()) for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--app", action="append", default=[], help="name=/path/to/python[,workers=N] of a checkout to serve")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        model_port = stack.enter_context(scripted_model(tokens=1, delay_ms=args.delay_ms))
        servers = [stack.enter_context(booktutor_serve(name, python, workers, model_port=model_port)) for name, python, workers in parse_apps(args.app)]
        for server in servers:
            asyncio.run(burst(server.port, 5))  # warm up
        costs: dict[str, list[float]] = {s.name: [] for s in servers}
        for _ in range(args.repeat):
            for server in servers:
                spent = {}
                for tokens in (1, args.tokens):
                    script(model_port, tokens, args.delay_ms)
                    before = cpu_seconds(server.pid)
                    asyncio.run(burst(server.port, args.streams))
                    spent[tokens] = cpu_seconds(server.pid) - before
                costs[server.name].append((spent[args.tokens] - spent[1]) / (args.streams * (args.tokens - 1)))
        header(f"CPU per streamed token: {args.streams} streams × {args.tokens} tokens, {args.delay_ms:g} ms apart, ×{args.repeat}")
        print("| target | CPU µs per token (median) | runs |")
        print("|---|---|---|")
        for name, values in costs.items():
            print(f"| {name} | {median(values) * 1e6:.0f} | {', '.join(f'{v * 1e6:.0f}' for v in values)} |")


if __name__ == "__main__":
    main()
