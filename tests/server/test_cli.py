"""The `booktutor` command as a user runs it, on real Postgres and a real index.

A command runs in a process of its own where the process is what is tested: exit codes of refused
input, a thread continued by a new process, `serve` and its signals, the zero-configuration start.
What a command prints and does otherwise is tested in this process (click's runner parses the real
arguments and keeps the exit code), which spares loading the model and the index again for each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EVAL_SET, REPO, SAMPLE_BOOK, run_cli

TOPICS = "How do ROS 2 nodes exchange messages through topics?"


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, corpus_home, database_url) -> dict[str, str]:
    """A data folder of its own (a copy of the ingested corpus) so CLI processes can lock it."""
    home = tmp_path_factory.mktemp("cli-home")
    shutil.copytree(corpus_home / "qdrant", home / "qdrant")
    return {"BOOKTUTOR_HOME": str(home), "DATABASE_URL": database_url}


@pytest.fixture
def booktutor(book_home, database_url):
    """Run a command in this process, on this process's copy of the book (or on `home`)."""
    from typer.testing import CliRunner

    from booktutor.server.cli import app
    from booktutor.server.settings import get_settings

    def invoke(*args: str, input: str | None = None, home: Path = book_home):
        get_settings.cache_clear()  # settings from this call's environment
        env = {"BOOKTUTOR_HOME": str(home), "DATABASE_URL": database_url}
        return CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def ask_json(env, *args: str) -> dict:
    result = run_cli("ask", *args, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def assert_clean_failure(result, code: str) -> None:
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert code in output
    assert "Traceback" not in output


def test_ask_cites_the_chapter_and_a_new_process_continues_the_thread(cli_env):
    first = ask_json(cli_env, TOPICS)

    assert "01-ros2/02-nodes-topics.md" in [c["path"] for c in first["citations"]]
    assert first["model"] == "offline-extractive"
    assert {"answer", "citations", "thread_id", "model"} <= set(first)
    for citation in first["citations"]:
        assert {"n", "path", "title", "heading", "url"} <= set(citation)

    second = ask_json(cli_env, "and how is that different from a service?", "--thread", first["thread_id"])

    assert second["thread_id"] == first["thread_id"]
    assert second["turn"] == "follow_up"
    assert second["sources"][0]["path"] == "01-ros2/03-services-actions.md"
    assert second["citations"]


def test_ask_streams_text_with_sources_and_thread(booktutor):
    result = booktutor("ask", "What is Gazebo used for?")

    assert result.exit_code == 0, result.output
    assert "Sources" in result.stdout and "02-simulation/" in result.stdout
    assert "Offline answer" in result.stdout
    assert "thread:" in result.stderr


def test_ask_about_a_selection_on_a_page(booktutor):
    result = booktutor(
        "ask",
        "Explain this",
        "--selected-text",
        "Domain randomization varies simulation parameters such as lighting, textures, friction and masses",
        "--page",
        "03-isaac/05-sim-to-real.md",
        "--json",
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["answer"].startswith("About the selected passage")
    assert answer["sources"][0]["path"] == "03-isaac/05-sim-to-real.md"


def test_translation_without_a_model_fails_clearly(booktutor):
    result = booktutor("ask", TOPICS, "--language", "ur", "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"]["code"] == "model_required"
    assert payload["answer"]  # the English answer is still there


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["ask", ""], "empty_message"),
        (["ask", "why " * 3000], "message_too_long"),
        (["ask", TOPICS, "--thread", "does-not-exist"], "thread_not_found"),
        (["ask", TOPICS, "--language", "xx"], "unsupported_language"),
        (["ingest", "/nonexistent/docs"], "docs_not_found"),
        (["eval", "/nonexistent/questions.jsonl"], "eval_file_not_found"),
    ],
)
def test_bad_input_gets_a_message_and_a_non_zero_exit(cli_env, args, code):
    assert_clean_failure(run_cli(*args, env=cli_env), code)


def test_an_unknown_thread_gets_command_line_advice(cli_env):
    result = run_cli("ask", TOPICS, "--thread", "does-not-exist", env=cli_env)
    assert_clean_failure(result, "thread_not_found")
    assert "Leave out --thread" in result.stderr


def test_asking_before_anything_is_ingested_says_what_to_do(tmp_path, database_url):
    env = {"BOOKTUTOR_HOME": str(tmp_path / "empty-home"), "DATABASE_URL": database_url}
    result = run_cli("ask", TOPICS, env=env)
    assert_clean_failure(result, "index_empty")
    assert "booktutor ingest" in result.stderr


def test_ingest_of_a_folder_without_markdown_is_refused(cli_env, tmp_path):
    (tmp_path / "notes.txt").write_text("not markdown")
    assert_clean_failure(run_cli("ingest", str(tmp_path), env=cli_env), "docs_empty")


def test_ingest_warns_about_a_bad_file_and_counts_it(booktutor, tmp_path):
    from booktutor.tools.index import close_book_index, open_book_index

    docs = tmp_path / "docs"
    shutil.copytree(SAMPLE_BOOK, docs)
    (docs / "broken.mdx").write_text("---\ntitle: 'unterminated\n---\n# Broken\n")
    home = tmp_path / "home"

    result = booktutor("ingest", str(docs), home=home)

    assert result.exit_code == 0, result.output
    assert "1 failed" in result.stdout
    assert "skipped broken.mdx" in result.stderr and "frontmatter" in result.stderr
    again = booktutor("ingest", str(docs), "--json", home=home)
    report = json.loads(again.stdout)
    assert report["unchanged"] == report["files"] - 1 and report["chunks_written"] == 0
    close_book_index(open_book_index(path=home / "qdrant"))


def test_eval_reports_retrieval_and_answers_per_kind(booktutor):
    dev_answers = REPO / "eval" / "dev-answers.jsonl"
    result = booktutor("eval", str(dev_answers), "--k", "5", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["overall"]["recall"] >= 0.85
    assert set(report["by_kind"]) == {"conceptual", "factual", "follow_up", "howto", "multi_page", "paraphrase", "selection"}
    assert report["answers"]["key_terms"] >= 0.5 and report["answers"]["off_topic_declined"] >= 0.9
    assert report["answers"]["uncovered"] == 24 and report["answers"]["uncovered_declined"] is not None
    answers = report["answers"]  # the two kinds together, as the targets count them
    together = answers["off_topic"] * answers["off_topic_declined"] + answers["uncovered"] * answers["uncovered_declined"]
    assert answers["not_covered_declined"] == pytest.approx(together / (answers["off_topic"] + answers["uncovered"]))
    table = booktutor("eval", str(EVAL_SET), str(dev_answers), "--no-answers")
    assert "recall@5" in table.stdout and "MRR" in table.stdout and "paraphrase" in table.stdout
    assert "dev-questions.jsonl" in table.stdout and "dev-answers.jsonl" in table.stdout


def test_chat_keeps_the_conversation_between_turns(booktutor):
    result = booktutor("chat", input=f"{TOPICS}\nand how is that different from a service?\n/quit\n")

    assert result.exit_code == 0, result.output
    assert result.stdout.count("Sources") == 2
    # The follow-up ("that") is answered, with its sources, on the same thread.
    follow_up = result.stdout.split("you> ")[2]
    assert "Sources" in follow_up and "[" in follow_up


def test_migrate_is_idempotent(booktutor):
    for _ in range(2):
        result = booktutor("migrate")
        assert result.exit_code == 0, result.output
        assert "up to date" in result.stdout


def test_zero_configuration_uses_embedded_postgres_and_local_qdrant(tmp_path):
    """The README's first command: no DATABASE_URL, no QDRANT_URL, no BOOKTUTOR_HOME, no model."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {"HOME": str(tmp_path / "user-home"), "PYTHONPATH": str(REPO)}

    def cli(*args: str):
        return run_cli(*args, env=env, cwd=workdir)

    ingest = cli("ingest", str(SAMPLE_BOOK))
    assert ingest.returncode == 0, ingest.stderr
    first = json.loads(cli("ask", "How does a PID controller use the derivative term?", "--json").stdout)
    assert first["sources"][0]["path"] == "02-motion/03-pid-control.md" and first["citations"]
    second = json.loads(cli("ask", "and what does the integral term do?", "--thread", first["thread_id"], "--json").stdout)
    assert second["thread_id"] == first["thread_id"]
    # The data lives in ./.booktutor of the working directory, not in the user's home.
    assert {p.name for p in (workdir / ".booktutor").iterdir()} >= {"postgres", "qdrant"}
    home_dirs = {p.name for p in (tmp_path / "user-home").rglob("*") if p.is_dir()}
    assert not home_dirs & {"qdrant", "postgres", ".booktutor"}, home_dirs


def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("ingest", "ask", "chat", "eval", "serve", "migrate"):
        assert command in result.stdout


def test_serve_answers_until_stopped(cli_env):
    import signal
    import subprocess

    import httpx

    from tests.conftest import BOOKTUTOR, MODEL_VARIABLES, REPO, free_port, wait_for_readyz

    port = free_port()
    env = {**{k: v for k, v in __import__("os").environ.items() if k not in MODEL_VARIABLES}, **cli_env}
    server = subprocess.Popen([*BOOKTUTOR, "serve", "--port", str(port)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = wait_for_readyz(port, server, seconds=60, output=lambda: server.stdout.read().decode())
        assert ready.status_code == 200
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat", json={"message": TOPICS}, timeout=30)
        assert reply.status_code == 200 and "event: done" in reply.text
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0].decode()
    # Ctrl-C ends the server the conventional way (exit 0 or 130), after a graceful shutdown.
    assert server.returncode in (0, 130) and "Traceback" not in output


def test_serve_with_an_unreachable_database_says_so_and_exits(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"BOOKTUTOR_HOME": str(tmp_path), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    assert_clean_failure(run_cli("serve", "--port", str(port), env=env), "database_unavailable")
