"""CLI start-up benchmark: how long `booktutor --help` and `booktutor ask ""` take, as a user runs them.

Each command runs N times in a fresh process (the installed `booktutor` script beside this Python, so
the interpreter start and the entry point are included); prints the median and the range, asserts
nothing. A scratch BOOKTUTOR_HOME keeps the runs from touching a real data folder.

    python scripts/bench_cli_startup.py --runs 10
    python scripts/bench_cli_startup.py --runs 10 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "booktutor --help": ["--help"],
    'booktutor ask ""': ["ask", ""],
}


def booktutor_command() -> list[str]:
    """The console script installed with this interpreter, else the module entry point."""
    script = Path(sys.executable).with_name("booktutor")
    if script.exists():
        return [str(script)]
    found = shutil.which("booktutor")
    return [found] if found else [sys.executable, "-m", "booktutor.server.cli"]


def time_runs(command: list[str], runs: int, env: dict[str, str]) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    booktutor = booktutor_command()
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["BOOKTUTOR_HOME"] = home
        # One unmeasured run warms the file system cache, as any second run of a command would be.
        time_runs(booktutor + ["--help"], 1, env)
        results = {}
        for label, arguments in COMMANDS.items():
            seconds = time_runs(booktutor + arguments, args.runs, env)
            results[label] = {
                "runs": args.runs,
                "median_s": round(statistics.median(seconds), 3),
                "min_s": round(min(seconds), 3),
                "max_s": round(max(seconds), 3),
            }

    if args.json:
        print(json.dumps({"command": booktutor, "results": results}))
        return
    print(f"{' '.join(booktutor)}  ({args.runs} runs each, {os.cpu_count()} cores)")
    for label, row in results.items():
        print(f"  {label:<20} median {row['median_s']:.3f} s   (min {row['min_s']:.3f}, max {row['max_s']:.3f})")


if __name__ == "__main__":
    main()
