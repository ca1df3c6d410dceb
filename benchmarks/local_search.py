"""Local search engines side by side: qdrant-client's local mode and Qdrant Edge (booktutor's local index).

    python benchmarks/local_search.py                  # the book, and the book scaled to ~19,000 chunks
    python benchmarks/local_search.py --scaled 0       # the book only

All engines get the same points and the same query vectors, so only the engine differs:

- the physical-AI book is ingested once (MiniLM dense + BM25 sparse, as `booktutor ingest` does) and
  its points are read back with their vectors;
- the scaled set repeats those points until there are ~19,000 (new ids, paths under `vNN/`), each copy
  with its dense vector and its sparse weights nudged by a little seeded noise, so copies are near
  duplicates but do not tie (ties would make every ranking comparison a question of tie-breaking);
- the dev questions are embedded once, both ways.

Each engine runs in a fresh process, so its resident memory is its own:

- **local mode**: `QdrantClient(path=...)`, the collection `BookIndex.ensure_collection` makes, points
  upserted in batches of 512 with the SQLite tuning earlier versions of booktutor applied (a write-ahead
  log, synchronous=NORMAL); then reopened from disk in a new process and queried with its own hybrid
  query (dense + sparse prefetch 24 each, RRF, limit 10). It is the reference for fidelity.
- (Before Edge was adopted, booktutor answered local mode's queries from a numpy mirror of its vectors,
  tools/local_search.py; the README's figures for it come from this benchmark as of commit 354b997.)
- **edge**: `qdrant_edge.EdgeShard` with the same vectors (dense cosine, sparse with the IDF modifier)
  and the same payload indexes, upserted in batches of 512 and flushed; reopened with
  `EdgeShard.load` in a new process and queried with the same prefetch + RRF (k=2, Qdrant's default).
  `edge+hnsw` is the same shard after `optimize()`, which builds HNSW on segments over the indexing
  threshold (approximate dense search).

Fidelity is against local mode's own answers (local mode runs Qdrant's scoring formulas in Python; no
server runs here): for each leg (dense top 24, sparse top 24) and the fused top 10, the mean share of
the reference's top 10 found in the engine's top 10, and the share of questions whose top 10 is the
reference's in order, counting a swap of points with equal scores (within 1e-5) as agreement.
Prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CORPUS = REPO.parent / "shared" / "corpus" / "physical-ai-book"
QUESTIONS = REPO.parent / "shared" / "eval" / "dev-questions.jsonl"
DENSE, SPARSE = "dense", "sparse"
PREFETCH = 24
LIMIT = 10
BATCH = 512
RRF_K = 2
TIE = 1e-5
COLLECTION = "bench"


# -- shared helpers -------------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident memory of this process (not the peak), in MB."""
    return sum(rss_parts().values())


def rss_parts() -> dict[str, float]:
    """Resident memory split: anonymous (the heap: private to the process) and file-backed (mapped files,
    which the kernel can drop and other processes mapping the same files share), in MB."""
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                found[key] = int(value.split()[0]) / 1024
    return {"anon": found["RssAnon"], "file": found["RssFile"] + found.get("RssShmem", 0.0)}


def grown(before: dict[str, float]) -> dict[str, float]:
    now = rss_parts()
    return {key: now[key] - before[key] for key in now}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def load(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f)


# -- the data -------------------------------------------------------------------------------------


def prepare(work: Path, scaled: int, seed: int) -> list[tuple[str, Path]]:
    """Ingest the book, read its points back, embed the questions; write the data sets to `work`."""
    import numpy as np

    from booktutor.tools.evaluation import load_questions
    from booktutor.tools.index import close_all, open_book_index
    from booktutor.tools.ingest import ingest_book

    index = open_book_index(path=work / "source", collection="book")
    ingest_book(CORPUS, index)
    ids, dense, terms, weights, payloads = [], [], [], [], []
    offset = None
    while True:
        points, offset = index.client.scroll(index.collection, with_payload=True, with_vectors=True, limit=2048, offset=offset)
        for point in points:
            sparse = point.vector.get(SPARSE)
            ids.append(str(point.id))
            dense.append(point.vector[DENSE])
            terms.append(np.asarray(sparse.indices if sparse else [], dtype=np.int64))
            weights.append(np.asarray(sparse.values if sparse else [], dtype=np.float32))
            payloads.append(point.payload)
        if offset is None:
            break
    questions = [q["question"] for q in load_questions(QUESTIONS)]
    query_dense = np.asarray(index.embeddings.embed_documents(questions), dtype=np.float32)
    query_sparse = [index.sparse.embed_query(q) for q in questions]
    queries = {
        "dense": query_dense,
        "terms": [np.asarray(s.indices, dtype=np.int64) for s in query_sparse],
        "weights": [np.asarray(s.values, dtype=np.float32) for s in query_sparse],
    }
    close_all()
    book = {"ids": ids, "dense": np.asarray(dense, dtype=np.float32), "terms": terms, "weights": weights, "payloads": payloads}
    sets = [("book", book)]
    if scaled:
        sets.append((f"scaled x{-(-scaled // len(ids))}", replicate(book, scaled, seed)))
    written = []
    for name, points in sets:
        path = work / f"{len(written)}.pickle"
        with open(path, "wb") as f:
            pickle.dump({"name": name, "points": points, "queries": queries}, f, protocol=pickle.HIGHEST_PROTOCOL)
        written.append((name, path))
    return written


def replicate(book: dict, target: int, seed: int) -> dict:
    """Copies of the book's points up to `target`, each copy's vectors nudged by seeded noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    copies = -(-target // len(book["ids"]))
    out = {key: list(book[key]) for key in ("ids", "terms", "weights", "payloads")}
    dense = [book["dense"]]
    namespace = uuid.UUID("0f5a3c2e-7d1b-4e8a-9c64-2b7e1d3f5a90")
    for copy in range(1, copies):
        out["ids"] += [str(uuid.uuid5(namespace, f"{copy}:{i}")) for i in book["ids"]]
        # About 0.1 of a unit vector's length: cosines move by a few hundredths, rankings reshuffle a little.
        dense.append(book["dense"] + rng.normal(0, 0.005, book["dense"].shape).astype(np.float32))
        out["terms"] += book["terms"]
        out["weights"] += [(w * rng.uniform(0.95, 1.05, len(w))).astype(np.float32) for w in book["weights"]]
        for payload in book["payloads"]:
            meta = dict(payload["metadata"])
            meta["path"] = f"v{copy:02d}/{meta['path']}"
            meta["page_url"] = f"/v{copy:02d}{meta['page_url']}"
            out["payloads"].append({"page_content": payload["page_content"], "metadata": meta})
    out["dense"] = np.concatenate(dense)
    return out


# -- engines (each run in its own process) ----------------------------------------------------------


def build_local(data: dict, folder: Path) -> dict:
    from qdrant_client import QdrantClient, models

    from booktutor.tools.index import BookIndex

    points = data["points"]
    before = rss_mb()
    started = time.perf_counter()
    client = QdrantClient(path=str(folder))
    index = BookIndex(client, COLLECTION, embeddings=None, embedding_name="bench")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # local mode warns that payload indexes are a server feature
        index.ensure_collection(points["dense"].shape[1])
    # Without this, SQLite syncs the disk once per point (about 2 ms each); qdrant-client has no option.
    storage = client._client.collections[COLLECTION].storage.storage
    storage.execute("PRAGMA journal_mode=WAL")
    storage.execute("PRAGMA synchronous=NORMAL")
    for start in range(0, len(points["ids"]), BATCH):
        batch = range(start, min(start + BATCH, len(points["ids"])))
        client.upsert(
            COLLECTION,
            [
                models.PointStruct(
                    id=points["ids"][i],
                    vector={
                        DENSE: points["dense"][i].tolist(),
                        SPARSE: models.SparseVector(indices=points["terms"][i].tolist(), values=points["weights"][i].tolist()),
                    },
                    payload=points["payloads"][i],
                )
                for i in batch
            ],
            wait=True,
        )
    seconds = time.perf_counter() - started
    added = rss_mb() - before
    client.close()
    return {"build_s": seconds, "build_rss_mb": added}


def open_local(data: dict, folder: Path, rounds: int) -> dict:
    """Local mode reopened: its own hybrid query and legs."""
    from qdrant_client import QdrantClient, models

    queries = data["queries"]
    n = len(queries["terms"])
    gc.collect()
    before = rss_parts()
    started = time.perf_counter()
    client = QdrantClient(path=str(folder))
    open_s = time.perf_counter() - started
    local_rss = grown(before)

    def sparse(q: int) -> models.SparseVector:
        return models.SparseVector(indices=queries["terms"][q].tolist(), values=queries["weights"][q].tolist())

    def hybrid(q: int):
        return client.query_points(
            COLLECTION,
            prefetch=[
                models.Prefetch(query=queries["dense"][q].tolist(), using=DENSE, limit=PREFETCH),
                models.Prefetch(query=sparse(q), using=SPARSE, limit=PREFETCH),
            ],
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=LIMIT,
            with_payload=True,
        ).points

    result: dict = {"local": {"open_s": open_s, "rss_mb": local_rss}}
    rankings: dict = {"dense": [], "sparse": [], "hybrid": []}
    latencies = []
    for q in range(n):
        started = time.perf_counter()
        hits = hybrid(q)
        latencies.append((time.perf_counter() - started) * 1000)
        rankings["hybrid"].append([(str(p.id), p.score) for p in hits])
        for leg, query in ((DENSE, queries["dense"][q].tolist()), (SPARSE, sparse(q))):
            # Twice the prefetch, so a run of equal scores cut at the prefetch is seen whole.
            hits = client.query_points(COLLECTION, query=query, using=leg, limit=2 * PREFETCH).points
            rankings[leg].append([(str(p.id), p.score) for p in hits])
    result["local"]["latency_ms"] = latencies
    result["local"]["rankings"] = rankings

    client.close()
    return result


def edge_config(dimensions: int):
    import qdrant_edge as qe

    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )


EDGE_INDEXES = ("metadata.path", "metadata.module", "metadata.page_url")


def build_edge(data: dict, folder: Path, optimize: bool) -> dict:
    import qdrant_edge as qe

    points = data["points"]
    before = rss_mb()
    started = time.perf_counter()
    shard = qe.EdgeShard.create(str(folder), edge_config(points["dense"].shape[1]))
    for field in EDGE_INDEXES:
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
    shard.update(qe.UpdateOperation.create_field_index("metadata.chunk_index", qe.PayloadSchemaType.Integer))
    for start in range(0, len(points["ids"]), BATCH):
        batch = range(start, min(start + BATCH, len(points["ids"])))
        shard.update(
            qe.UpdateOperation.upsert_points(
                [
                    qe.Point(
                        points["ids"][i],
                        {
                            DENSE: points["dense"][i].tolist(),
                            SPARSE: qe.SparseVector(points["terms"][i].tolist(), points["weights"][i].tolist()),
                        },
                        points["payloads"][i],
                    )
                    for i in batch
                ]
            )
        )
    shard.flush()
    seconds = time.perf_counter() - started
    result = {"build_s": seconds, "build_rss_mb": rss_mb() - before}
    if optimize:
        started = time.perf_counter()
        shard.optimize()
        shard.flush()
        result["optimize_s"] = time.perf_counter() - started
    info = shard.info()
    result["segments"] = info.segments_count
    result["indexed_vectors"] = info.indexed_vectors_count
    shard.close()
    return result


def open_edge(data: dict, folder: Path, rounds: int) -> dict:
    import qdrant_edge as qe

    queries = data["queries"]
    n = len(queries["terms"])
    gc.collect()
    before = rss_parts()
    started = time.perf_counter()
    shard = qe.EdgeShard.load(str(folder))
    open_s = time.perf_counter() - started

    def sparse(q: int):
        return qe.SparseVector(queries["terms"][q].tolist(), queries["weights"][q].tolist())

    def hybrid(q: int):
        return shard.query(
            qe.QueryRequest(
                limit=LIMIT,
                prefetches=[
                    qe.Prefetch(limit=PREFETCH, query=qe.Query.Nearest(queries["dense"][q].tolist(), using=DENSE)),
                    qe.Prefetch(limit=PREFETCH, query=qe.Query.Nearest(sparse(q), using=SPARSE)),
                ],
                query=qe.Fusion.Rrf(k=RRF_K),
                with_payload=True,
            )
        )

    hybrid(0)
    rss = grown(before)  # loaded and warmed by one query
    rankings: dict = {"dense": [], "sparse": [], "hybrid": []}
    latencies = []
    for _ in range(rounds):
        for q in range(n):
            started = time.perf_counter()
            hits = hybrid(q)
            latencies.append((time.perf_counter() - started) * 1000)
            if len(rankings["hybrid"]) < n:
                rankings["hybrid"].append([(str(p.id), p.score) for p in hits])
    for q in range(n):
        for leg, query in ((DENSE, queries["dense"][q].tolist()), (SPARSE, sparse(q))):
            hits = shard.query(qe.QueryRequest(limit=PREFETCH, query=qe.Query.Nearest(query, using=leg)))
            rankings[leg].append([(str(p.id), p.score) for p in hits])
    shard.close()
    return {"open_s": open_s, "rss_mb": rss, "latency_ms": latencies, "rankings": rankings}


def try_open(folder: Path) -> dict:
    """Open an edge shard and count its points; reports the error instead of raising."""
    import qdrant_edge as qe

    try:
        shard = qe.EdgeShard.load(str(folder))
        count = shard.info().points_count
        shard.close()
        return {"ok": True, "points": count}
    except Exception as exc:  # the error is the finding
        return {"ok": False, "error": str(exc)[:200]}


def write_and_die(folder: Path) -> None:
    """Add a point to a shard and end the process at once: no flush, no close (a crash mid-ingest)."""
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(str(folder))
    point = qe.Point(str(uuid.uuid4()), {DENSE: [1.0] * shard_dimensions(shard), SPARSE: qe.SparseVector([1], [1.0])}, {})
    shard.update(qe.UpdateOperation.upsert_points([point]))
    os._exit(0)


def shard_dimensions(shard) -> int:
    record = shard.scroll(__import__("qdrant_edge").ScrollRequest(limit=1, with_vector=[DENSE]))[0][0]
    return len(record.vector[DENSE])


def child(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    if args.step == "try-open":
        print(json.dumps(try_open(folder)))
        return
    if args.step == "write-and-die":
        write_and_die(folder)
    data = load(Path(args.data))
    steps = {
        "build-local": lambda: build_local(data, folder),
        "open-local": lambda: open_local(data, folder, args.rounds),
        "build-edge": lambda: build_edge(data, folder, optimize=False),
        "build-edge-hnsw": lambda: build_edge(data, folder, optimize=True),
        "open-edge": lambda: open_edge(data, folder, args.rounds),
    }
    print(json.dumps(steps[args.step]()))


def run(step: str, data: Path | None, folder: Path, rounds: int = 0) -> dict:
    command = [sys.executable, __file__, "--step", step, "--folder", str(folder), "--rounds", str(rounds)]
    if data is not None:
        command += ["--data", str(data)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- comparison -----------------------------------------------------------------------------------


def agreement(mine: list[list], reference: list[list], top: int) -> tuple[float, float]:
    """(mean share of the reference's top `top` in mine, share of questions ranked the same up to ties)."""
    overlaps, same = [], []
    for ours, theirs in zip(mine, reference):
        ours, whole = ours[:top], theirs
        theirs = theirs[:top]
        if not theirs:
            overlaps.append(1.0 if not ours else 0.0)
            same.append(not ours)
            continue
        overlaps.append(len({i for i, _ in ours} & {i for i, _ in theirs}) / len(theirs))
        ok = len(ours) == len(theirs)
        for position, (point_id, _) in enumerate(ours if ok else []):
            score = theirs[position][1]
            tied = {i for i, s in whole if abs(s - score) <= TIE * max(1.0, abs(score))}
            ok = ok and point_id in tied
        same.append(ok)
    return statistics.mean(overlaps), sum(same) / len(same)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scaled", type=int, default=19_000, help="points in the scaled set (0: book only)")
    parser.add_argument("--rounds", type=int, default=5, help="times each question is asked (local mode: once)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        child(args)
        return

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="booktutor-local-search-") as work:
        work = Path(work)
        started = time.perf_counter()
        sets = prepare(work, args.scaled, args.seed)
        print(f"# data prepared in {time.perf_counter() - started:.0f} s (ingest + embedding the questions)", flush=True)
        report = {}
        for n, (name, data) in enumerate(sets):
            local_dir, edge_dir, hnsw_dir = (work / f"{kind}-{n}" for kind in ("local", "edge", "hnsw"))
            built_local = run("build-local", data, local_dir)
            opened = run("open-local", data, local_dir, args.rounds)
            built_edge = run("build-edge", data, edge_dir)
            edge = run("open-edge", data, edge_dir, args.rounds)
            built_hnsw = run("build-edge-hnsw", data, hnsw_dir)
            hnsw = run("open-edge", data, hnsw_dir, args.rounds)
            points = len(load(data)["points"]["ids"])
            report[name] = {
                "points": points,
                "local": {**built_local, **opened["local"]},
                "edge": {**built_edge, **edge},
                "edge+hnsw": {**built_hnsw, **hnsw},
            }
            print_set(name, report[name])
        report["persistence"] = persistence(work, sets[0][1])
    print_persistence(report["persistence"])
    print(f"\nload average before: {load_before}; after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        for entry in report.values():
            for engine in entry.values() if isinstance(entry, dict) else ():
                if isinstance(engine, dict):
                    engine.pop("rankings", None)
                    if "latency_ms" in engine:
                        engine["latency_ms"] = [round(x, 3) for x in engine["latency_ms"]]
        print(json.dumps(report))


def tie_broken(ours: list, theirs: list, depth: int) -> list:
    """The reference ranking `theirs` with each run of equal scores put in the order `ours` gives it.

    Qdrant defines no order among equal scores, so every such reordering is an answer it could give.
    """
    runs: list[list] = []
    for point_id, score in theirs:
        if runs and abs(score - runs[-1][-1][1]) <= TIE * max(1.0, abs(score)):
            runs[-1].append((point_id, score))
        else:
            runs.append([(point_id, score)])
    place = {point_id: rank for rank, (point_id, _) in enumerate(ours)}
    return [hit for run in runs for hit in sorted(run, key=lambda hit: place.get(hit[0], len(ours)))][:depth]


def rrf(rankings: list[list], limit: int) -> list[tuple[str, float]]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, (point_id, _) in enumerate(ranking):
            scores[point_id] = scores.get(point_id, 0.0) + 1.0 / (rank + RRF_K)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)[:limit]


def max_score_gap(mine: list[list], reference: list[list]) -> float:
    gap = 0.0
    for ours, theirs in zip(mine, reference):
        known = dict(theirs)
        gap = max([gap, *(abs(score - known[i]) for i, score in ours if i in known)])
    return gap


def fidelity(engine: dict, reference: dict) -> dict[str, float]:
    mine = engine["rankings"]
    found = {}
    for leg in ("dense", "sparse"):
        found[f"{leg}@10 same"] = agreement(mine[leg], reference[leg], LIMIT)[1]
        found[f"{leg}@24 same"] = agreement(mine[leg], reference[leg], PREFETCH)[1]
        found[f"{leg} max|ds|"] = max_score_gap(mine[leg], reference[leg])
    overlap, same = agreement(mine["hybrid"], reference["hybrid"], LIMIT)
    found["hybrid@10 overlap"] = overlap
    found["hybrid@10 same"] = same
    # The fused answer Qdrant would give had it broken the legs' ties the way this engine did.
    expected = [
        rrf([tie_broken(mine[leg][q], reference[leg][q], PREFETCH) for leg in ("dense", "sparse")], 2 * LIMIT)
        for q in range(len(mine["hybrid"]))
    ]
    found["hybrid@10 same, ties aside"] = agreement(mine["hybrid"], expected, LIMIT)[1]
    return found


def print_set(name: str, entry: dict) -> None:
    reference, hnsw = entry["local"]["rankings"], entry["edge+hnsw"]
    print(f"\n## {name}: {entry['points']} points, {len(reference['hybrid'])} questions")
    print("cost (RSS added once open and warm: anonymous = heap; file = mapped files, shared and reclaimable)")
    print(f"{'engine':<26} {'build s':>8} {'open s':>7} {'anon MB':>8} {'file MB':>8} {'p50 ms':>8} {'p95 ms':>8}")
    rows = [
        ("local mode", entry["local"], f"{entry['local']['build_s']:.1f}"),
        ("edge", entry["edge"], f"{entry['edge']['build_s']:.1f}"),
        ("edge, optimized (HNSW)", entry["edge+hnsw"], f"{hnsw['build_s'] + hnsw.get('optimize_s', 0):.1f}"),
    ]
    for label, engine, build in rows:
        rss, open_s = engine["rss_mb"], engine["open_s"]
        lat = engine["latency_ms"]
        print(
            f"{label:<26} {build:>8} {open_s:>7.2f} {rss['anon']:>8.0f} {rss['file']:>8.0f}"
            f" {statistics.median(lat):>8.2f} {pct(lat, 95):>8.2f}"
        )
    print("fidelity to local mode's own answers (share of questions ranked the same, equal scores in any order)")
    table = [(label, fidelity(engine, reference)) for label, engine, _ in rows]
    columns = list(table[0][1])
    print(f"{'engine':<26} " + " ".join(f"{c:>{max(len(c), 8)}}" for c in columns))
    for label, found in table:
        cells = [f"{found[c]:>{max(len(c), 8)}.{2 if 'max' in c else 3}{'e' if 'max' in c else 'f'}}" for c in columns]
        print(f"{label:<26} " + " ".join(cells))
    print(
        f"(edge segments: {entry['edge']['segments']}; after optimize {hnsw['segments']}, "
        f"{hnsw['indexed_vectors']} vectors indexed, optimize {hnsw.get('optimize_s', 0):.1f} s)"
    )


def persistence(work: Path, data: Path) -> dict:
    """Does a shard persist and reopen, and can a second process open it while one holds it?"""
    import qdrant_edge as qe

    folder = work / "persist"
    run("build-edge", data, folder)
    alone = run("try-open", None, folder)
    shard = qe.EdgeShard.load(str(folder))
    try:
        while_held = run("try-open", None, folder)
    finally:
        shard.close()
    after_close = run("try-open", None, folder)
    subprocess.run([sys.executable, __file__, "--step", "write-and-die", "--folder", str(folder)], check=False)
    after_crash = run("try-open", None, folder)
    return {
        "reopened by another process": alone,
        "second process while held": while_held,
        "after the holder closed": after_close,
        "after a writer died unflushed": after_crash,
    }


def print_persistence(found: dict) -> None:
    print("\n## edge persistence")
    for label, outcome in found.items():
        print(f"{label:<32} {json.dumps(outcome)}")


if __name__ == "__main__":
    main()
