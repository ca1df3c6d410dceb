"""The `booktutor` command line: ingest, ask, chat, eval, serve, migrate.

Argument errors and input checks come first and import nothing heavy: the search stack (LangGraph,
LangChain, Qdrant, ONNX Runtime), SQLAlchemy, FastAPI and the database are reached for only by a
command that has passed its checks, so `--help` and a refused question answer at once.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from booktutor.server.settings import Settings, get_settings
from booktutor.tools.docs_folder import check_docs_folder
from booktutor.tools.errors import BooktutorError
from booktutor.tools.eval_questions import load_questions
from booktutor.tools.languages import language_info

app = typer.Typer(
    name="booktutor",
    help="A tutor for your online textbook: ingest a Docusaurus book, then ask it questions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


# What a command-line user can do about an error; the error itself says only what is wrong.
ADVICE = {"thread_not_found": "Leave out --thread to start a new conversation."}


def _fail(error: BooktutorError, *, as_json: bool = False) -> None:
    message = " ".join(filter(None, (error.message, ADVICE.get(error.code))))
    if as_json:
        print(json.dumps({"error": {"code": error.code, "message": message}}))
    else:
        err.print(f"[bold red]error[/] ({error.code}): {message}", highlight=False)
    raise typer.Exit(1)


def _run(coro, *, as_json: bool = False):
    """Run a command's coroutine; booktutor errors become a message and exit code 1, never a traceback."""
    try:
        return asyncio.run(coro)
    except BooktutorError as error:
        _fail(error, as_json=as_json)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130)


# -- ingest ------------------------------------------------------------------------------------------


@app.command()
def ingest(
    path: Path = typer.Argument(..., help="The book's docs folder (Markdown and MDX files)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Drop the index and ingest everything again."),
    base_url: Optional[str] = typer.Option(None, help="URL path the docs are served under [BOOKTUTOR_BOOK_URL]."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Index a Docusaurus docs folder; unchanged files are skipped, deleted ones removed."""
    try:
        files = check_docs_folder(path)
    except BooktutorError as error:
        _fail(error, as_json=as_json)
    settings = get_settings()
    report = _run(
        _ingest(settings, path, files=len(files), rebuild=rebuild, base_url=base_url or settings.book_url, quiet=as_json),
        as_json=as_json,
    )
    if as_json:
        print(json.dumps(report))
    else:
        out.print(
            f"[bold green]Ingested[/] {report['files']} files from {report['root']} in {report['seconds']:.1f}s: "
            f"{report['added']} added, {report['updated']} updated, {report['unchanged']} unchanged, "
            f"{report['removed']} removed, {len(report['failed'])} failed; {report['chunks_written']} chunks written.",
            highlight=False,
        )
        for failure in report["failed"]:
            err.print(f"[yellow]warning[/]: skipped {failure['path']}: {failure['reason']}", highlight=False)
    if report["failed"] and len(report["failed"]) == report["files"]:
        raise typer.Exit(1)


async def _ingest(
    settings: Settings, path: Path, *, files: int, rebuild: bool, base_url: str, quiet: bool
) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from booktutor.server import crud
    from booktutor.server.db import create_engine, database_url, run_migrations, session_factory
    from booktutor.tools.ingest import ingest_book

    # The database is reached first: a wrong DATABASE_URL is reported now, not after the whole ingest.
    url = await asyncio.to_thread(database_url, settings)
    await asyncio.to_thread(run_migrations, url)
    index = _open_index(settings)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("Ingesting", total=files)
        report = await asyncio.to_thread(
            ingest_book,
            path,
            index,
            base_url=base_url,
            rebuild=rebuild,
            on_file=lambda name: progress.update(task, advance=1, description=f"Ingesting {name[-40:]}"),
        )
    summary = report.as_dict()
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            await crud.record_ingest(session, collection=settings.collection, report=summary)
    finally:
        await engine.dispose()
    return summary


def _open_index(settings: Settings):
    from booktutor.graphs.context import open_index

    return open_index(settings.context())


# -- ask and chat ------------------------------------------------------------------------------------


@app.command()
def ask(
    question: str = typer.Argument(..., help="Your question about the book."),
    thread: Optional[str] = typer.Option(None, "--thread", help="Continue this conversation (its id)."),
    selected_text: Optional[str] = typer.Option(None, "--selected-text", help="A passage to explain or ask about."),
    page: Optional[str] = typer.Option(None, "--page", help="Doc path or URL of the page you are reading."),
    language: Optional[str] = typer.Option(None, "--language", help="Answer in this language, e.g. 'ur'."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of streaming text."),
) -> None:
    """Ask one question; prints the answer with its sources and the thread id."""
    from booktutor.graphs.turn import TurnInput

    settings = get_settings()
    turn = TurnInput(message=question, selected_text=selected_text, page=page, language=language)
    result = _run(_ask(settings, turn, thread=thread, stream=not as_json), as_json=as_json)
    if as_json:
        print(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        _print_sources(result)
        err.print(f"[dim]thread: {result.thread_id} · model: {result.model}[/]", highlight=False)
    if result.error:
        if not as_json:
            err.print(f"[bold red]error[/] ({result.error['code']}): {result.error['message']}", highlight=False)
        raise typer.Exit(1)


async def _ask(settings: Settings, turn, *, stream: bool, thread: str | None):
    # Checked before the tutor is imported and Postgres starts, so bad input fails at once and writes nothing.
    turn.validate(settings)
    from booktutor.server.tutor import open_tutor

    async with open_tutor(settings) as tutor:
        return await _turn(tutor, turn, stream=stream, thread=thread)


async def _turn(tutor, turn, *, stream: bool, thread: str | None):
    def on_token(token: str) -> None:
        out.print(token, end="", markup=False, highlight=False, soft_wrap=True)

    result = await tutor.run_turn(turn, thread_id=thread, on_token=on_token if stream else None)
    if stream:
        out.print()
    return result


def _print_sources(result) -> None:
    if result.citations:
        out.print("\n[bold]Sources[/]")
        for c in result.citations:
            heading = f" — {c['heading']}" if c["heading"] and c["heading"] != c["title"] else ""
            out.print(f"  [{c['n']}] {c['title']}{heading}  ({c['path']})  {c['url']}", markup=False, highlight=False)


@app.command()
def chat(
    thread: Optional[str] = typer.Option(None, "--thread", help="Continue this conversation (its id)."),
    language: Optional[str] = typer.Option(None, "--language", help="Answer in this language, e.g. 'ur'."),
) -> None:
    """Talk with the tutor in the terminal. /new starts a new thread, /quit (or Ctrl-D) leaves."""
    if language:
        try:
            language_info(language)
        except BooktutorError as error:
            _fail(error)
    settings = get_settings()
    _run(_chat(settings, thread=thread, language=language))


async def _chat(settings: Settings, *, thread: str | None, language: str | None) -> None:
    from booktutor.graphs.turn import TurnInput
    from booktutor.server.tutor import open_tutor

    async with open_tutor(settings) as tutor:
        if thread:
            await tutor.ensure_thread(thread_id=thread, title="")
            for message in await tutor.history(thread):
                out.print(f"[bold]{'you' if message['role'] == 'user' else 'tutor'}>[/] {message['content']}", highlight=False)
        err.print("[dim]Ask about the book. /new starts over, /quit leaves.[/]")
        while True:
            try:
                question = await asyncio.to_thread(input, "you> ")
            except EOFError:
                out.print()
                return
            question = question.strip()
            if question in ("/quit", "/exit"):
                return
            if question == "/new":
                thread = None
                err.print("[dim]new conversation[/]")
                continue
            if not question:
                continue
            out.print("[bold]tutor>[/] ", end="")
            try:
                result = await _turn(tutor, TurnInput(message=question, language=language), stream=True, thread=thread)
            except BooktutorError as error:
                err.print(f"[bold red]error[/] ({error.code}): {error.message}", highlight=False)
                continue
            thread = result.thread_id
            _print_sources(result)
            if result.error:
                err.print(f"[bold red]error[/] ({result.error['code']}): {result.error['message']}", highlight=False)


# -- eval --------------------------------------------------------------------------------------------


@app.command("eval")
def evaluate(
    files: list[Path] = typer.Argument(
        ..., help="JSONL questions with expected_sources (see shared/eval and eval/); several are reported side by side."
    ),
    k: int = typer.Option(5, "--k", min=1, max=50, help="Cut-off for recall@k."),
    answers: bool = typer.Option(True, "--answers/--no-answers", help="Also answer each question and score the answer."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Measure retrieval (recall@k, MRR) and answers (reference key terms found, declines right and wrong)."""
    # A missing or malformed file is refused before the index and the embedding model load.
    try:
        for file in files:
            load_questions(file)
    except BooktutorError as error:
        _fail(error, as_json=as_json)
    from booktutor.agents.models import rewriter
    from booktutor.graphs.nodes import evaluation_answerer
    from booktutor.tools.evaluation import evaluate_file

    settings = get_settings()

    async def run():
        index = await asyncio.to_thread(_open_index, settings)
        # The rewrite and answer models the chat uses, so the figures are the chat's.
        rewrite = await asyncio.to_thread(rewriter)
        answerer = evaluation_answerer(settings.context(), index) if answers else None
        return [await evaluate_file(file, index, k=k, rewriter=rewrite, answerer=answerer) for file in files]

    reports = _run(run(), as_json=as_json)
    if as_json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports))
        return
    from rich.table import Table

    def percent(value) -> str:
        return "-" if value is None else f"{100 * value:.0f} %"

    table = Table(title=f"Evaluation (k={k})")
    table.add_column("figure", justify="left")
    for file in files:
        table.add_column(file.name, justify="right")
    rows = [
        ("questions (with sources)", lambda r: str(r["overall"]["questions"])),
        (f"recall@{k}", lambda r: f"{r['overall']['recall']:.3f}"),
        ("MRR", lambda r: f"{r['overall']['mrr']:.3f}"),
    ]
    if answers:
        rows += [
            ("key terms found (mean)", lambda r: percent(r["answers"]["key_terms"])),
            ("answers with half or more", lambda r: percent(r["answers"]["half_or_more"])),
            ("answerable declined (wrong)", lambda r: percent(r["answers"]["answerable_declined"])),
            ("off-topic declined (right)", lambda r: percent(r["answers"]["off_topic_declined"])),
            ("uncovered declined (right)", lambda r: percent(r["answers"]["uncovered_declined"])),
            ("off-topic and uncovered declined", lambda r: percent(r["answers"]["not_covered_declined"])),
        ]
    for name, cell in rows:
        table.add_row(name, *(cell(report) for report in reports))
    out.print(table)
    for file, report in zip(files, reports):
        for kind, row in report["by_kind"].items():
            out.print(f"  {file.name} {kind}: {row['questions']} q, recall@{k} {row['recall']:.3f}, MRR {row['mrr']:.3f}", markup=False)
        for miss in report["misses"]:
            out.print(f"  miss {miss['id']} ({miss['kind']}): expected {miss['expected']}, got {miss['got'][:3]}", markup=False)


# -- serve ------------------------------------------------------------------------------------------


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(
        1, min=1, help="Server processes sharing the port; on the local index, each searches a read-only copy."
    ),
) -> None:
    """Run the HTTP API (widget API, SSE streams, /docs) on the configured or embedded defaults."""
    from pydantic import ValidationError

    try:
        settings = get_settings()
    except ValidationError as error:
        err.print(f"[bold red]error[/] (bad_settings): {error.errors()[0]['msg']}", highlight=False)
        raise typer.Exit(1)
    # The port is taken before the database starts, and handed to uvicorn, so a busy port is reported
    # at once and no other process can take it in between.
    try:
        listener = _listen(host, port)
    except BooktutorError as error:
        _fail(error)

    import uvicorn

    from booktutor.server.db import database_url, run_migrations
    from booktutor.server.http_timeouts import PROTOCOL
    from booktutor.server.observability import configure_logging

    configure_logging(settings.log_level or "INFO")
    # Reach the database and the index before uvicorn starts, so a misconfiguration is one clear line.
    try:
        run_migrations(database_url(settings))
        index = _open_index(settings)
    except BooktutorError as error:
        _fail(error)
    err.print(
        f"booktutor serving on http://{host}:{port} (API docs at /docs)"
        + (f" with {workers} worker processes" if workers > 1 else ""),
        highlight=False,
    )
    options = dict(
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=15,
        # Idle keep-alive connections close after 5 s; a request must arrive whole within
        # BOOKTUTOR_REQUEST_TIMEOUT_SECONDS (see server/http_timeouts.py).
        timeout_keep_alive=5,
        http=PROTOCOL,
    )
    if workers == 1:
        from booktutor.server.app import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
        server.run(sockets=[listener])
        if not server.started:
            raise typer.Exit(1)
        return
    from uvicorn.supervisors import Multiprocess

    from booktutor.server.workers import share_local_index

    # Each worker builds its own app from the same environment; they share the socket, Postgres
    # (runs, threads, checkpoints), the Qdrant server or a copy each of the local index, and, when
    # set, Redis for quotas.
    copies = None if settings.qdrant_url else share_local_index(index, settings)
    config = uvicorn.Config("booktutor.server.app:create_app", factory=True, workers=workers, **options)
    try:
        Multiprocess(config, sockets=[listener]).run()
    finally:
        if copies is not None:
            shutil.rmtree(copies, ignore_errors=True)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`, or an error that says why there cannot be one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BooktutorError(
                f"Port {port} on {host} is already in use. Stop the program using it, or pick another port with --port.",
                code="port_in_use",
            ) from None
        raise BooktutorError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.", code="cannot_listen") from None


# -- migrate -----------------------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Create or upgrade the app's tables and the checkpoint tables."""
    settings = get_settings()

    async def run():
        from booktutor.server.db import checkpointer, database_url, run_migrations

        url = await asyncio.to_thread(database_url, settings)
        await asyncio.to_thread(run_migrations, url)
        async with checkpointer(url):
            pass

    _run(run())
    out.print("[bold green]Database is up to date.[/]")


def _close_indexes() -> None:
    # Qdrant's local client fails noisily if it is still open while the interpreter shuts down. Only a
    # command that imported the index can have one open; importing it here would cost every command.
    index = sys.modules.get("booktutor.tools.index")
    if index is not None:
        index.close_all()


def _log_level(default: str) -> str:
    from pydantic import ValidationError

    try:
        return get_settings().log_level or default
    except ValidationError:
        # Bad settings are reported by the command that needs them, as one clear line.
        return default


def main() -> None:
    """Console-script entry point."""
    import atexit
    import warnings

    from dotenv import load_dotenv

    # A .env file configures every layer (models and graph context read the environment too), not only Settings.
    load_dotenv(Path.cwd() / ".env", override=False)
    atexit.register(_close_indexes)
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.basicConfig(level=_log_level("WARNING"), stream=sys.stderr)
    # httpx logs every request at INFO; keep the terminal for answers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app()


if __name__ == "__main__":
    main()
