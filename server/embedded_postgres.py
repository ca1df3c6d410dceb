"""The embedded PostgreSQL: started on first use, shared by every booktutor process of one
BOOKTUTOR_HOME, stopped when the last of them ends, however it ends (Ctrl-C, SIGTERM, SIGKILL).

Everything lives in `<BOOKTUTOR_HOME>/postgres`:

    data/           the cluster (PGDATA), made by initdb on first use
    .s.PGSQL.5432   the only way in: a unix socket, mode 0700 (no TCP listener at all)
    owners.lock     every process using the server holds a shared flock on it for its whole life
    keeper.lock     held by the keeper for its whole life
    start.lock      serializes starting and stopping
    postgres.log    the server's and the keeper's log

The lifetime rests on the kernel, not on exit handlers: a process's flocks are released however it
dies. The keeper is a small detached process (`python -m booktutor.server.embedded_postgres`) that
starts postgres, then blocks until it gets an exclusive lock on owners.lock, which happens exactly
when no owner is left; it then stops postgres (fast shutdown) and exits. A process arriving while
the keeper is stopping waits for it and starts a fresh server, because both sides decide under
start.lock.

As root, postgres (which refuses to run as root) runs in a user namespace
(`unshare --user --map-user=<uid of nobody>`): inside it root's files appear owned by that uid, so no
system user is created and no permission outside the folder changes. The binaries are pgserver's
bundled PostgreSQL 16; pgserver's own lifecycle (a pid list that dead processes never leave, a
system user and chmods above the folder as root) is what this module replaces.

Only the standard library is imported here: the keeper process starts from this module, and every
millisecond it takes is spent before the first query.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import quote

PORT = 5432  # only names the socket file: there is no TCP listener
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its terminating NUL
START_TIMEOUT = 120.0  # includes initdb on first use, on a slow shared machine
STOP_TIMEOUT = 30.0
NAMESPACE_USER = "nobody"

# Lock files this process holds a shared lock on, per folder: held until the process ends.
_owned: dict[Path, int] = {}


def _error(message: str, code: str = "database_unavailable") -> Exception:
    # Imported here, not at the top: the keeper runs this module and must not load SQLAlchemy.
    from booktutor.server.db import DatabaseError

    return DatabaseError(message, code=code)


# -- where things are ----------------------------------------------------------------------------


def folder_of(home: Path) -> Path:
    return (home / "postgres").resolve()


def _data_dir(folder: Path) -> Path:
    # Servers made by earlier versions (pgserver) kept the cluster in the folder itself.
    return folder if (folder / "PG_VERSION").exists() else folder / "data"


def _bin_dir() -> Optional[Path]:
    # find_spec does not import pgserver, whose import touches the user's runtime folder.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    return bin_dir if (bin_dir / "postgres").exists() else None


def _socket_path(folder: Path) -> Path:
    return folder / f".s.PGSQL.{PORT}"


# -- checks made before anything is touched -----------------------------------------------------


def _namespace_command() -> list[str]:
    """The prefix that runs a command as an unprivileged uid: empty unless this process is root."""
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare") or shutil.which("unshare", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if unshare is None:
        raise _error(_as_root_fix("the `unshare` command (util-linux) is not installed"))
    try:
        # initdb looks its own uid up in /etc/passwd, so the uid inside must have an entry.
        user = pwd.getpwnam(NAMESPACE_USER)
    except KeyError:
        user = next((entry for entry in pwd.getpwall() if entry.pw_uid != 0), None)
        if user is None:
            raise _error(_as_root_fix("/etc/passwd lists no user other than root")) from None
    return [unshare, "--user", f"--map-user={user.pw_uid}", f"--map-group={user.pw_gid}", "--"]


def _as_root_fix(problem: str) -> str:
    return (
        "PostgreSQL refuses to run as root, so as root booktutor runs its embedded server as an "
        f"unprivileged uid in a user namespace, and here {problem}. Fix: run booktutor as a normal "
        "user, or set DATABASE_URL=postgresql://user@host/dbname to a PostgreSQL server you run "
        "(in Docker, user namespaces also work with `--security-opt seccomp=unconfined`)."
    )


def _preflight(folder: Path) -> tuple[Path, list[str]]:
    """Refuse with the fix, before creating anything, when the embedded server cannot work here."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise _error(
            "The embedded PostgreSQL comes from the pgserver package, which is not installed. "
            "Fix: pip install pgserver, or set DATABASE_URL=postgresql://user@host/dbname."
        )
    socket = _socket_path(folder)
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
        raise _error(
            f"The embedded PostgreSQL listens on a unix socket in {folder}, and that path is too long "
            f"for one ({len(os.fsencode(socket))} bytes, at most {MAX_SOCKET_PATH}). Fix: set "
            "BOOKTUTOR_HOME to a shorter path, or set DATABASE_URL=postgresql://user@host/dbname."
        )
    namespace = _namespace_command()
    if namespace:
        probe = subprocess.run([*namespace, str(bin_dir / "postgres"), "--version"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            detail = (probe.stderr or probe.stdout).strip().splitlines()
            raise _error(_as_root_fix(f"user namespaces are not available ({detail[-1] if detail else 'unshare failed'})"))
    return bin_dir, namespace


# -- the server's own record of itself ----------------------------------------------------------


def _postmaster_fields(data: Path) -> list[str]:
    try:
        return (data / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return []


def _is_postmaster_of(pid: int, data: Path) -> bool:
    """True while `pid` is a live postgres serving `data` (a zombie or a reused pid is not)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return bool(argv[0]) and os.fsencode(data) in argv


def _running_pid(data: Path) -> Optional[int]:
    fields = _postmaster_fields(data)
    if fields and fields[0].strip().isdigit() and _is_postmaster_of(int(fields[0]), data):
        return int(fields[0])
    return None


def _is_ready(data: Path) -> bool:
    fields = _postmaster_fields(data)
    return len(fields) >= 8 and fields[7].strip() == "ready" and _running_pid(data) is not None


def _url(data: Path) -> str:
    fields = _postmaster_fields(data)
    port, socket_dir = fields[3].strip(), fields[4].strip()
    if socket_dir:
        return f"postgresql://postgres@/postgres?host={quote(socket_dir, safe='/')}&port={port}"
    # A server started by an earlier version may listen on loopback instead.
    return f"postgresql://postgres@{fields[5].strip()}:{port}/postgres"


def _log_tail(folder: Path, lines: int = 12) -> str:
    try:
        text = (folder / "postgres.log").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(text[-lines:])


# -- locks --------------------------------------------------------------------------------------


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children (PEP 446)


def _lock_before(fd: int, operation: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def _keeper_alive(folder: Path) -> bool:
    fd = _open_lock(folder / "keeper.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# -- the owner's side: start or join, and hold on ---------------------------------------------------


def use(home: Path) -> str:
    """Start (or join) the embedded server of `home` and return its URL.

    This process counts as one of its users until it ends, however it ends.
    """
    folder = folder_of(home)
    if folder in _owned and _is_ready(_data_dir(folder)):
        return _url(_data_dir(folder))
    _preflight(folder)  # before anything exists; the keeper checks again and uses what it finds
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + START_TIMEOUT
    owners = _owned[folder] if folder in _owned else _open_lock(folder / "owners.lock")
    start = _open_lock(folder / "start.lock")
    try:
        while True:
            if not _lock_before(start, fcntl.LOCK_EX, deadline):
                raise _error(f"Timed out waiting for another booktutor process to start or stop the database in {folder}.")
            try:
                fcntl.flock(owners, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # The keeper found no owner left and is stopping the server: let it finish, then start anew.
                fcntl.flock(start, fcntl.LOCK_UN)
                time.sleep(0.05)
        _owned[folder] = owners
        _ensure_keeper(folder, deadline)
    except BaseException:
        _owned.pop(folder, None)
        os.close(owners)
        raise
    finally:
        os.close(start)
    return _url(_data_dir(folder))


def _ensure_keeper(folder: Path, deadline: float) -> None:
    """Under start.lock: make sure a keeper runs and the server is ready."""
    if _keeper_alive(folder):
        if _is_ready(_data_dir(folder)):
            return
        # A keeper whose server died exits within a second; wait for it, then start a new one.
        while _keeper_alive(folder):
            if time.monotonic() > deadline:
                raise _error(f"The embedded PostgreSQL in {folder} is not running and its keeper does not exit.\n{_log_tail(folder)}")
            time.sleep(0.05)
    with open(folder / "postgres.log", "ab") as log:
        keeper = subprocess.Popen(
            [sys.executable, "-m", "booktutor.server.embedded_postgres", str(folder)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, cwd=folder,
            start_new_session=True,  # Ctrl-C in the terminal reaches the owners, not the keeper
        )
    report = _read_report(keeper, deadline)
    keeper.stdout.close()
    if not report.get("ok"):
        message = report.get("message") or f"Its keeper exited without starting it.\n{_log_tail(folder)}"
        raise _error(f"Could not start the embedded PostgreSQL in {folder}. {message}")


def _read_report(keeper: subprocess.Popen, deadline: float) -> dict:
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([keeper.stdout], [], [], remaining)[0]:
            return {"message": "It did not become ready in time."}
        chunk = os.read(keeper.stdout.fileno(), 4096)
        if not chunk:
            break
        line += chunk
    try:
        return json.loads(line)
    except ValueError:
        return {}


# -- the keeper's side: start, wait for the last owner, stop ---------------------------------------


class _StartFailed(Exception):
    pass


def _keep(folder: Path) -> int:
    keeper_lock = _open_lock(folder / "keeper.lock")
    fcntl.flock(keeper_lock, fcntl.LOCK_EX)  # a previous keeper may still be closing its files
    stop_now = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        # Stopped with the whole service (systemd, a container): take postgres down with us.
        signal.signal(signum, lambda *_: stop_now.set())
    try:
        bin_dir, namespace = _preflight(folder)
        data = _data_dir(folder)
        server = _adopt_or_start(folder, data, bin_dir, namespace)
    except Exception as exc:
        _report({"message": getattr(exc, "message", str(exc))})
        return 1
    _report({"ok": True})

    no_owner_left = threading.Event()
    owners = _open_lock(folder / "owners.lock")

    def wait_for_last_owner() -> None:
        fcntl.flock(owners, fcntl.LOCK_EX)
        no_owner_left.set()

    threading.Thread(target=wait_for_last_owner, daemon=True).start()
    while not (no_owner_left.wait(0.5) or stop_now.is_set()):
        if not server.alive():
            print(f"keeper: postgres {server.pid} ended on its own", file=sys.stderr, flush=True)
            return 1
    start = _open_lock(folder / "start.lock")
    _lock_before(start, fcntl.LOCK_EX, time.monotonic() + (5 if stop_now.is_set() else STOP_TIMEOUT))
    server.stop()
    os.close(keeper_lock)  # before start.lock: an arriving owner must not see this keeper as alive
    return 0


def _report(message: dict) -> None:
    try:
        os.write(1, (json.dumps(message) + "\n").encode())
    except OSError:
        pass  # the owner that started us is gone; its death is noticed through owners.lock
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


class _Server:
    def __init__(self, pid: int, data: Path, process: Optional[subprocess.Popen] = None) -> None:
        self.pid, self.data, self.process = pid, data, process

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return _is_postmaster_of(self.pid, self.data)

    def stop(self) -> None:
        """Fast shutdown (SIGINT); immediate (SIGQUIT), then SIGKILL, if it hangs."""
        for signum, patience in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            if not self.alive():
                return
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + patience
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)


def _adopt_or_start(folder: Path, data: Path, bin_dir: Path, namespace: list[str]) -> _Server:
    pid = _running_pid(data)
    if pid is not None:
        # Its keeper died (or an earlier version started it): keep it, and stop it when due.
        server = _Server(pid, data)
    else:
        (data / "postmaster.pid").unlink(missing_ok=True)  # left by a server that is gone
        if not (data / "PG_VERSION").exists():
            _initdb(folder, data, bin_dir, namespace)
        server = _start(folder, data, bin_dir, namespace)
    deadline = time.monotonic() + START_TIMEOUT
    while not _is_ready(data):
        if not server.alive() or time.monotonic() > deadline:
            server.stop()
            raise _StartFailed(f"PostgreSQL did not start. Its log ({folder / 'postgres.log'}) ends with:\n{_log_tail(folder)}")
        time.sleep(0.02)
    return server


def _initdb(folder: Path, data: Path, bin_dir: Path, namespace: list[str]) -> None:
    # Into a scratch folder first, so a crash halfway leaves no half-made cluster behind.
    scratch = folder / "data.initdb"
    shutil.rmtree(scratch, ignore_errors=True)
    with open(folder / "postgres.log", "ab") as log:
        done = subprocess.run(
            [*namespace, str(bin_dir / "initdb"), "-D", str(scratch), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-instructions"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=START_TIMEOUT,
        )
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise _StartFailed(f"initdb failed. Its log ({folder / 'postgres.log'}) ends with:\n{_log_tail(folder)}")
    scratch.rename(data)


def _start(folder: Path, data: Path, bin_dir: Path, namespace: list[str]) -> _Server:
    socket_dir = '"' + str(folder).replace('"', '""') + '"'  # a list setting: quoted, it may hold commas
    with open(folder / "postgres.log", "ab") as log:
        process = subprocess.Popen(
            [*namespace, str(bin_dir / "postgres"), "-D", str(data), "-p", str(PORT),
             "-c", "listen_addresses=", "-c", f"unix_socket_directories={socket_dir}",
             "-c", "unix_socket_permissions=0700"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=folder,
        )
    return _Server(process.pid, data, process)  # unshare execs postgres: same pid


if __name__ == "__main__":
    sys.exit(_keep(Path(sys.argv[1])))
