"""The offline embedder alone: its memory once loaded, and documents embedded per second.

Memory is the process's resident set (VmRSS) after importing the embedder, after loading the model,
after one query (what a server holds when ready) and after embedding the corpus's chunks. Speed is
measured side by side, interleaved round by round, on the chunks of a corpus: `embed_documents`, and
one text per onnxruntime run spread over one worker per core (how documents were embedded before
length-sorted batches). CPU milliseconds per chunk count every thread of the process, so they move
less with the machine's load than chunks per second.

    .venv/bin/python benchmarks/embedding.py
    .venv/bin/python benchmarks/embedding.py --rounds 3 --chunks 400
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import chunk_texts, load_average

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "physical-ai-book"


def vm(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=2, help="0: memory only")
    parser.add_argument("--chunks", type=int, default=0, help="a seeded sample of this many chunks (0: all)")
    args = parser.parse_args()

    import numpy as np

    from booktutor.tools.embeddings import MiniLMEmbeddings

    memory = {"imported": vm()}
    embeddings = MiniLMEmbeddings()
    memory["model loaded"] = vm()
    embeddings.embed_query("How does a PID controller use the derivative term?")
    memory["one query (ready)"] = vm()

    texts = chunk_texts(args.corpus)
    if args.chunks:
        texts = random.Random(12).sample(texts, min(args.chunks, len(texts)))
    workers = min(4, os.cpu_count() or 1)

    def one_per_run(texts: list[str]) -> list[list[float]]:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(embeddings.embed_query, texts))

    ways = {"one text per run": one_per_run, "embed_documents": embeddings.embed_documents}
    speed: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    vectors = {}
    load_before = load_average()
    for _ in range(args.rounds):
        for name, embed in ways.items():
            started, cpu = time.perf_counter(), time.process_time()
            vectors[name] = np.array(embed(texts))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            speed[name].append((len(texts) / wall, cpu * 1000 / len(texts)))
    memory["after the chunks"] = vm()
    memory["peak"] = vm("VmHWM")

    print(f"load average {load_before} -> {load_average()} · {os.cpu_count()} cores · {len(texts)} chunks × {args.rounds} rounds")
    for stage, mb in memory.items():
        print(f"RSS {stage:<20} {mb:7.1f} MB")
    if not args.rounds:
        return
    for name, runs in speed.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:<20} {rate:6.1f} chunks/s (median)  {cpu:5.1f} CPU ms/chunk  runs: " + ", ".join(f"{r:.1f}" for r, _ in runs))
    cosine = (vectors["one text per run"] * vectors["embed_documents"]).sum(axis=1)
    print(f"cosine, embed_documents vs one text per run: min {cosine.min():.6f}, median {np.median(cosine):.6f}")


if __name__ == "__main__":
    main()
