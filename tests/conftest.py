"""Shared fixtures: a real Postgres database, the real book ingested once, a clean model environment."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import httpx

import psycopg
import pytest

pytest_plugins = ["tests.conftest_openai"]


def pytest_collection_modifyitems(session, config, items) -> None:
    """The wheel tests run last, and the pip work they wait for starts now, beside the rest of the suite
    (about a minute of one core that would otherwise be a minute of wall time)."""
    wheel_tests = [item for item in items if item.module.__name__ == "tests.test_wheel"]
    if not wheel_tests:
        return
    items[:] = [item for item in items if item not in wheel_tests] + wheel_tests
    import tempfile

    from tests.test_wheel import Install

    root = Path(tempfile.mkdtemp(prefix="booktutor-wheel-"))
    config.wheel_install = Install(root).start()
    config.add_cleanup(lambda: shutil.rmtree(root, ignore_errors=True))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "physical-ai-book"
EVAL_SET = SHARED / "eval" / "dev-questions.jsonl"
SAMPLE_BOOK = REPO / "examples" / "sample-book"
ASTRONOMY_BOOK = REPO / "eval" / "books" / "backyard-astronomy"
BICYCLE_BOOK = REPO / "eval" / "books" / "bicycle-care"
BOOKTUTOR = [sys.executable, "-m", "booktutor.server.cli"]

MODEL_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "BOOKTUTOR_MODEL",
    "BOOKTUTOR_ANSWER_MODEL",
    "BOOKTUTOR_REWRITE_MODEL",
    "BOOKTUTOR_TRANSLATE_MODEL",
    "BOOKTUTOR_PERSONALIZE_MODEL",
    "BOOKTUTOR_EMBEDDING_MODEL",
    "DATABASE_URL",
    "QDRANT_URL",
    "BOOKTUTOR_HOME",
    "LANGSMITH_TRACING",
    "LANGCHAIN_TRACING_V2",
)


def _clear_model_caches() -> None:
    from booktutor.agents import models

    models._openai_chat.cache_clear()


@pytest.fixture(autouse=True)
def offline_environment(monkeypatch) -> Iterator[None]:
    """Every test starts with no model, database or index configured, like a fresh machine."""
    for name in MODEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    _clear_model_caches()
    yield
    _clear_model_caches()


@pytest.fixture
def language_model(openai_server, monkeypatch):
    """Point every model role at the scripted OpenAI-compatible server."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("BOOKTUTOR_MODEL_RETRIES", "0")
    _clear_model_caches()
    return openai_server


# -- Postgres ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database on the test server (TEST_DATABASE_URL), dropped at the end of the session."""
    admin = os.getenv("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"booktutor_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.exit(f"The tests need PostgreSQL at TEST_DATABASE_URL={admin}: {exc}", returncode=2)
    yield admin.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- servers started as processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_readyz(
    port: int, server: subprocess.Popen, *, seconds: float = 120, output: Callable[[], str] = lambda: ""
) -> httpx.Response:
    """The first answer of a `booktutor serve` process's `/readyz`; fails with `output()` if the process
    ends or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        except httpx.TransportError:
            assert server.poll() is None and time.monotonic() < deadline, output()
            time.sleep(0.2)


# -- the book ----------------------------------------------------------------------------------------


def run_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 300, cwd: Path = REPO
):
    """Run `booktutor` in a new process, as a user would."""
    clean = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    return subprocess.run(
        [*BOOKTUTOR, *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def corpus_home(tmp_path_factory, database_url) -> Path:
    """A data folder with the physical-AI book ingested by the real CLI (done once per session)."""
    assert CORPUS.is_dir(), f"the test corpus is missing at {CORPUS}"
    home = tmp_path_factory.mktemp("corpus-home")
    result = run_cli("ingest", str(CORPUS), "--json", env={"BOOKTUTOR_HOME": str(home), "DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == report["files"] and not report["failed"], report
    return home


@pytest.fixture(scope="session")
def book_home(tmp_path_factory, corpus_home) -> Path:
    """A copy of `corpus_home` for this test process (one process at a time may open a local index folder)."""
    home = tmp_path_factory.mktemp("book-home")
    shutil.copytree(corpus_home / "qdrant", home / "qdrant")
    return home


@pytest.fixture(scope="session", autouse=True)
def close_indexes_at_the_end() -> Iterator[None]:
    """Close every index client before the interpreter shuts down, releasing local folders' locks."""
    yield
    from booktutor.tools.index import close_all

    close_all()


@pytest.fixture(scope="session")
def book_index(book_home):
    from booktutor.tools.index import open_book_index

    return open_book_index(path=book_home / "qdrant")


@pytest.fixture
def settings(request, book_home, database_url):
    from booktutor.server.settings import Settings

    # Settings read the model's variables when they are made: point them at the scripted server first.
    if "language_model" in request.fixturenames:
        request.getfixturevalue("language_model")
    return Settings(home=book_home, database_url=database_url)


@pytest.fixture
async def tutor(settings):
    from booktutor.server.tutor import open_tutor

    async with open_tutor(settings) as tutor:
        yield tutor


def _ingested(book: Path, home: Path, database_url: str):
    """`book` ingested into `home` by the real CLI, its index opened."""
    from booktutor.tools.index import open_book_index

    result = run_cli("ingest", str(book), "--json", env={"BOOKTUTOR_HOME": str(home), "DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    return open_book_index(path=home / "qdrant")


@pytest.fixture(scope="session")
def sample_book_index(tmp_path_factory, database_url):
    """The sample book ("Robots in Motion"): an unseen evaluation set's book."""
    return _ingested(SAMPLE_BOOK, tmp_path_factory.mktemp("sample-book-home"), database_url)


@pytest.fixture(scope="session")
def astronomy_book_index(tmp_path_factory, database_url):
    """"Under Dark Skies", the backyard-astronomy book written for the third unseen evaluation set."""
    return _ingested(ASTRONOMY_BOOK, tmp_path_factory.mktemp("astronomy-book-home"), database_url)


@pytest.fixture(scope="session")
def bicycle_book_index(tmp_path_factory, database_url):
    """"Spokes and Chains", a book on bicycle care written with its unseen set, before either was first run."""
    return _ingested(BICYCLE_BOOK, tmp_path_factory.mktemp("bicycle-book-home"), database_url)
