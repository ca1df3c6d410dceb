"""Ingestion into a real local index (Qdrant Edge): incremental, deterministic, and safe with bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BOOKTUTOR, CORPUS, MODEL_VARIABLES, REPO, SAMPLE_BOOK
from booktutor.tools.errors import IngestError
from booktutor.tools.index import BookIndex, close_book_index, open_book_index
from booktutor.tools.ingest import WRITE_BATCH, ingest_book


@pytest.fixture
def book(tmp_path) -> Path:
    copy = tmp_path / "docs"
    shutil.copytree(SAMPLE_BOOK, copy)
    return copy


@pytest.fixture
def index(tmp_path) -> BookIndex:
    return open_book_index(path=tmp_path / "qdrant", collection="sample")


@pytest.fixture(scope="module")
def ingested_once(tmp_path_factory) -> Path:
    """The sample book ingested once for this module, its folder closed so that tests can copy it."""
    folder = tmp_path_factory.mktemp("sample-index") / "qdrant"
    index = open_book_index(path=folder, collection="sample")
    ingest_book(SAMPLE_BOOK, index)
    close_book_index(index)
    return folder


@pytest.fixture
def ingested(tmp_path, ingested_once) -> BookIndex:
    """An index that already holds `book` as it is before a test changes it (a copy of `ingested_once`)."""
    shutil.copytree(ingested_once, tmp_path / "qdrant")
    return open_book_index(path=tmp_path / "qdrant", collection="sample")


def point_ids(index: BookIndex) -> set[str]:
    points, _ = index.client.scroll(index.collection, limit=10_000, with_vectors=False)
    return {str(p.id) for p in points}


def test_ingest_indexes_every_page_with_citation_metadata(book, index):
    report = ingest_book(book, index)

    pages = sorted(p.relative_to(book).as_posix() for p in book.rglob("*.md*"))
    assert report.files == len(pages) and report.added == len(pages) and not report.failed
    assert index.count() == report.chunks_written > len(pages)
    assert set(index.manifest()) == set(pages)
    hit = index.search("How do I compute the wheel speeds of a differential drive robot?", k=1)[0]
    assert hit["path"] == "02-motion/02-differential-drive.mdx"
    assert hit["url"].startswith("/docs/motion/differential-drive")
    assert hit["title"] and hit["heading"]


def test_reingest_skips_unchanged_updates_changed_and_removes_deleted(book, ingested):
    index = ingested
    before = point_ids(index)

    again = ingest_book(book, index)
    assert (again.unchanged, again.added, again.updated, again.chunks_written) == (again.files, 0, 0, 0)
    assert point_ids(index) == before

    pid = book / "02-motion" / "03-pid-control.md"
    pid.write_text(pid.read_text() + "\n\n## Tuning by ear\n\nA squeaking wheel means the gain is far too high.\n")
    (book / "03-software" / "02-putting-it-together.md").unlink()
    changed = ingest_book(book, index)

    assert (changed.updated, changed.removed, changed.added) == (1, 1, 0)
    assert "03-software/02-putting-it-together.md" not in index.manifest()
    assert index.search("squeaking wheel gain", k=1)[0]["path"] == "02-motion/03-pid-control.md"
    paths = {p["path"] for p in index.search("putting it together", k=20)}
    assert "03-software/02-putting-it-together.md" not in paths


def test_a_new_base_url_rewrites_every_page_with_its_new_urls(book, ingested):
    index = ingested

    moved = ingest_book(book, index, base_url="/book")

    assert moved.updated == moved.files and moved.unchanged == 0
    urls = {p["url"] for p in index.search("differential drive wheel speeds", k=5)}
    assert urls and all(url.startswith("/book/") for url in urls)
    assert ingest_book(book, index, base_url="/book").unchanged == moved.files


def test_a_renamed_module_rewrites_only_that_module_and_shows_in_citations(book, ingested):
    index = ingested
    category = book / "02-motion" / "_category_.json"
    category.write_text('{"label": "Wheels, Motors and Control", "position": 3}')

    report = ingest_book(book, index)

    motion = [p for p in book.rglob("*.md*") if p.relative_to(book).parts[0] == "02-motion"]
    assert (report.updated, report.unchanged) == (len(motion), report.files - len(motion))
    points, _ = index.client.scroll(index.collection, limit=10_000, with_vectors=False)
    labels = {p.payload["metadata"]["path"]: p.payload["metadata"]["module_label"] for p in points}
    assert labels["02-motion/03-pid-control.md"] == "Wheels, Motors and Control"
    assert labels["01-foundations/01-what-is-a-mobile-robot.md"] == "Foundations"


def test_generated_index_pages_are_indexed_and_follow_their_category(book, index):
    category = book / "02-motion" / "_category_.json"
    category.write_text(
        '{"label": "Motion and Control", "link": {"type": "generated-index", '
        '"description": "Make a robot drive straight: motors, encoders and feedback loops."}}'
    )
    (book / "03-software" / "_category_.json").write_text("{not json")

    report = ingest_book(book, index)

    assert [f["path"] for f in report.failed] == ["03-software/_category_.json"]
    hit = index.search("Which chapter makes a robot drive straight with feedback loops?", k=1)[0]
    assert (hit["path"], hit["url"].split("#")[0]) == ("02-motion/_category_.json", "/docs/category/motion-and-control")
    assert "PID" in index.page_passages("/docs/category/motion-and-control")[0]["text"]

    category.write_text('{"label": "Motion and Control"}')
    again = ingest_book(book, index)
    assert again.removed == 1 and "02-motion/_category_.json" not in index.manifest()


def test_chunk_ids_are_deterministic_across_indexes(book, index, ingested_once):
    ingest_book(book, index)  # another folder, another copy of the book, another process's index
    earlier = open_book_index(path=ingested_once, collection="sample")
    try:
        assert point_ids(index) == point_ids(earlier)
    finally:
        close_book_index(earlier)


def test_one_bad_file_is_reported_and_the_rest_ingested(book, index):
    (book / "broken.md").write_text("---\ntitle: [unclosed\n---\n\nText.\n")
    (book / "binary.md").write_bytes(b"\x00\x01\x02 not text")

    report = ingest_book(book, index)

    failed = {f["path"]: f["reason"] for f in report.failed}
    assert set(failed) == {"broken.md", "binary.md"}
    assert "frontmatter" in failed["broken.md"]
    assert report.added == report.files - 2
    assert "broken.md" not in index.manifest()


def test_a_file_that_breaks_later_keeps_its_previous_chunks(book, ingested):
    index = ingested
    page = book / "01-foundations" / "01-what-is-a-mobile-robot.md"
    page.write_bytes(b"\xff\xfe not utf-8")

    report = ingest_book(book, index)

    assert [f["path"] for f in report.failed] == ["01-foundations/01-what-is-a-mobile-robot.md"]
    assert "01-foundations/01-what-is-a-mobile-robot.md" in index.manifest()


@pytest.mark.parametrize("make", ["missing", "file", "empty"])
def test_unusable_docs_folders_are_refused_before_the_index_is_touched(tmp_path, ingested, make):
    index = ingested
    count = index.count()
    target = tmp_path / "target"
    if make == "file":
        target.write_text("# not a folder")
    elif make == "empty":
        (target / "img").mkdir(parents=True)
        (target / "img" / "logo.png").write_bytes(b"\x89PNG")

    with pytest.raises(IngestError) as raised:
        ingest_book(target, index)

    assert raised.value.code in {"docs_not_found", "docs_not_a_folder", "docs_empty"}
    assert str(target) in raised.value.message
    assert index.count() == count


def test_a_file_left_half_rewritten_is_rewritten_by_the_next_ingest(book, ingested, tmp_path):
    from booktutor.tools.docusaurus.categories import module_label, read_categories
    from booktutor.tools.docusaurus.pages import read_page
    from booktutor.tools.ingest import fingerprint, page_records

    index = ingested
    page = book / "02-motion" / "03-pid-control.md"
    page.write_text(page.read_text().replace("derivative", "rate-of-change"))
    # A run stopped after writing the new version but before deleting the old one:
    new = read_page(book, page)
    module = module_label(read_categories(book).categories, new.path)
    stamp = fingerprint(new.content_hash, base_url="/docs", module=module)
    index.write(page_records(new, file_hash=stamp, module=module), replacing=set())
    assert index.manifest()["02-motion/03-pid-control.md"] == ""

    report = ingest_book(book, index)

    assert report.updated == 1
    fresh = open_book_index(path=tmp_path / "fresh", collection="sample")
    ingest_book(book, fresh)
    assert point_ids(index) == point_ids(fresh)


# Two modules of the corpus: more than one write batch, so files are finished well before the end.
KILLED_MODULES = ("01-ros2", "02-simulation")


# `booktutor ingest`, with a line on stdout each time a batch of chunks is in the index. `BookIndex.write`
# stores each file's first chunk after all its others and the manifest counts a file by its first
# chunk, so after the first batch at least one file is finished. Nothing outside the process can read
# the folder while the ingest holds it, hence the line.
REPORTING_INGEST = """
import sys
from booktutor.tools.index import BookIndex
from booktutor.server.cli import main

written = BookIndex.write

def write(self, records, **kwargs):
    written(self, records, **kwargs)
    print("written", flush=True)

BookIndex.write = write
sys.argv[0] = "booktutor"
main()
"""


def test_a_killed_ingest_leaves_a_usable_index_and_the_next_run_completes(tmp_path, database_url, book_index):
    everything, _ = book_index.client.scroll(book_index.collection, limit=100_000, with_payload=["metadata.path"])
    expected = {str(p.id) for p in everything if p.payload["metadata"]["path"].startswith(tuple(f"{m}/" for m in KILLED_MODULES))}
    assert len(expected) > WRITE_BATCH + 64, "the docs must span more than one write batch"
    docs = tmp_path / "docs"
    for module in KILLED_MODULES:
        shutil.copytree(CORPUS / module, docs / module)
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES},
           "BOOKTUTOR_HOME": str(home), "DATABASE_URL": database_url}
    ingest = [*BOOKTUTOR, "ingest", str(docs), "--json"]

    first = subprocess.Popen(
        [sys.executable, "-c", REPORTING_INGEST, "ingest", str(docs), "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        # Killed as soon as a batch is in: mid-ingest, usually while the next batch is being embedded.
        assert first.stdout.readline().strip() == "written", "the ingest ended before writing a batch"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, "the ingest ended before it was killed"

    partial = open_book_index(path=home / "qdrant")
    done_before = {path: file for path, file in partial.files().items() if file.file_hash}
    assert done_before and len(done_before) < len(list(docs.rglob("*.md*")))
    for path, file in done_before.items():  # what was written is searchable
        hits = partial.search(file.title, k=3, page=path)
        assert hits and {hit["path"] for hit in hits} == {path}
    close_book_index(partial)

    second = subprocess.run(ingest, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["unchanged"] == len(done_before)
    assert report["added"] + report["updated"] + report["unchanged"] == report["files"] and not report["failed"]
    assert point_ids(open_book_index(path=home / "qdrant")) == expected
