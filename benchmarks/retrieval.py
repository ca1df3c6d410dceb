"""Ingestion and query benchmark at book scale: prints numbers, asserts nothing.

Builds an N-chapter book by replicating a docs folder under different paths (as Docusaurus versioned
docs do), ingests it into a fresh local index (Qdrant Edge), ingests it again unchanged, then times
hybrid queries (query embedding included) from an evaluation set through booktutor's search.
benchmarks/local_search.py compares the local engines themselves.

    .venv/bin/python benchmarks/retrieval.py --chapters 1000
    .venv/bin/python benchmarks/retrieval.py --chapters 1000 --json
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import REPO, pct, peak_rss_mb, print_report, time_searches

from booktutor.tools.docusaurus.pages import find_doc_files
from booktutor.tools.evaluation import load_questions
from booktutor.tools.index import close_all, open_book_index
from booktutor.tools.ingest import ingest_book

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "physical-ai-book"
DEFAULT_QUESTIONS = REPO.parent / "shared" / "eval" / "dev-questions.jsonl"


def replicate(corpus: Path, target: Path, chapters: int) -> int:
    """Copy `corpus` under version-like folders until the book has at least `chapters` pages."""
    pages = find_doc_files(corpus)
    copies = -(-chapters // len(pages))
    for n in range(copies):
        for page in pages:
            destination = target / f"v{n:04d}" / page.relative_to(corpus)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(page, destination)
    return copies * len(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapters", type=int, default=1000)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--rounds", type=int, default=5, help="times each question is asked")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="booktutor-bench-") as work:
        work = Path(work)
        pages = replicate(args.corpus, work / "docs", args.chapters)
        baseline_mb = peak_rss_mb()
        index = open_book_index(path=work / "qdrant", collection="bench")
        index.embeddings.embed_query("load the model before timing")

        started = time.perf_counter()
        first = ingest_book(work / "docs", index)
        ingest_seconds = time.perf_counter() - started
        ingest_peak_mb = peak_rss_mb()

        started = time.perf_counter()
        again = ingest_book(work / "docs", index)
        reingest_seconds = time.perf_counter() - started

        questions = [q["question"] for q in load_questions(args.questions)]
        started = time.perf_counter()
        index.warm()  # open the index, as `booktutor serve` does at start
        warm_seconds = time.perf_counter() - started
        latencies = time_searches(index, questions, rounds=args.rounds)
        close_all()

    report = {
        "chapters": pages,
        "chunks": first.chunks_written,
        "ingest_seconds": round(ingest_seconds, 1),
        "chapters_per_second": round(pages / ingest_seconds, 1),
        "unchanged_reingest_seconds": round(reingest_seconds, 2),
        "unchanged_files": again.unchanged,
        "peak_rss_mb": round(ingest_peak_mb, 1),
        "rss_before_ingest_mb": round(baseline_mb, 1),
        "search_warmup_seconds": round(warm_seconds, 2),
        "query_ms_p50": round(statistics.median(latencies), 1),
        "query_ms_p95": round(pct(latencies, 95), 1),
        "queries": len(latencies),
    }
    print_report(report, as_json=args.json)


if __name__ == "__main__":
    main()
