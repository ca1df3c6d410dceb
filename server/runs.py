"""Runs: one turn executing in the background, its events stored so any process can serve them.

A run belongs to the server, not to the HTTP request that started it: a client that disconnects
leaves the run going (and checkpointed), `GET /v1/runs/{id}/stream` with `Last-Event-ID` replays what
it missed — on this process or any other sharing the database — and only an explicit cancel stops it.
The process running the turn writes its events to Postgres in short batches (see `RunStore`) and
renews a lease; when it dies, the lease lapses and the run reads as `interrupted`. Finished runs stay
replayable for `run_retention_seconds`. One run at a time per thread, across processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from booktutor.graphs.turn import TurnInput
from booktutor.server.db import is_outage
from booktutor.server.errors import ApiError
from booktutor.server.limits import ConcurrencyLimit, ServerBusy
from booktutor.server.observability import Metrics, run_id_var, thread_id_var
from booktutor.server.run_store import RunGone, RunRecord, RunStore, StoredEvent, ThreadBusy
from booktutor.server.tutor import Tutor
from booktutor.tools.errors import BooktutorError

log = logging.getLogger("booktutor.runs")

DATABASE_UNAVAILABLE = {"code": "database_unavailable", "message": "The database is unreachable; try again shortly."}


@dataclass
class Event:
    """One stream event; `id` is `<run id>:<sequence>` so a resume can be checked against its run."""

    id: str | None
    event: str
    data: dict[str, Any]


@dataclass
class LocalRun:
    """A run executing in this process: its task and the events not yet written."""

    id: str
    thread_id: str
    reader_id: str
    started: float = field(default_factory=time.monotonic)
    next_seq: int = 1
    pending: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task | None = None
    flush: asyncio.Task | None = None
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The final status when the database could not take it yet; the heartbeat retries.
    unsaved_status: str | None = None


class RunManager:
    """Starts runs in this process; replays, follows, reports and cancels any run in the database."""

    def __init__(
        self,
        tutor: Tutor,
        store: RunStore,
        *,
        max_concurrent: int,
        metrics: Metrics,
        flush_seconds: float = 0.01,
        poll_seconds: float = 1.0,
    ) -> None:
        self.tutor = tutor
        self.store = store
        self.slots = ConcurrencyLimit(max_concurrent)
        self.metrics = metrics
        self.flush_seconds = flush_seconds
        # Followers also look every `poll_seconds` without a notification, to notice a lapsed lease.
        self.poll_seconds = poll_seconds
        # Runs are tasks on the loop that served the lifespan; tests and shutdown reach them through it.
        self.loop = asyncio.get_running_loop()
        self.runs: dict[str, LocalRun] = {}
        self.active_by_thread: dict[str, str] = {}
        store.on_cancel = self._cancel_local
        self._heartbeat = asyncio.create_task(self._renew_forever(), name="runs-heartbeat")

    @staticmethod
    def owner_name() -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    # -- starting and executing ---------------------------------------------------------------------

    async def start(
        self,
        turn: TurnInput,
        *,
        reader_id: str,
        thread_id: str | None,
        profile: dict[str, Any] | None = None,
    ) -> str:
        """Validate, check ownership, claim the thread, and start the run in the background; its id."""
        if not self.slots.try_acquire():
            raise ServerBusy()
        run_id = str(uuid.uuid4())
        try:
            # Ownership first (inside begin_turn): another reader's thread is not found, never busy.
            thread_id, is_new = await self.tutor.begin_turn(turn, thread_id=thread_id, reader_id=reader_id)
            try:
                await self.store.claim(
                    run_id=run_id,
                    thread_id=thread_id,
                    reader_id=reader_id,
                    metadata={"run_id": run_id, "thread_id": thread_id, "new_thread": is_new},
                )
            except ThreadBusy:
                raise ApiError(
                    "thread_busy",
                    "This thread is still answering the previous message. Wait for it to finish or cancel it.",
                    headers={"Retry-After": "1"},
                ) from None
            except BaseException:
                if is_new:
                    # Nothing half-written: a new thread whose run could not be recorded goes away.
                    await asyncio.shield(self._forget_thread(thread_id))
                raise
            try:
                # The question is stored before the reader hears of the run (the `metadata` event), so
                # from then on a crash can lose the answer but never the question.
                await self.tutor.save_question(turn, thread_id=thread_id)
            except BaseException:
                await asyncio.shield(self._abandon(run_id, thread_id, is_new=is_new))
                raise
        except BaseException:
            self.slots.release()
            raise
        run = LocalRun(id=run_id, thread_id=thread_id, reader_id=reader_id)
        self.runs[run.id] = run
        self.active_by_thread[thread_id] = run.id
        run.task = asyncio.create_task(self._execute(run, turn, is_new=is_new, profile=profile), name=f"run-{run.id}")
        return run.id

    async def check_thread_free(self, thread_id: str) -> None:
        if await self.store.thread_busy(thread_id):
            raise ApiError(
                "thread_busy",
                "This thread is still answering the previous message. Wait for it to finish or cancel it.",
                headers={"Retry-After": "1"},
            )

    async def _abandon(self, run_id: str, thread_id: str, *, is_new: bool) -> None:
        """Undo a run that could not save its question: free the thread, drop a thread made for it."""
        try:
            await self.store.append(run_id, [], status="error")
        except Exception:
            log.warning("run %s could not be closed; its lease will lapse", run_id)
        if is_new:
            await self._forget_thread(thread_id)

    async def _forget_thread(self, thread_id: str) -> None:
        try:
            await self.tutor.delete_thread(thread_id)
        except Exception:
            log.warning("could not remove the new thread %s of a run that did not start", thread_id)

    def _publish(self, run: LocalRun, event: str, **data: Any) -> None:
        """Queue an event; it is written with whatever else arrives in the next few milliseconds."""
        run.pending.append((run.next_seq, event, data))
        run.next_seq += 1
        if run.flush is None:
            run.flush = asyncio.create_task(self._flush_soon(run))

    async def _flush_soon(self, run: LocalRun) -> None:
        await asyncio.sleep(self.flush_seconds)
        run.flush = None
        try:
            await self._write(run)
        except RunGone:
            # Ended elsewhere (its lease lapsed while this process was stalled): stop answering.
            if run.task and not run.task.done():
                run.task.cancel()
        except Exception as exc:
            # The events stay queued and go with the next batch; the turn itself fails if Postgres is down.
            log.warning("could not store run events yet: %s", exc)

    async def _write(self, run: LocalRun, *, status: str | None = None) -> None:
        # One writer at a time per run, so batches land in order.
        async with run.write_lock:
            batch = run.pending
            if not batch and status is None:
                return
            run.pending = []
            try:
                await self.store.append(run.id, batch, status=status)
            except RunGone:
                raise
            except BaseException:
                run.pending = batch + run.pending
                raise
        self.store.wake(run.id)

    async def _execute(self, run: LocalRun, turn: TurnInput, *, is_new: bool, profile: dict[str, Any] | None) -> None:
        thread_id_var.set(run.thread_id)
        run_id_var.set(run.id)
        status = "error"
        first_token_at: float | None = None
        rewrite_done: float | None = None
        try:
            async for kind, data in self.tutor.stream_turn(
                turn,
                thread_id=run.thread_id,
                is_new=is_new,
                profile=profile,
                metadata={"run_id": run.id, "reader_id": run.reader_id},
                question_saved=True,
            ):
                if kind == "token":
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                        self.metrics.time_to_first_token.observe(first_token_at - run.started)
                    self._publish(run, "token", text=data["text"])
                elif kind == "step":
                    if data.get("step") == "rewrite_query":
                        rewrite_done = time.monotonic()
                    self._publish(run, "step", **data)
                elif kind == "sources":
                    if rewrite_done is not None:
                        self.metrics.retrieval_seconds.observe(time.monotonic() - rewrite_done)
                    self._publish(run, "sources", **data)
                elif kind == "done":
                    result = data
                    if result.error:
                        self.metrics.errors.labels(result.error["code"]).inc()
                        self._publish(run, "error", message_id=result.message_id, **result.error)
                    else:
                        self._publish(
                            run,
                            "done",
                            message_id=result.message_id,
                            thread_id=result.thread_id,
                            citations=result.citations,
                            language=result.language,
                            direction=result.direction,
                            model=result.model,
                            turn=result.turn,
                        )
                    status = "error" if result.error else "done"
        except asyncio.CancelledError:
            status = "cancelled"
            self._publish(run, "error", code="cancelled", message="The run was cancelled.")
        except BooktutorError as error:
            self.metrics.errors.labels(error.code).inc()
            self._publish(run, "error", **error.as_dict())
        except Exception as exc:
            if is_outage(exc):
                self.metrics.errors.labels("database_unavailable").inc()
                self._publish(run, "error", **DATABASE_UNAVAILABLE)
            else:
                log.exception("run failed")
                self.metrics.errors.labels("internal_error").inc()
                self._publish(run, "error", code="internal_error", message="Something went wrong while answering.")
        finally:
            self.active_by_thread.pop(run.thread_id, None)
            self.slots.release()
            self.metrics.run_seconds.labels(status).observe(time.monotonic() - run.started)
            await asyncio.shield(self._finish(run, status))

    async def _finish(self, run: LocalRun, status: str) -> None:
        if run.flush is not None:
            run.flush.cancel()
            run.flush = None
        try:
            await self._write(run, status=status)
        except RunGone:
            pass
        except Exception as exc:
            log.warning("run %s ended (%s) but could not be stored yet: %s", run.id, status, exc)
            run.unsaved_status = status
            return
        self.runs.pop(run.id, None)

    async def _renew_forever(self) -> None:
        """Renew this process's leases, store endings the database missed, expire old runs."""
        interval = self.store.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                for run in [r for r in self.runs.values() if r.unsaved_status]:
                    status, run.unsaved_status = run.unsaved_status, None
                    await self._finish(run, status)
                live = [r.id for r in self.runs.values()]
                if live:
                    for run_id in await self.store.renew(live):
                        self._cancel_local(run_id)
                await self.store.expire()
            except Exception as exc:
                log.debug("run heartbeat failed: %s", exc)

    # -- reading and following ----------------------------------------------------------------------

    async def get(self, run_id: str, *, reader_id: str) -> RunRecord:
        record, _ = await self.store.read(run_id, reader_id=reader_id)
        if record is None:
            raise ApiError("run_not_found", "No such run (it may have expired).")
        return record

    @staticmethod
    def resume_position(record: RunRecord, last_event_id: str | None) -> int:
        """The sequence number a client last saw, from its Last-Event-ID; -1 replays everything."""
        if not last_event_id:
            return -1
        run_part, _, sequence = last_event_id.rpartition(":")
        if run_part != record.id or not sequence.isdigit():
            raise ApiError("invalid_last_event_id", "Last-Event-ID does not belong to this run.")
        if int(sequence) >= record.events:
            raise ApiError("invalid_last_event_id", "Last-Event-ID is ahead of this run's events.")
        return int(sequence)

    async def follow(self, run_id: str, *, reader_id: str, after: int = -1) -> AsyncIterator[Event]:
        """Events with a sequence number above `after`, then every new one until the run ends.

        With the database unreachable the stream ends with a `database_unavailable` error event. It
        carries the id of the last event delivered (none if nothing was), so a client resuming with
        Last-Event-ID once the database is back gets exactly what it missed.
        """
        position = after
        while True:
            with self.store.watch(run_id) as news:
                try:
                    record, events = await self.store.read(run_id, reader_id=reader_id, after=position)
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    last_seen = f"{run_id}:{position}" if position >= 0 else None
                    yield Event(id=last_seen, event="error", data=dict(DATABASE_UNAVAILABLE))
                    return
                for item in events:
                    position = item.seq
                    yield _event(run_id, item)
                if record is None or record.status != "running":
                    return
                try:
                    await asyncio.wait_for(news.wait(), timeout=self.poll_seconds)
                except asyncio.TimeoutError:
                    pass

    # -- cancelling and shutting down ---------------------------------------------------------------

    def _cancel_local(self, run_id: str) -> None:
        run = self.runs.get(run_id)
        if run is not None and run.task is not None and not run.task.done():
            run.task.cancel()

    async def cancel(self, run_id: str, *, reader_id: str) -> RunRecord:
        record = await self.get(run_id, reader_id=reader_id)
        if record.status != "running":
            raise ApiError("run_finished", f"The run already ended ({record.status}).")
        local = self.runs.get(run_id)
        if local is not None and local.task is not None:
            local.task.cancel()
            await asyncio.gather(local.task, return_exceptions=True)
        else:
            # Another process runs it: ask through the database, then wait for it to say it stopped.
            await self.store.request_cancel(run_id)
        deadline = time.monotonic() + self.store.lease_seconds + 2 * self.poll_seconds
        while time.monotonic() < deadline:
            with self.store.watch(run_id) as news:
                record = await self.get(run_id, reader_id=reader_id)
                if record.status != "running":
                    return record
                try:
                    await asyncio.wait_for(news.wait(), timeout=self.poll_seconds)
                except asyncio.TimeoutError:
                    pass
        return record

    async def shutdown(self, grace_seconds: float = 10) -> None:
        """Let running turns finish (they are checkpointed as they go), cancel what is left."""
        tasks = [r.task for r in self.runs.values() if r.task and not r.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._heartbeat.cancel()
        await asyncio.gather(self._heartbeat, return_exceptions=True)


def _event(run_id: str, item: StoredEvent) -> Event:
    return Event(id=f"{run_id}:{item.seq}", event=item.event, data=item.data)
