"""The wheel as a user installs it: built from the checkout, installed non-editable into a fresh
virtualenv beside another distribution that ships a top-level `agents` package, and serving a chat.

Editable installs read the checkout, so they hide a module or data file missing from the wheel; only
a real install shows it. openai-agents really does ship `agents`; a stand-in built here plays it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL_VARIABLES, REPO, SAMPLE_BOOK, free_port, wait_for_readyz

# The folders the wheel installs as booktutor.<folder> (pyproject's package-dir).
PACKAGE_FOLDERS = ("agents", "tools", "graphs", "server", "migrations")
# Built from widget/ by setup.py's build step, so no clone holds it until a build ran.
WIDGET_BUNDLE = "booktutor/server/static/widget.js"


def source_files(*folders: str) -> list[str]:
    """The files a clean clone would hold: tracked ones plus new ones not ignored (not yet committed)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *folders],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    return sorted(path for path in listed if (REPO / path).is_file())


def run(*command: str | Path, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def user_environment(**extra: str) -> dict[str, str]:
    """This machine's environment (its package index settings too) without anything pointing at the checkout."""
    dropped = {*MODEL_VARIABLES, "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **extra}


class Install:
    """The wheel built from a copy of the checkout (so no build/ folder of the checkout leaks in) and
    installed, non-editable, into a fresh virtualenv beside the `agents` stand-in.

    Almost all of it is pip at work, so it starts on a thread as soon as the wheel tests are collected
    (see `pytest_collection_modifyitems` in tests/conftest.py) and runs beside the rest of the suite;
    the tests, run last, wait for it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.wheel: Path | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="wheel-install", daemon=True)

    def start(self) -> "Install":
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            source = self.root / "source"
            for path in source_files("."):
                (source / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / path, source / path)
            run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", source, "-w", self.root / "dist", timeout=300)
            (self.wheel,) = (self.root / "dist").glob("booktutor-*.whl")
            run(sys.executable, "-m", "venv", self.venv, timeout=120)
            stand_in = self.root / "stand-in"
            (stand_in / "agents").mkdir(parents=True)
            (stand_in / "pyproject.toml").write_text(STAND_IN)
            (stand_in / "agents" / "__init__.py").write_text('OWNER = "agents-stand-in"\n')
            # --no-compile: byte-compiling every dependency up front costs more than compiling what is imported.
            pip = (self.venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile")
            run(*pip, stand_in, timeout=300, env=user_environment())
            run(*pip, self.wheel, timeout=600, env=user_environment())
        except BaseException as error:  # handed to the tests, which fail with it
            self.error = error

    def wait(self) -> "Install":
        self.thread.join(timeout=900)
        assert not self.thread.is_alive(), "building and installing the wheel took over 15 minutes"
        if self.error is not None:
            raise self.error
        return self


@pytest.fixture(scope="module")
def installed(request) -> Install:
    started = getattr(request.config, "wheel_install", None)
    if started is None:  # collected some other way: start it now
        started = Install(Path(tempfile.mkdtemp(prefix="booktutor-wheel-"))).start()
    return started.wait()


def test_the_wheel_installs_one_top_level_name_and_every_file_of_the_package_folders(installed):
    with zipfile.ZipFile(installed.wheel) as archive:
        info = next(name.split("/")[0] for name in archive.namelist() if name.endswith(".dist-info/RECORD"))
        record = archive.read(f"{info}/RECORD").decode().splitlines()
    installed = [line.rsplit(",", 2)[0] for line in record if line]

    assert {path.split("/")[0] for path in installed} - {info} == {"booktutor"}
    # Every module, migration, vocabulary and static file of the package folders, the widget bundled from
    # widget/ by the build, and nothing else.
    expected = {f"booktutor/{path}" for path in source_files(*PACKAGE_FOLDERS)} | {WIDGET_BUNDLE}
    packaged = {path for path in installed if path.startswith("booktutor/")}
    assert not expected - packaged, f"missing from the wheel: {sorted(expected - packaged)}"
    assert not packaged - expected, f"in the wheel but not in the source: {sorted(packaged - expected)}"
    assert {"booktutor/server/routes/__init__.py", "booktutor/migrations/script.py.mako"} <= packaged


STAND_IN = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "agents-stand-in"
version = "1.0"

[tool.setuptools]
packages = ["agents"]
"""



def test_installed_beside_another_agents_package_it_serves_a_chat(installed, tmp_path, database_url):
    venv = installed.venv
    python, booktutor = venv / "bin" / "python", venv / "bin" / "booktutor"

    # From a folder of its own, so nothing of the checkout can be imported.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = user_environment(BOOKTUTOR_HOME=str(tmp_path / "home"), DATABASE_URL=database_url)
    probe = "import agents, json, booktutor.graphs.graph as g; print(json.dumps([agents.OWNER, agents.__file__, g.__file__]))"
    owner, agents_file, graph_file = json.loads(run(python, "-c", probe, cwd=elsewhere, env=env, timeout=120))
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    assert owner == "agents-stand-in" and Path(agents_file).is_relative_to(site_packages)
    assert Path(graph_file).is_relative_to(site_packages / "booktutor")

    report = json.loads(run(booktutor, "ingest", SAMPLE_BOOK, "--json", cwd=elsewhere, env=env, timeout=300))
    assert report["added"] == report["files"] > 0 and not report["failed"]

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [booktutor, "serve", "--port", str(port)], cwd=elsewhere, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        ready = wait_for_readyz(port, server, output=lambda: log.read_text()[-3000:])
        assert ready.status_code == 200, ready.text
        question = {"message": "How does a PID controller use the derivative term?"}
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat", json=question, timeout=60)
        widget = httpx.get(f"http://127.0.0.1:{port}/widget.js", timeout=30)
        demo = httpx.get(f"http://127.0.0.1:{port}/demo/", timeout=30)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    assert reply.status_code == 200, reply.text
    events = [line.removeprefix("event:").strip() for line in reply.text.splitlines() if line.startswith("event:")]
    assert events[0] != "error" and events[-1] == "done", events
    assert "02-motion/03-pid-control.md" in reply.text
    # The reader's door ships in the wheel too: the widget and the demo book that carries it.
    assert widget.status_code == 200 and "booktutor" in widget.text, widget.text[:300]
    assert demo.status_code == 200 and "/widget.js" in demo.text
