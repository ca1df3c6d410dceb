"""The embedded PostgreSQL with real processes: it stops when its last user ends, however that ends.

Each owner is a separate Python process that asks `database_url` for the embedded server (no
DATABASE_URL), runs a query, prints how long `database_url` took and the URL, and sleeps until it is signalled.
"""

from __future__ import annotations

import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from booktutor.server.db import DatabaseError, database_url
from booktutor.server.settings import Settings

MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
OWNER = """
import signal, sys, time
from pathlib import Path
import psycopg

# Ctrl-C stops a process in a terminal; a test runner started in the background inherits SIGINT
# ignored (POSIX shells without job control), which a child keeps unless it asks for the default.
signal.signal(signal.SIGINT, signal.default_int_handler)
from booktutor.server.db import database_url
from booktutor.server.settings import Settings

started = time.monotonic()
url = database_url(Settings(home=Path(sys.argv[1])))
took = time.monotonic() - started
psycopg.connect(url).execute("select 1").fetchone()
print(f"{took:.3f} {url}", flush=True)
time.sleep(600)
"""


def processes_of(folder: Path) -> list[int]:
    """Live processes that run on the data folder: its postmaster and keeper by their command line,
    its backends by their working directory."""
    needle = os.fsencode(folder)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone meanwhile, or a zombie
            continue
        if cmdline and (needle in cmdline or cwd == str(folder) or cwd.startswith(f"{folder}/")):
            found.append(int(entry.name))
    return found


def wait_until_gone(folder: Path, seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_of(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


class Owner:
    """One booktutor-like process using the embedded server of `home`."""

    def __init__(self, home: Path, *, env: dict[str, str] | None = None, python: list[str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*(python or [sys.executable]), "-c", OWNER, str(home)],
            env=env or {**os.environ, "PATH": MINIMAL_PATH},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def ready(self, timeout: float = 90.0) -> str:
        """The URL it got, once it has run a query."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the owner exited ({self.process.returncode}): {self.process.stderr.read()}")
            if select.select([self.process.stdout], [], [], 0.2)[0]:
                line = self.process.stdout.readline()
                if not line:
                    self.process.wait(timeout=10)
                    pytest.fail(f"the owner exited ({self.process.returncode}): {self.process.stderr.read()}")
                took, url = line.split()
                self.seconds = float(took)
                return url
        self.process.kill()
        pytest.fail("the owner did not get a database in time")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)
        self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def owners():
    started: list[Owner] = []

    def start(home: Path, **kwargs) -> Owner:
        owner = Owner(home, **kwargs)
        started.append(owner)
        return owner

    yield start
    for owner in started:
        owner.kill()


@pytest.fixture(scope="session")
def initialised_cluster(tmp_path_factory) -> Path:
    """A cluster made by one real first start (initdb included); tests copy it rather than wait for
    initdb each."""
    home = tmp_path_factory.mktemp("template") / "home"
    owner = Owner(home)
    try:
        owner.ready()
        owner.signal(signal.SIGTERM)
    finally:
        owner.kill()
    assert wait_until_gone(home / "postgres") == []
    return home / "postgres" / "data"


@pytest.fixture
def home(tmp_path, initialised_cluster) -> Path:
    """A BOOKTUTOR_HOME whose embedded cluster is initialised and not running."""
    home = tmp_path / "home"
    (home / "postgres").mkdir(parents=True, mode=0o700)
    shutil.copytree(initialised_cluster, home / "postgres" / "data", symlinks=True)
    return home


def query(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5) as connection:
        return connection.execute("select 1").fetchone()[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_the_database_stops_when_its_only_owner_ends(home, owners, signum):
    folder = home / "postgres"
    owner = owners(home)
    url = owner.ready()
    assert query(url) == 1 and processes_of(folder)

    owner.signal(signum)

    assert wait_until_gone(folder) == []
    assert not (folder / "data" / "postmaster.pid").exists()


def test_the_database_stays_up_for_the_last_owner_and_stops_with_it(home, owners):
    folder = home / "postgres"
    first, second = owners(home), owners(home)
    url = first.ready()
    assert second.ready() == url
    postmaster = (folder / "data" / "postmaster.pid").read_text().split()[0]

    first.signal(signal.SIGKILL)
    time.sleep(1.0)  # what the keeper would need to notice, if it wrongly counted only one owner

    assert query(url) == 1
    assert (folder / "data" / "postmaster.pid").read_text().split()[0] == postmaster
    second.signal(signal.SIGTERM)
    assert wait_until_gone(folder) == []


def test_a_process_arriving_while_the_server_stops_gets_a_working_one(home, owners):
    folder = home / "postgres"
    for delay in (0.0, 0.05, 0.2):
        leaving = owners(home)
        leaving.ready()
        leaving.process.kill()
        time.sleep(delay)
        arriving = owners(home)
        assert query(arriving.ready(timeout=30)) == 1
        arriving.signal(signal.SIGKILL)
        assert wait_until_gone(folder) == [], f"left running after arriving {delay} s after the last owner died"


def test_an_initialised_server_starts_fast_and_joining_a_running_one_is_instant(home, owners):
    cold = owners(home)
    assert query(cold.ready()) == 1
    joining = owners(home)
    joining.ready()

    assert cold.seconds < 2.0, cold.seconds
    assert joining.seconds < 0.1, joining.seconds


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can show that root needs no system user and no chmod")
def test_as_root_it_works_without_a_system_user_or_changes_outside_its_home(tmp_path, owners):
    home = tmp_path / "outer" / "inner" / "home"
    home.parent.mkdir(parents=True)
    home.parent.chmod(0o700)
    parents = [home.parent, *home.parent.parents]
    modes_before = {path: path.stat().st_mode for path in parents}
    accounts_before = {name: Path(name).read_bytes() for name in ("/etc/passwd", "/etc/group")}
    outside_before = sorted(p.name for p in home.parent.iterdir())

    owner = owners(home, env={"PATH": MINIMAL_PATH, "HOME": str(tmp_path)})
    assert query(owner.ready()) == 1
    owner.signal(signal.SIGTERM)
    assert wait_until_gone(home / "postgres") == []

    assert {path: path.stat().st_mode for path in parents} == modes_before
    assert {name: Path(name).read_bytes() for name in accounts_before} == accounts_before
    assert sorted(p.name for p in home.parent.iterdir()) == sorted([*outside_before, "home"])
    assert stat.S_IMODE((home / "postgres").stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="the user namespace is only used as root")
def test_as_root_without_user_namespaces_it_refuses_up_front_with_the_fix(tmp_path, monkeypatch):
    # What Docker's default seccomp profile does to unshare(CLONE_NEWUSER).
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{MINIMAL_PATH}")
    home = tmp_path / "home"

    with pytest.raises(DatabaseError) as refused:
        database_url(Settings(home=home))

    assert refused.value.code == "database_unavailable"
    assert "Operation not permitted" in refused.value.message
    assert "normal user" in refused.value.message and "DATABASE_URL" in refused.value.message
    assert not home.exists()


def unprivileged_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        entry = next(entry for entry in pwd.getpwall() if entry.pw_uid != 0)
    return entry.pw_uid, entry.pw_gid


def others_can_reach(path: Path, bit: int) -> bool:
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents) and bool(path.stat().st_mode & bit)


def python_for_others(base: Path) -> str:
    """A Python other users can run that sees this test run's packages: a tiny venv on a base
    interpreter they can reach (root's own interpreter often sits under /root, closed to them)."""
    packages = Path(sysconfig.get_paths()["purelib"])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(os.path.realpath(sys.executable)), Path(shutil.which(version, path=MINIMAL_PATH) or "/nonexistent")]
    interpreter = next((c for c in candidates if c.exists() and others_can_reach(c, stat.S_IXOTH)), None)
    if interpreter is None or not others_can_reach(packages, stat.S_IROTH):
        pytest.fail(f"running as a normal user needs a {version} that uid nobody can run and read access to {packages}")
    venv = base / "venv"
    subprocess.run([str(interpreter), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "test-run-packages.pth").write_text(f"import site; site.addsitedir({str(packages)!r})\n")
    return str(venv / "bin" / "python")


def test_as_a_normal_user_it_works_and_stops(owners):
    """As root, the owner runs as an unprivileged uid via setpriv; otherwise the test runner is one."""
    # Under /tmp, not pytest's tmp_path: root's tmp_path is closed to other users.
    base = Path(tempfile.mkdtemp(prefix="booktutor-user-"))
    try:
        if os.geteuid() == 0:
            uid, gid = unprivileged_user()
            python = [shutil.which("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups", python_for_others(base)]
            base.chmod(0o755)
        else:
            uid, python = os.geteuid(), [sys.executable]
        home = base / "home"
        home.mkdir()
        os.chown(home, uid, -1)
        owner = owners(home, python=python, env={"PATH": MINIMAL_PATH, "HOME": str(home)})
        assert query(owner.ready()) == 1
        assert (home / "postgres" / "data").stat().st_uid == uid
        owner.signal(signal.SIGTERM)
        assert wait_until_gone(home / "postgres") == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_home_too_long_for_a_socket_is_refused_before_anything_is_created(tmp_path):
    home = tmp_path / ("x" * 120)

    with pytest.raises(DatabaseError) as refused:
        database_url(Settings(home=home))

    assert refused.value.code == "database_unavailable"
    assert "BOOKTUTOR_HOME" in refused.value.message and "DATABASE_URL" in refused.value.message
    assert not home.exists()


def test_booktutor_serve_stopped_with_sigterm_leaves_no_database_running(home):
    """The issue's own case: `kill` (systemd, `docker stop`) of the server, not of a stand-in."""
    from tests.conftest import BOOKTUTOR, MODEL_VARIABLES, REPO, free_port, wait_for_readyz

    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES},
           "PATH": MINIMAL_PATH, "BOOKTUTOR_HOME": str(home)}
    server = subprocess.Popen([*BOOKTUTOR, "serve", "--port", str(port)], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_for_readyz(port, server)
        assert ready.json()["checks"]["postgres"] == "ok"
        assert processes_of(home / "postgres")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        server.kill()
    assert wait_until_gone(home / "postgres") == []
