"""Postgres: the configured server or an embedded one, the app's tables, and the checkpointer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from booktutor.server import embedded_postgres
from booktutor.server.settings import Settings
from booktutor.tools.errors import BooktutorError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class DatabaseError(BooktutorError):
    code = "database_unavailable"


def _with_scheme(url: str, scheme: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise DatabaseError(f"DATABASE_URL must be a postgresql:// URL, got '{parts.scheme}://…'.", code="bad_database_url")
    return urlunsplit((scheme, *parts[1:]))


def libpq_url(url: str) -> str:
    """`postgresql://…` for psycopg and the checkpointer, whatever driver suffix the setting carries."""
    return _with_scheme(url, "postgresql")


def sqlalchemy_url(url: str, *, driver: str = "asyncpg") -> str:
    """`postgresql+<driver>://…` for SQLAlchemy."""
    return _with_scheme(url, f"postgresql+{driver}")


def database_url(settings: Settings) -> str:
    """DATABASE_URL (checked to answer), or the URL of the embedded server (started or joined) when it is not set."""
    if not settings.database_url:
        return embedded_postgres.use(settings.home)
    url = libpq_url(settings.database_url)
    check_database(url)
    return url


def check_database(url: str) -> None:
    """Connect once, so a wrong DATABASE_URL is one clear error before an ingest or a server starts."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        psycopg.connect(url, connect_timeout=10).close()
        return
    except psycopg.Error as exc:
        # libpq's text, without psycopg's "connection failed:" prefix; never the URL (it may hold a password).
        reason = " ".join(str(exc).split()).removeprefix("connection failed: ")
    target = conninfo_to_dict(url)
    name = target.get("dbname")
    if name and _server_lacks_database(url, name):
        flags = [f"-{flag} {target[key]}" for flag, key in (("h", "host"), ("p", "port"), ("U", "user")) if target.get(key)]
        createdb = " ".join(["createdb", *flags, name])
        raise DatabaseError(
            f"The database '{name}' named in DATABASE_URL does not exist on that server. "
            f"Create it with `{createdb}`, or point DATABASE_URL at one that exists.",
            code="database_not_found",
        )
    raise DatabaseError(f"Could not connect to the PostgreSQL in DATABASE_URL: {reason}")


def _server_lacks_database(url: str, name: str) -> bool:
    """True when the server answers and has no database `name` (the server's catalog says so, in any locale)."""
    import psycopg

    maintenance = "template1" if name == "postgres" else "postgres"
    try:
        with psycopg.connect(url, dbname=maintenance, connect_timeout=10) as connection:
            found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    except psycopg.Error:
        return False
    return found is None


# Processes starting together (serve --workers, several machines) change the schema one at a time.
SCHEMA_LOCK = 0x626F6F6B  # "book"
# The lock is polled, never waited for inside Postgres: the checkpointer's set-up builds an index
# CONCURRENTLY, which waits for every statement in flight, so a process parked in pg_advisory_lock
# would wait for the holder while the holder waits for it (a deadlock Postgres does not detect).
TRY_SCHEMA_LOCK = "SELECT pg_try_advisory_lock(%s) AS taken"
SCHEMA_LOCK_POLL_SECONDS = 0.1
# A pooled connection that has not been checked for this long is pinged before use (see
# `check_connection_every`); one used more recently is trusted.
PING_AFTER_SECONDS = 2.0


@contextlib.contextmanager
def _schema_lock(url: str):
    import psycopg

    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10) as connection:
        while not connection.execute(TRY_SCHEMA_LOCK, (SCHEMA_LOCK,)).fetchone()[0]:
            time.sleep(SCHEMA_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def run_migrations(url: str) -> None:
    """Bring the app's tables to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url, driver="psycopg").replace("%", "%%"))
    try:
        with _schema_lock(url):
            command.upgrade(config, "head")
    except Exception as exc:
        if isinstance(exc, BooktutorError):
            raise
        raise DatabaseError(f"Could not migrate the database: {exc}") from exc


def create_engine(url: str) -> AsyncEngine:
    """The app's SQLAlchemy engine; its pooled connections are pinged as the psycopg pools' are
    (`check_connection_every`), not on every checkout (`pool_pre_ping`, a round trip per turn)."""
    from sqlalchemy import event, exc

    engine = create_async_engine(sqlalchemy_url(url))
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkout")
    def ping_if_idle(dbapi_connection, record, proxy) -> None:
        now = time.monotonic()
        if now - record.info.get("pinged", -PING_AFTER_SECONDS) < PING_AFTER_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool drops this connection and checks out another (a fresh one if need be).
            raise exc.DisconnectionError() from error
        record.info["pinged"] = now

    @event.listens_for(engine.sync_engine, "connect")
    def fresh(dbapi_connection, record) -> None:
        record.info["pinged"] = time.monotonic()

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def retry_reconnects_steadily() -> None:
    """Make psycopg's pools try a lost Postgres every quarter second instead of backing off.

    psycopg_pool retries a failed connection after 1 s, 2 s, 4 s …, so after a 30-second outage a pool
    may wait as long again before it notices Postgres is back, answering 503 all along. A steady short
    delay brings the service back as soon as Postgres is; a refused connection costs next to nothing.
    The pool has no setting for this, only these class constants.
    """
    from psycopg_pool.base import AttemptWithBackoff

    AttemptWithBackoff.INITIAL_DELAY = 0.25
    AttemptWithBackoff.DELAY_BACKOFF = 1.0


def check_connection_every(seconds: float = PING_AFTER_SECONDS):
    """A psycopg pool `check` that pings a connection at most once every `seconds`.

    Checking every checkout (psycopg_pool's `check_connection`) costs a round trip per checkpoint
    operation, a dozen per turn. A connection that was fine moments ago almost always still is; after
    a Postgres restart the ones it broke are pinged (and replaced) as soon as they have sat for
    `seconds`, and one that breaks in between fails its operation as an outage, as it would mid-use.
    """
    import weakref

    from psycopg_pool import AsyncConnectionPool

    checked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def check(conn) -> None:
        now = time.monotonic()
        if now - checked.get(conn, -seconds) >= seconds:
            await AsyncConnectionPool.check_connection(conn)
            checked[conn] = now

    return check


@contextlib.asynccontextmanager
async def checkpointer(url: str) -> AsyncIterator["PooledPostgresSaver"]:  # noqa: F821
    """langgraph-checkpoint-postgres on a small connection pool, its tables set up."""
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from booktutor.server.checkpointer import PooledPostgresSaver

    retry_reconnects_steadily()
    pool = AsyncConnectionPool(
        libpq_url(url),
        min_size=1,
        max_size=10,
        open=False,
        # After a Postgres restart, a pooled connection is checked before use instead of failing a turn;
        # while Postgres is down, a turn waiting for a connection fails in seconds, not after 30.
        check=check_connection_every(),
        timeout=5,
        # The checkpointer's own requirements: autocommit, no server-side prepared statements.
        kwargs={"autocommit": True, "prepare_threshold": None, "row_factory": dict_row},
    )
    try:
        await pool.open(wait=True, timeout=15)
    except Exception as exc:
        raise DatabaseError(f"Could not connect to PostgreSQL: {exc}") from exc
    try:
        saver = PooledPostgresSaver(pool)
        # Its setup creates tables without IF NOT EXISTS guards on types: one process at a time.
        async with pool.connection() as lock:
            while not (await (await lock.execute(TRY_SCHEMA_LOCK, (SCHEMA_LOCK,))).fetchone())["taken"]:
                await asyncio.sleep(SCHEMA_LOCK_POLL_SECONDS)
            try:
                await saver.setup()
            finally:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        yield saver
    finally:
        await pool.close()


def is_outage(error: BaseException) -> bool:
    """Whether an exception means Postgres is unreachable (down, restarting, or the network is cut).

    Such failures answer `503 database_unavailable` with Retry-After, not a 500: the request was fine
    and is worth repeating in a moment.
    """
    import psycopg
    import sqlalchemy.exc
    from psycopg_pool import PoolTimeout

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (ConnectionError, PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError)):
            return True
        if isinstance(error, sqlalchemy.exc.DBAPIError) and (
            error.connection_invalidated or isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
        ):
            return True
        if type(error).__module__.startswith("asyncpg") and type(error).__name__ in OUTAGE_ASYNCPG_ERRORS:
            return True
        if isinstance(error, DatabaseError) and error.code == "database_unavailable":
            return True
        error = error.__cause__ or error.__context__
    return False


# asyncpg's names for a connection that is gone or cannot be made (checked by name: asyncpg is optional here).
OUTAGE_ASYNCPG_ERRORS = {
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "CannotConnectNowError",
    "AdminShutdownError",
    "CrashShutdownError",
    "InterfaceError",
    "InternalClientError",
    "TooManyConnectionsError",
}
