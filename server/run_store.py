"""Runs in Postgres: their records and events, shared by every server process.

Any process can replay, follow, report and cancel any run. The process running turns appends their
events in batches (one transaction for all its runs every few milliseconds, never one per token) and
keeps a lease on each run; a run whose lease lapses belongs to a process that died, and the first reader to notice marks
it `interrupted`. Followers wait on Postgres LISTEN/NOTIFY, so events written by one process reach
readers on another within milliseconds.

Why Postgres and not a broker: every deployment already has it, and the events must be stored for
replay anyway, so the notification only says "read again".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from booktutor.server.db import check_connection_every, libpq_url, retry_reconnects_steadily

log = logging.getLogger("booktutor.runs")

CHANNEL = "booktutor_runs"
CANCEL = "cancel:"
INTERRUPTED = {
    "code": "run_interrupted",
    "message": "The server answering this question stopped before it finished. Your question is saved; ask again.",
}


class ThreadBusy(Exception):
    """Another run of the thread is still going (in this process or another)."""


class RunGone(Exception):
    """The run is no longer running in the database (interrupted or cancelled elsewhere)."""


@dataclass
class RunRecord:
    id: str
    thread_id: str
    reader_id: str
    status: str
    events: int
    lease_expired: bool

    def public(self) -> dict[str, Any]:
        return {"run_id": self.id, "thread_id": self.thread_id, "status": self.status, "events": self.events}


@dataclass
class StoredEvent:
    seq: int
    event: str
    data: dict[str, Any]


class RunStore:
    """Postgres access for runs: claim, append, read, cancel, lease and retention, plus the listener."""

    def __init__(self, url: str, *, owner: str, lease_seconds: float, retention_seconds: float) -> None:
        self.url = libpq_url(url)
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.retention_seconds = retention_seconds
        # A short pool timeout: with Postgres down, callers learn it in seconds, not after 30.
        retry_reconnects_steadily()
        self.pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=8,
            open=False,
            timeout=3,
            check=check_connection_every(),
            kwargs={"autocommit": True, "connect_timeout": 3, "row_factory": dict_row}
        )
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task | None = None
        self.on_cancel: Callable[[str], None] = lambda run_id: None

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=15)
        self._listener = asyncio.create_task(self._listen(), name="runs-listener")

    async def close(self) -> None:
        if self._listener:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.pool.close()

    # -- notifications ------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """One LISTEN connection per process; reconnects after an outage and wakes every follower."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=3) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    # Whatever was written while we were not listening is read now.
                    self._wake_all()
                    async for note in conn.notifies():
                        self._dispatch(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: Postgres restarted or is unreachable
                log.debug("run listener reconnecting: %s", exc)
                self._wake_all()
                await asyncio.sleep(0.5)

    def _dispatch(self, payload: str) -> None:
        if payload.startswith(CANCEL):
            self.on_cancel(payload.removeprefix(CANCEL))
            return
        for run_id in payload.split(","):
            self.wake(run_id)

    def wake(self, run_id: str) -> None:
        for signal in self._watchers.get(run_id, ()):
            signal.set()

    def _wake_all(self) -> None:
        for signals in self._watchers.values():
            for signal in signals:
                signal.set()

    @contextlib.contextmanager
    def watch(self, run_id: str):
        """A signal set when the run has news; register it before reading so no news slips between."""
        signal = asyncio.Event()
        self._watchers.setdefault(run_id, set()).add(signal)
        try:
            yield signal
        finally:
            signals = self._watchers.get(run_id)
            if signals is not None:
                signals.discard(signal)
                if not signals:
                    del self._watchers[run_id]

    # -- writing ------------------------------------------------------------------------------------

    async def claim(self, *, run_id: str, thread_id: str, reader_id: str, metadata: dict[str, Any]) -> None:
        """Record a new running run with its `metadata` event, or raise `ThreadBusy`."""
        # The run and its first event in one statement, so one round trip when the thread is free (the
        # usual case); a conflict on the one-running-run-per-thread index inserts neither.
        claim = (
            "WITH run AS (INSERT INTO runs (id, thread_id, reader_id, owner, lease_until)"
            " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s)) ON CONFLICT DO NOTHING RETURNING id)"
            " INSERT INTO run_events (run_id, seq, event, data) SELECT id, 0, 'metadata', %s FROM run RETURNING run_id"
        )
        params = (run_id, thread_id, reader_id, self.owner, self.lease_seconds, _dump(metadata))
        async with self.pool.connection() as conn:
            if await (await conn.execute(claim, params)).fetchone():
                return
            # A run left `running` by a dead process must not hold its thread forever: once its lease
            # has lapsed it is interrupted, and the thread is free (unless another claim got there first).
            async with conn.transaction():
                interrupted = await self._interrupt_expired(conn, "thread_id = %s", (thread_id,))
            if not interrupted or not await (await conn.execute(claim, params)).fetchone():
                raise ThreadBusy()

    async def append(self, run_id: str, events: list[StoredEvent], *, status: str | None = None) -> None:
        """Store a run's events (and its final status, if given) with one NOTIFY, in one statement.

        Raises `RunGone` when the run was ended elsewhere (its lease lapsed, say), so its task stops.
        """
        # The row lock orders this write against a reader marking the run interrupted: the lock waits for
        # that reader's commit and then sees its status, and the insert and the update go by what it saw.
        # One statement, so one round trip and no pipeline or transaction to drive (about a quarter of
        # the client's CPU for the same writes, which every turn's end pays on the event loop).
        run_ids, seqs, names, data = _columns({run_id: events})
        statement = (
            "WITH locked AS (SELECT status FROM runs WHERE id = %(id)s FOR UPDATE),"
            " stored AS (INSERT INTO run_events (run_id, seq, event, data)"
            " SELECT * FROM unnest(%(run_ids)s::text[], %(seqs)s::int[], %(names)s::text[], %(data)s::text[])"
            " WHERE (SELECT status FROM locked) = 'running'),"
            " ended AS (UPDATE runs SET status = %(status)s, finished_at = now()"
            " WHERE id = %(id)s AND %(status)s::text IS NOT NULL AND (SELECT status FROM locked) = 'running')"
            " SELECT status, pg_notify(%(channel)s, %(id)s) FROM locked"
        )
        params = {"id": run_id, "run_ids": run_ids, "seqs": seqs, "names": names, "data": data, "status": status, "channel": CHANNEL}
        async with self.pool.connection() as conn:
            row = await (await conn.execute(statement, params)).fetchone()
        if row is None or row["status"] != "running":
            raise RunGone(run_id)

    async def append_many(self, batch: dict[str, list[StoredEvent]]) -> set[str]:
        """Store new events of many running runs in one statement, notified in the same round trip; the
        ids of runs no longer running (ended elsewhere), whose events are dropped."""
        ids = sorted(batch)
        columns = _columns(batch)
        # One notification names many runs (a payload holds up to 8,000 bytes). A run that turns out to
        # have ended elsewhere is named too; its followers read again and find that.
        payloads = [",".join(ids[i : i + 150]) for i in range(0, len(ids), 150)]
        async with self.pool.connection() as conn, conn.pipeline():
            # Locked in id order, so two writers never wait on each other in a circle; the insert keeps
            # the events of the runs locked as still running.
            cur = await conn.execute(
                "WITH running AS (SELECT id FROM runs WHERE id = ANY(%s) AND status = 'running' ORDER BY id FOR UPDATE),"
                " stored AS (INSERT INTO run_events (run_id, seq, event, data)"
                " SELECT * FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[]) AS e(run_id, seq, event, data)"
                " WHERE e.run_id IN (SELECT id FROM running))"
                " SELECT id FROM running",
                (ids, *columns),
            )
            await conn.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p", (CHANNEL, payloads))
            running = {row["id"] for row in await cur.fetchall()}
        return set(batch) - running

    async def renew(self, run_ids: list[str]) -> list[str]:
        """Extend the leases of this process's runs; returns the ids someone asked to cancel."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE runs SET lease_until = now() + make_interval(secs => %s)"
                " WHERE id = ANY(%s) AND status = 'running' RETURNING id, cancel_requested",
                (self.lease_seconds, run_ids),
            )
            return [row["id"] for row in await cur.fetchall() if row["cancel_requested"]]

    async def expire(self) -> None:
        """Delete runs (and, by cascade, their events) finished longer ago than the retention period."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "DELETE FROM runs WHERE finished_at < now() - make_interval(secs => %s)", (self.retention_seconds,)
            )

    async def request_cancel(self, run_id: str) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("UPDATE runs SET cancel_requested = true WHERE id = %s AND status = 'running'", (run_id,))
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, CANCEL + run_id))

    async def thread_busy(self, thread_id: str) -> bool:
        """Whether the thread has a running run (a dead process's run is marked interrupted first)."""
        async with self.pool.connection() as conn, conn.transaction():
            await self._interrupt_expired(conn, "thread_id = %s", (thread_id,))
            cur = await conn.execute("SELECT 1 FROM runs WHERE thread_id = %s AND status = 'running'", (thread_id,))
            return await cur.fetchone() is not None

    async def _interrupt_expired(self, conn: psycopg.AsyncConnection, where: str, params: tuple) -> int:
        """Mark runs whose lease lapsed `interrupted`, with their last event; how many there were."""
        cur = await conn.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = now()"
            f" WHERE status = 'running' AND lease_until < now() AND {where} RETURNING id",
            params,
        )
        interrupted = [row["id"] for row in await cur.fetchall()]
        for run_id in interrupted:
            await conn.execute(
                "INSERT INTO run_events (run_id, seq, event, data)"
                " SELECT %s, coalesce(max(seq), -1) + 1, 'error', %s FROM run_events WHERE run_id = %s",
                (run_id, _dump(INTERRUPTED), run_id),
            )
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, run_id))
            log.warning("run %s interrupted: its process stopped renewing the lease", run_id)
        return len(interrupted)

    # -- reading ------------------------------------------------------------------------------------

    async def read(self, run_id: str, *, reader_id: str, after: int | None = None) -> tuple[RunRecord | None, list[StoredEvent]]:
        """The run (None if unknown, not the reader's or expired) and its events after `after` (none if None)."""
        async with self.pool.connection() as conn:
            record = await self._record(conn, run_id, reader_id)
            if record is not None and record.lease_expired:
                async with conn.transaction():
                    await self._interrupt_expired(conn, "id = %s", (run_id,))
                record = await self._record(conn, run_id, reader_id)
            if record is None or after is None:
                return record, []
            # Read after the record: if it said finished, every event is already visible.
            cur = await conn.execute(
                "SELECT seq, event, data FROM run_events WHERE run_id = %s AND seq > %s ORDER BY seq", (run_id, after)
            )
            return record, [StoredEvent(r["seq"], r["event"], json.loads(r["data"])) for r in await cur.fetchall()]

    async def _record(self, conn: psycopg.AsyncConnection, run_id: str, reader_id: str) -> RunRecord | None:
        cur = await conn.execute(
            "SELECT id, thread_id, reader_id, status, lease_until < now() AS lease_expired,"
            " (SELECT coalesce(max(seq), -1) + 1 FROM run_events WHERE run_id = runs.id) AS events"
            " FROM runs WHERE id = %s AND reader_id = %s"
            " AND (finished_at IS NULL OR finished_at > now() - make_interval(secs => %s))",
            (run_id, reader_id, self.retention_seconds),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        row["lease_expired"] = bool(row["lease_expired"]) and row["status"] == "running"
        return RunRecord(**row)


def _columns(batch: dict[str, list[StoredEvent]]) -> tuple[list, list, list, list]:
    """The events of a batch as the four arrays `unnest` takes: run ids, sequence numbers, names, JSON."""
    columns: tuple[list, list, list, list] = ([], [], [], [])
    for run_id, events in batch.items():
        for e in events:
            columns[0].append(run_id)
            columns[1].append(e.seq)
            columns[2].append(e.event)
            columns[3].append(_dump(e.data))
    return columns


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)
