"""Runs: one turn executing in the background, its events stored so any process can serve them.

A run belongs to the server, not to the HTTP request that started it: a client that disconnects
leaves the run going (and checkpointed), `GET /v1/runs/{id}/stream` with `Last-Event-ID` replays what
it missed — on this process or any other sharing the database — and only an explicit cancel stops it.
The process running a turn keeps the run's events in memory and serves its own readers from there, so
a token costs a list append, not a database round trip; every `flush_seconds` it writes what all its
runs produced since the last write in one transaction (see `RunStore.append_many`), for readers on other
processes and for replay. It renews a lease; when it dies, the lease lapses and the run reads as
`interrupted`. Finished runs stay replayable for `run_retention_seconds`. One run at a time per thread,
across processes.
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
    """A run executing in this process: every event it published, and how many are stored."""

    id: str
    thread_id: str
    reader_id: str
    started: float = field(default_factory=time.monotonic)
    # Sequence numbers are list positions: event 0 is the `metadata` event `claim` stored.
    events: list[StoredEvent] = field(default_factory=list)
    stored: int = 1
    # Set (then replaced by a fresh one) whenever events arrive, the run ends or it is lost.
    news: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    # The position of the run's last event while it is held back from readers and batches, until the
    # run's status is stored with it (see `_finish`).
    held: int | None = None
    # Ended by someone else (its lease lapsed while this process stalled): readers go to the database.
    gone: bool = False
    task: asyncio.Task | None = None
    # Answer text not yet published, and when a token event last went out (see `_publish_token`).
    unsent_text: str = ""
    unsent_timer: asyncio.TimerHandle | None = None
    last_token_at: float = 0.0
    # The final status when the database could not take it yet; the heartbeat retries.
    unsaved_status: str | None = None

    def notify(self) -> None:
        self.news.set()
        self.news = asyncio.Event()


class RunManager:
    """Starts runs in this process; replays, follows, reports and cancels any run in the database."""

    def __init__(
        self,
        tutor: Tutor,
        store: RunStore,
        *,
        max_concurrent: int,
        metrics: Metrics,
        flush_seconds: float = 0.025,
        coalesce_seconds: float = 0.01,
        ending_grace: float = 1.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.tutor = tutor
        self.store = store
        self.slots = ConcurrencyLimit(max_concurrent)
        self.starting = asyncio.Semaphore(store.pool.max_size)
        self.metrics = metrics
        # How often this process writes its runs' new events (one transaction for all of them); readers
        # on other processes see events that much later, readers on this one at once.
        self.flush_seconds = flush_seconds
        # Answer text arriving within this long of the previous token event joins the next one: a
        # model streaming in bursts (or a loop that fell behind) sends fewer, larger events.
        self.coalesce_seconds = coalesce_seconds
        self.ending_grace = ending_grace
        self._flush: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task | None = None
        # One writer at a time, so each run's events land in order.
        self._write_lock = asyncio.Lock()
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
    ) -> str:
        """Validate, check ownership, claim the thread, and start the run in the background; its id."""
        if not self.slots.try_acquire():
            raise ServerBusy()
        run_id = str(uuid.uuid4())
        try:
            # Starting takes a few round trips on pooled connections. When hundreds of readers arrive
            # at once they wait their turn here, not in the pools, whose short waits are there to show
            # an outage within seconds and would fail starts that only had to queue.
            async with self.starting:
                thread_id, is_new, profile, metadata = await self._begin(
                    turn, run_id=run_id, thread_id=thread_id, reader_id=reader_id
                )
        except BaseException:
            self.slots.release()
            raise
        run = LocalRun(id=run_id, thread_id=thread_id, reader_id=reader_id)
        run.events.append(StoredEvent(0, "metadata", metadata))
        self.runs[run.id] = run
        self.active_by_thread[thread_id] = run.id
        run.task = asyncio.create_task(self._execute(run, turn, is_new=is_new, profile=profile), name=f"run-{run.id}")
        return run.id

    async def _begin(
        self, turn: TurnInput, *, run_id: str, thread_id: str | None, reader_id: str
    ) -> tuple[str, bool, dict[str, Any] | None, dict[str, Any]]:
        """Find or make the thread, record the run, save the question: (thread id, new?, the reader's
        profile, metadata)."""
        # Ownership first (inside begin_turn): another reader's thread is not found, never busy. The
        # profile comes from our own store (kept per reader, visitors included), never from the request.
        thread_id, is_new, profile = await self.tutor.begin_turn(turn, thread_id=thread_id, reader_id=reader_id)
        metadata = {"run_id": run_id, "thread_id": thread_id, "new_thread": is_new}
        try:
            await self.store.claim(run_id=run_id, thread_id=thread_id, reader_id=reader_id, metadata=metadata)
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
        return thread_id, is_new, profile, metadata

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
        """Hand an event to this process's readers now; it is stored with the next batch."""
        if event != "token":
            self._send_text(run)
        run.events.append(StoredEvent(len(run.events), event, data))
        run.notify()
        if self._flush is None:
            self._flush = self.loop.call_later(self.flush_seconds, self._start_flush)

    def _publish_token(self, run: LocalRun, text: str) -> None:
        """Answer text goes out at once unless a token event went out within `coalesce_seconds`; then
        it waits for the rest of that interval and goes with whatever else arrived meanwhile."""
        run.unsent_text += text
        if run.unsent_timer is not None:
            return
        wait = run.last_token_at + self.coalesce_seconds - time.monotonic()
        if wait <= 0:
            self._send_text(run)
        else:
            run.unsent_timer = self.loop.call_later(wait, self._send_text, run)

    def _send_text(self, run: LocalRun) -> None:
        if run.unsent_timer is not None:
            run.unsent_timer.cancel()
            run.unsent_timer = None
        if run.unsent_text:
            text, run.unsent_text = run.unsent_text, ""
            run.last_token_at = time.monotonic()
            self._publish(run, "token", text=text)

    def _start_flush(self) -> None:
        self._flush = None
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._write_batch())
        else:
            # A write is still going: look again once it could have finished.
            self._flush = self.loop.call_later(self.flush_seconds, self._start_flush)

    async def _write_batch(self) -> None:
        """Store every local run's new events in one transaction; runs ended elsewhere stop."""
        async with self._write_lock:
            batch = {
                run.id: run.events[run.stored : run.held]
                for run in self.runs.values()
                if (run.held if run.held is not None else len(run.events)) > run.stored
            }
            if not batch:
                return
            try:
                gone = await self.store.append_many(batch)
            except Exception as exc:
                # The events stay unstored and go with the next batch (or the run's final write).
                log.warning("could not store run events yet: %s", exc)
                if self._flush is None:
                    self._flush = self.loop.call_later(max(self.flush_seconds, 0.5), self._start_flush)
                return
            for run_id, events in batch.items():
                run = self.runs.get(run_id)
                if run is None:
                    continue
                if run_id in gone:
                    self._lose(run)
                else:
                    run.stored = max(run.stored, events[-1].seq + 1)

    def _lose(self, run: LocalRun) -> None:
        """The database says the run ended elsewhere: its readers follow the database, its task stops."""
        run.gone = True
        run.notify()
        if run.task and not run.task.done():
            run.task.cancel()

    async def _write_final(self, run: LocalRun, status: str) -> None:
        async with self._write_lock:
            upto = len(run.events)
            await self.store.append(run.id, run.events[run.stored : upto], status=status)
            run.stored = upto

    async def _execute(self, run: LocalRun, turn: TurnInput, *, is_new: bool, profile: dict[str, Any] | None) -> None:
        thread_id_var.set(run.thread_id)
        run_id_var.set(run.id)
        status = "error"
        # The run's last event (`done` or `error`): readers get it only once the run's status is
        # stored, so a reader who asks again on hearing it never finds the thread still busy.
        ending: tuple[str, dict[str, Any]] = ("error", {"code": "internal_error", "message": "Something went wrong while answering."})
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
                    self._publish_token(run, data["text"])
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
                        ending = ("error", {"message_id": result.message_id, **result.error})
                    else:
                        ending = (
                            "done",
                            {
                                "message_id": result.message_id,
                                "thread_id": result.thread_id,
                                "citations": result.citations,
                                "language": result.language,
                                "direction": result.direction,
                                "model": result.model,
                                "turn": result.turn,
                            },
                        )
                    status = "error" if result.error else "done"
        except asyncio.CancelledError:
            status = "cancelled"
            ending = ("error", {"code": "cancelled", "message": "The run was cancelled."})
        except BooktutorError as error:
            self.metrics.errors.labels(error.code).inc()
            ending = ("error", error.as_dict())
        except Exception as exc:
            if is_outage(exc):
                self.metrics.errors.labels("database_unavailable").inc()
                ending = ("error", dict(DATABASE_UNAVAILABLE))
            else:
                log.exception("run failed")
                self.metrics.errors.labels("internal_error").inc()
        finally:
            self.active_by_thread.pop(run.thread_id, None)
            self.slots.release()
            self.metrics.run_seconds.labels(status).observe(time.monotonic() - run.started)
            await asyncio.shield(self._finish(run, status, ending))

    async def _finish(self, run: LocalRun, status: str, ending: tuple[str, dict[str, Any]] | None = None) -> None:
        """Store the run's ending (its last event and its status), then let its readers hear it.

        A reader who asks again on hearing `done` must not find the thread still busy, so the ending
        waits for the status to be stored; with the database slow or down it goes out after
        `ending_grace` seconds anyway, and the status is stored when the database answers.
        """
        if ending is not None:
            self._send_text(run)
            run.held = len(run.events)
            run.events.append(StoredEvent(run.held, *ending))
        write = asyncio.ensure_future(self._write_final(run, status))
        await asyncio.wait({write}, timeout=self.ending_grace)
        run.held = None
        run.ended = True
        run.notify()
        try:
            await write
        except RunGone:
            # Its readers hear how the database says it ended, not how this process thought it did.
            self._lose(run)
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

    def resume_position(self, record: RunRecord, last_event_id: str | None) -> int:
        """The sequence number a client last saw, from its Last-Event-ID; -1 replays everything.

        A running run may have published more than it has stored yet (its process writes in batches),
        so while it runs a position past the stored events is accepted and the reader waits there. When
        that process died, what it had not stored is gone and the run ends with its `run_interrupted`
        event, which a reader who had seen further still gets.
        """
        if not last_event_id:
            return -1
        run_part, _, sequence = last_event_id.rpartition(":")
        if run_part != record.id or not sequence.isdigit():
            raise ApiError("invalid_last_event_id", "Last-Event-ID does not belong to this run.")
        seen = int(sequence)
        local = self.runs.get(record.id)
        if local is not None:
            published = len(local.events)
        elif record.status == "running":
            return seen
        elif record.status == "interrupted":
            return min(seen, record.events - 2)
        else:
            published = record.events
        if seen >= published:
            raise ApiError("invalid_last_event_id", "Last-Event-ID is ahead of this run's events.")
        return seen

    async def follow(self, run_id: str, *, reader_id: str, after: int = -1) -> AsyncIterator[Event]:
        """Events with a sequence number above `after`, then every new one until the run ends.

        A run executing in this process is read from memory; any other from the database.
        """
        run = self.runs.get(run_id)
        if run is not None and run.reader_id == reader_id:
            position = after
            while not run.gone:
                news = run.news
                for item in run.events[position + 1 : run.held]:
                    position = item.seq
                    yield _event(run_id, item)
                if run.ended:
                    return
                await news.wait()
            after = position
        async for item in self._follow_stored(run_id, reader_id=reader_id, after=after):
            yield item

    async def _follow_stored(self, run_id: str, *, reader_id: str, after: int) -> AsyncIterator[Event]:
        """Follow a run through the database: read, then wait for a notification (or `poll_seconds`).

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
        if self._flush is not None:
            self._flush.cancel()
        await asyncio.gather(self._heartbeat, *[t for t in [self._flushing] if t], return_exceptions=True)


def _event(run_id: str, item: StoredEvent) -> Event:
    return Event(id=f"{run_id}:{item.seq}", event=item.event, data=item.data)
