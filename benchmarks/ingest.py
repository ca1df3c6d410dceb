"""Ingest of a book of distinct chapters, then hybrid queries at that size: prints numbers.

Copying one book many times hides the embedding cost (identical chunk texts are embedded once per
process), so this generates a book whose chapters are all different: each chapter takes the shape of
a page of the corpus (front matter, JSX, headings, lists, code, tables, about the same length) and
fills it with sentences drawn at random from the whole corpus, with numbers redrawn and some words
swapped, under a title of its own. The generator is seeded, so every run ingests the same book. It is
ingested into a fresh local (Qdrant Edge) index with the default offline embeddings, then questions
from an evaluation set are searched (query embedding included) through booktutor's search.

    .venv/bin/python benchmarks/ingest.py --chapters 1000
    .venv/bin/python benchmarks/ingest.py --chapters 200 --json

CPU seconds are the process's own (all threads), so `chunks per CPU second` barely moves with the
machine's load while `chunks/s` does; the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

from common import chunk_texts, load_average, pct, peak_rss_mb, print_report, time_searches

from booktutor.tools.docusaurus.pages import find_doc_files
from booktutor.tools.evaluation import load_questions
from booktutor.tools.index import close_all, open_book_index
from booktutor.tools.ingest import ingest_book

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "physical-ai-book"
DEFAULT_QUESTIONS = REPO.parent / "shared" / "eval" / "dev-questions.jsonl"
CHAPTERS_PER_MODULE = 50

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_NUMBER = re.compile(r"\d+")
_PROSE = re.compile(r"^(\s*(?:[-*+]|\d+\.|>)?\s*)(.*[A-Za-z].*)$")
# Swapped both ways at random, so the same sentence reads differently from chapter to chapter.
_WORDS = [
    ("robot", "humanoid"), ("sensor", "encoder"), ("camera", "depth camera"), ("controller", "planner"),
    ("simulation", "digital twin"), ("node", "process"), ("topic", "channel"), ("model", "policy"),
    ("joint", "actuator"), ("latency", "delay"), ("message", "packet"), ("navigation", "path planning"),
    ("gripper", "end effector"), ("training", "fine-tuning"), ("dataset", "recording"), ("arm", "limb"),
    ("environment", "scene"), ("trajectory", "motion plan"), ("feedback", "correction"), ("GPU", "accelerator"),
]
_SUBJECTS = [
    "Balance", "Grasping", "Locomotion", "Perception", "Calibration", "Teleoperation", "Mapping",
    "Safety", "Speech", "Vision", "Control", "Planning", "Manipulation", "Localization", "Learning",
]


def _corpus_pages(corpus: Path) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in find_doc_files(corpus) if p.suffix in (".md", ".mdx")]


def _sentence_pool(pages: list[str]) -> list[str]:
    """Prose sentences of the corpus: what the generated chapters are written with."""
    pool = []
    for text in pages:
        fenced = False
        for line in text.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            match = _PROSE.match(line)
            if fenced or not match or line.lstrip().startswith(("#", "<", "|", "import ", "---")):
                continue
            pool += [s for s in _SENTENCE.split(match.group(2)) if len(s.split()) >= 4]
    return pool


def _vary(text: str, rng: random.Random) -> str:
    text = _NUMBER.sub(lambda m: str(rng.randrange(1, 10 ** len(m.group())) if len(m.group()) < 4 else m.group()), text)
    for a, b in rng.sample(_WORDS, 4):
        text = text.replace(a, b) if rng.random() < 0.5 else text.replace(b, a)
    return text


def _chapter(template: str, pool: list[str], rng: random.Random, title: str, position: int) -> str:
    """A chapter shaped like `template`: prose lines rewritten from `pool`, the rest varied."""
    body = template.split("---", 2)[2] if template.startswith("---") else template
    lines = [f"---\nsidebar_position: {position}\ntitle: \"{title}\"\n---"]
    fenced = False
    for line in body.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            fenced = not fenced
        match = _PROSE.match(line)
        if fenced or stripped.startswith(("|", "<", "import ")) or not match:
            lines.append(_NUMBER.sub(lambda m: str(rng.randrange(10 ** len(m.group()))), line) if fenced else line)
        elif stripped.startswith("#"):
            lines.append(f"{line} {rng.choice(_SUBJECTS).lower()}" if rng.random() < 0.5 else line)
        else:
            # About as many words as the line had, from sentences of anywhere in the corpus.
            words, sentences = len(match.group(2).split()), []
            while sum(len(s.split()) for s in sentences) < words:
                sentences.append(_vary(rng.choice(pool), rng))
            lines.append(match.group(1) + " ".join(sentences))
    return "\n".join(lines) + "\n"


def generate_book(corpus: Path, target: Path, chapters: int, *, seed: int = 12) -> None:
    """`chapters` distinct chapters in modules of CHAPTERS_PER_MODULE, Docusaurus-shaped."""
    rng = random.Random(seed)
    pages = _corpus_pages(corpus)
    pool = _sentence_pool(pages)
    for n in range(chapters):
        module, position = divmod(n, CHAPTERS_PER_MODULE)
        folder = target / f"{module:02d}-module"
        if position == 0:
            folder.mkdir(parents=True)
            label = f"{module:02d} - {rng.choice(_SUBJECTS)} and {rng.choice(_SUBJECTS)} for humanoids"
            (folder / "_category_.json").write_text(json.dumps({"label": label, "position": module + 1}))
        title = f"{rng.choice(_SUBJECTS)} {n + 1}: {rng.choice(_SUBJECTS).lower()} in practice"
        text = _chapter(rng.choice(pages), pool, rng, title, position + 1)
        (folder / f"{position + 1:02d}-chapter-{n + 1}.md").write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapters", type=int, default=1000)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="booktutor-ingest-") as work:
        work = Path(work)
        generate_book(args.corpus, work / "docs", args.chapters, seed=args.seed)
        texts = chunk_texts(work / "docs")
        baseline_mb = peak_rss_mb()
        index = open_book_index(path=work / "qdrant", collection="bench")
        index.embeddings.embed_query("load the model before timing")

        load_before = load_average()
        started, cpu_started = time.perf_counter(), time.process_time()
        report = ingest_book(work / "docs", index)
        ingest_seconds = time.perf_counter() - started
        ingest_cpu = time.process_time() - cpu_started
        ingest_peak_mb = peak_rss_mb()
        load_after = load_average()

        questions = [q["question"] for q in load_questions(args.questions)]
        index.warm()  # as `booktutor serve` does at start
        latencies = time_searches(index, questions, rounds=args.rounds)
        close_all()

    numbers = {
        "chapters": args.chapters,
        "files": report.files,
        "chunks": report.chunks_written,
        "distinct_chunk_texts": len(set(texts)),
        "ingest_seconds": round(ingest_seconds, 1),
        "chunks_per_second": round(report.chunks_written / ingest_seconds, 1),
        "ingest_cpu_seconds": round(ingest_cpu, 1),
        "chunks_per_cpu_second": round(report.chunks_written / ingest_cpu, 1),
        "peak_rss_mb": round(ingest_peak_mb, 1),
        "rss_before_ingest_mb": round(baseline_mb, 1),
        "query_ms_p50": round(statistics.median(latencies), 1),
        "query_ms_p95": round(pct(latencies, 95), 1),
        "queries": len(latencies),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cores": os.cpu_count(),
    }
    print_report(numbers, as_json=args.json)


if __name__ == "__main__":
    main()
