"""The CLI answers at once: help, argument errors and input checks come before anything heavy.

Each case runs `booktutor` in a fresh process and reads which modules that process had imported when
it exited, and whether it started a database. What is measured is behaviour (the search stack, the
web stack and PostgreSQL are never reached), not time, so the tests hold on a busy machine too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import MODEL_VARIABLES, REPO, SAMPLE_BOOK, run_cli

# Top-level packages whose import costs seconds (or starts threads): none of them is needed to read
# arguments or to refuse bad input.
HEAVY = {
    "alembic", "asyncpg", "fastapi", "langchain", "langchain_core", "langchain_openai", "langchain_qdrant",
    "langgraph", "numpy", "onnxruntime", "pgserver", "psycopg", "qdrant_client", "qdrant_edge", "sqlalchemy",
    "starlette", "tokenizers", "uvicorn",
}

# Runs the real entry point with the given arguments and, when the process exits however it exits,
# prints the heavy modules it had imported as the last line of stderr.
PROBE = f"""
import atexit, json, sys
heavy = {sorted(HEAVY)!r}
atexit.register(lambda: print("HEAVY " + json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set(heavy))), file=sys.stderr))
sys.argv = ["booktutor", *sys.argv[1:]]
from booktutor.server.cli import main
main()
"""


def run_probed(*args: str, home) -> tuple[subprocess.CompletedProcess, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
    # No DATABASE_URL: a command that went on would start the embedded PostgreSQL in `home`.
    env["BOOKTUTOR_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    last = result.stderr.rstrip().splitlines()[-1]
    assert last.startswith("HEAVY "), result.stderr
    return result, json.loads(last.removeprefix("HEAVY "))


def test_help_imports_nothing_heavy(tmp_path):
    result, heavy = run_probed("--help", home=tmp_path / "home")

    assert result.returncode == 0
    assert "ask" in result.stdout and "serve" in result.stdout
    assert heavy == []


@pytest.fixture
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def refusals(tmp_path, busy_port):
    empty_folder = tmp_path / "no-markdown"
    empty_folder.mkdir()
    (empty_folder / "notes.txt").write_text("not markdown")
    a_file = tmp_path / "file.md"
    a_file.write_text("# A page, not a folder\n")
    return [
        (["ask", ""], "empty_message"),
        (["ask", "   "], "empty_message"),
        (["ask", "why " * 3000], "message_too_long"),
        (["ask", "Explain this", "--selected-text", "x" * 9000], "selection_too_long"),
        (["ask", "What is a topic?", "--language", "xx"], "unsupported_language"),
        (["ask", "What is a topic?", "--json", "--language", "xx"], "unsupported_language"),
        (["chat", "--language", "xx"], "unsupported_language"),
        (["ingest", str(tmp_path / "missing" / "docs")], "docs_not_found"),
        (["ingest", str(a_file)], "docs_not_a_folder"),
        (["ingest", str(empty_folder)], "docs_empty"),
        (["ingest", str(empty_folder), "--json"], "docs_empty"),
        (["eval", str(tmp_path / "questions.jsonl"), "--k", "0"], "--k"),
        (["eval", str(tmp_path / "questions.jsonl")], "eval_file_not_found"),
        (["eval", str(a_file), "--json"], "eval_file_invalid"),
        (["serve", "--port", "not-a-number"], "--port"),
        (["serve", "--port", str(busy_port)], "port_in_use"),
        (["no-such-command"], "No such command"),
    ]


def test_bad_input_is_refused_before_anything_heavy_is_imported_or_started(tmp_path, busy_port):
    home = tmp_path / "home"
    for args, code in refusals(tmp_path, busy_port):
        result, heavy = run_probed(*args, home=home)

        output = result.stdout + result.stderr
        assert result.returncode != 0, args
        assert code in output, (args, output)
        assert "Traceback" not in output, (args, output)
        assert heavy == [], (args[:3], heavy)
    # Nothing was written: no database was started, no index opened.
    assert not home.exists()


def test_a_refused_question_in_json_mode_is_one_json_error(tmp_path):
    result, _ = run_probed("ask", "", "--json", home=tmp_path / "home")

    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "empty_message"


# -- a DATABASE_URL that cannot work is reported before long work starts ------------------------------


def missing_database(database_url: str) -> tuple[str, str]:
    """A URL on the real test server naming a database that does not exist, and that name."""
    name = f"booktutor_missing_{uuid.uuid4().hex[:8]}"
    return urlunsplit(urlsplit(database_url)._replace(path=f"/{name}")), name


@pytest.mark.parametrize("command", [["ingest", str(SAMPLE_BOOK)], ["ask", "What is a PID controller?"], ["migrate"]])
def test_a_database_that_does_not_exist_is_named_with_the_fix(tmp_path, database_url, command):
    url, name = missing_database(database_url)
    home = tmp_path / "home"

    result = run_cli(*command, env={"BOOKTUTOR_HOME": str(home), "DATABASE_URL": url}, timeout=120)

    assert result.returncode == 1
    assert f"error (database_not_found): The database '{name}'" in " ".join(result.stderr.split())
    assert "createdb" in result.stderr and name in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # The ingest stopped before it wrote the index.
    assert not (home / "qdrant").exists()


def test_serve_with_a_database_that_does_not_exist_exits_with_the_fix(tmp_path, database_url):
    url, name = missing_database(database_url)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = run_cli("serve", "--port", str(port), env={"BOOKTUTOR_HOME": str(tmp_path), "DATABASE_URL": url}, timeout=120)

    assert result.returncode == 1
    assert "error (database_not_found)" in result.stderr and "createdb" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_serve_on_a_port_in_use_says_so_at_once(tmp_path, busy_port, database_url):
    result = run_cli(
        "serve", "--port", str(busy_port), env={"BOOKTUTOR_HOME": str(tmp_path), "DATABASE_URL": database_url}, timeout=120
    )

    assert result.returncode == 1
    assert f"error (port_in_use): Port {busy_port} on 127.0.0.1 is already in use" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stdout + result.stderr
