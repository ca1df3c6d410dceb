"""The floor under a turn: what one Postgres commit, one query embedding and one search cost here.

Every turn makes several commits (the question, its checkpoints, the run's record and events), one
query embedding and one hybrid search, so these numbers bound from below what a turn can cost on this
machine however the server is written. Each is timed many times in one process; medians and p95.

    .venv/bin/python benchmarks/limits.py
"""

from __future__ import annotations

import argparse
import os
import time

import psycopg

from common import book_home, database, header, median, pct

QUESTIONS = [
    "How does a PID controller use the derivative term?",
    "What is Pip's track width?",
    "How does the robot turn in place?",
    "Why does integral windup happen?",
    "What does a wheel encoder measure?",
]


def timed(fn, runs: int) -> list[float]:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    rows: list[tuple[str, list[float]]] = []

    with database() as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench (id int primary key, data text)")
        payload = "x" * 200

        def commit(i: int) -> None:
            conn.execute("INSERT INTO bench VALUES (%s, %s)", (i, payload))

        rows.append(("one Postgres commit (INSERT, autocommit, loopback)", timed(commit, args.runs)))

        def round_trip(_: int) -> None:
            conn.execute("SELECT 1")

        rows.append(("one Postgres round trip (SELECT 1)", timed(round_trip, args.runs)))

    os.environ["BOOKTUTOR_HOME"] = str(book_home())
    from booktutor.graphs.context import open_index
    from booktutor.graphs.settings import Settings
    from booktutor.tools.index import close_all

    index = open_index(Settings().context())
    index.warm()
    embed = index.embeddings.embed_query
    embed("warm up")
    # Distinct texts, so no cache can answer: the question with a running number.
    rows.append(("one query embedding (MiniLM int8, one thread)", timed(lambda i: embed(f"{QUESTIONS[i % 5]} {i}"), args.runs)))
    # Texts the row above did not embed, so the search embeds its query too.
    rows.append((f"one hybrid search, {index.count()} chunks (embedding included)", timed(lambda i: index.search(f"{QUESTIONS[i % 5]} #{i}"), args.runs)))
    close_all()

    header(f"Floors: one commit, one embedding, one search (×{args.runs} each)")
    print("| operation | p50 ms | p95 ms |")
    print("|---|---|---|")
    for name, times in rows:
        print(f"| {name} | {median(times):.2f} | {pct(times, 95):.2f} |")


if __name__ == "__main__":
    main()
