"""Runs: one turn executing in the background, its events buffered so a client can drop and resume.

A run belongs to the process, not to the HTTP request that started it: a client that disconnects
leaves the run going (and checkpointed), `GET /v1/runs/{id}/stream` with `Last-Event-ID` replays what
it missed, and only an explicit cancel stops it. Finished runs stay replayable for
`run_retention_seconds`. One run at a time per thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from booktutor.graphs.turn import TurnInput
from booktutor.server.errors import ApiError
from booktutor.server.limits import ConcurrencyLimit, ServerBusy
from booktutor.server.observability import Metrics, run_id_var, thread_id_var
from booktutor.server.tutor import Tutor
from booktutor.tools.errors import BooktutorError

log = logging.getLogger("booktutor.runs")


@dataclass
class Event:
    """One stream event; `id` is `<run id>:<sequence>` so a resume can be checked against its run."""

    id: str
    event: str
    data: dict[str, Any]


@dataclass
class Run:
    id: str
    thread_id: str
    reader_id: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    status: str = "running"
    events: list[Event] = field(default_factory=list)
    task: asyncio.Task | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def emit(self, event: str, **data: Any) -> Event:
        item = Event(id=f"{self.id}:{len(self.events)}", event=event, data=data)
        self.events.append(item)
        return item

    async def publish(self, event: str, **data: Any) -> Event:
        async with self._changed:
            item = self.emit(event, **data)
            self._changed.notify_all()
        return item

    async def finish(self, status: str) -> None:
        async with self._changed:
            self.status = status
            self.finished = time.monotonic()
            self._changed.notify_all()

    async def follow(self, after: int = -1) -> AsyncIterator[Event]:
        """Events with a sequence number above `after`, then every new one until the run ends."""
        position = after + 1
        while True:
            async with self._changed:
                while position >= len(self.events) and self.finished is None:
                    await self._changed.wait()
                pending = self.events[position:]
                done = self.finished is not None
            for item in pending:
                yield item
            position += len(pending)
            if done and position >= len(self.events):
                return

    def public(self) -> dict[str, Any]:
        return {"run_id": self.id, "thread_id": self.thread_id, "status": self.status, "events": len(self.events)}


class RunManager:
    """Starts, tracks, replays and cancels the runs of this process."""

    def __init__(self, tutor: Tutor, *, max_concurrent: int, retention_seconds: float, metrics: Metrics) -> None:
        self.tutor = tutor
        self.slots = ConcurrencyLimit(max_concurrent)
        self.retention_seconds = retention_seconds
        self.metrics = metrics
        # Runs are tasks on the loop that served the lifespan; tests and shutdown reach them through it.
        self.loop = asyncio.get_running_loop()
        self.runs: dict[str, Run] = {}
        self.active_by_thread: dict[str, str] = {}
        self._reserved: set[str] = set()

    def _prune(self) -> None:
        now = time.monotonic()
        for run_id in [r.id for r in self.runs.values() if r.finished and now - r.finished > self.retention_seconds]:
            del self.runs[run_id]

    def check_thread_free(self, thread_id: str | None) -> None:
        if thread_id and (thread_id in self.active_by_thread or thread_id in self._reserved):
            raise ApiError(
                "thread_busy",
                "This thread is still answering the previous message. Wait for it to finish or cancel it.",
                headers={"Retry-After": "1"},
            )

    async def start(
        self,
        turn: TurnInput,
        *,
        reader_id: str,
        thread_id: str | None,
        profile: dict[str, Any] | None = None,
    ) -> Run:
        """Validate, claim the thread, and start the run in the background; returns at once."""
        self._prune()
        self.check_thread_free(thread_id)
        if not self.slots.try_acquire():
            raise ServerBusy()
        # Reserve the thread across the awaits below, so a double send cannot slip in between.
        reservation = thread_id or f"new:{uuid.uuid4()}"
        self._reserved.add(reservation)
        try:
            thread_id, is_new = await self.tutor.begin_turn(turn, thread_id=thread_id, reader_id=reader_id)
        except BaseException:
            self.slots.release()
            raise
        finally:
            self._reserved.discard(reservation)
        run = Run(id=str(uuid.uuid4()), thread_id=thread_id, reader_id=reader_id)
        self.runs[run.id] = run
        self.active_by_thread[thread_id] = run.id
        run.emit("metadata", run_id=run.id, thread_id=thread_id, new_thread=is_new)
        run.task = asyncio.create_task(self._execute(run, turn, is_new=is_new, profile=profile), name=f"run-{run.id}")
        return run

    async def _execute(self, run: Run, turn: TurnInput, *, is_new: bool, profile: dict[str, Any] | None) -> None:
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
            ):
                if kind == "token":
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                        self.metrics.time_to_first_token.observe(first_token_at - run.started)
                    await run.publish("token", text=data["text"])
                elif kind == "step":
                    if data.get("step") == "rewrite_query":
                        rewrite_done = time.monotonic()
                    await run.publish("step", **data)
                elif kind == "sources":
                    if rewrite_done is not None:
                        self.metrics.retrieval_seconds.observe(time.monotonic() - rewrite_done)
                    await run.publish("sources", **data)
                elif kind == "done":
                    result = data
                    if result.error:
                        self.metrics.errors.labels(result.error["code"]).inc()
                        await run.publish("error", message_id=result.message_id, **result.error)
                    else:
                        await run.publish(
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
            await run.publish("error", code="cancelled", message="The run was cancelled.")
        except BooktutorError as error:
            self.metrics.errors.labels(error.code).inc()
            await run.publish("error", **error.as_dict())
        except Exception:
            log.exception("run failed")
            self.metrics.errors.labels("internal_error").inc()
            await run.publish("error", code="internal_error", message="Something went wrong while answering.")
        finally:
            self.active_by_thread.pop(run.thread_id, None)
            self.slots.release()
            self.metrics.run_seconds.labels(status).observe(time.monotonic() - run.started)
            await run.finish(status)

    def get(self, run_id: str, *, reader_id: str) -> Run:
        self._prune()
        run = self.runs.get(run_id)
        if run is None or run.reader_id != reader_id:
            raise ApiError("run_not_found", "No such run (it may have expired).")
        return run

    def resume_position(self, run: Run, last_event_id: str | None) -> int:
        """The sequence number a client last saw, from its Last-Event-ID; -1 replays everything."""
        if not last_event_id:
            return -1
        run_part, _, sequence = last_event_id.rpartition(":")
        if run_part != run.id or not sequence.isdigit():
            raise ApiError("invalid_last_event_id", "Last-Event-ID does not belong to this run.")
        if int(sequence) >= len(run.events):
            raise ApiError("invalid_last_event_id", "Last-Event-ID is ahead of this run's events.")
        return int(sequence)

    async def cancel(self, run_id: str, *, reader_id: str) -> Run:
        run = self.get(run_id, reader_id=reader_id)
        if run.finished is not None or run.task is None:
            raise ApiError("run_finished", f"The run already ended ({run.status}).")
        run.task.cancel()
        await asyncio.gather(run.task, return_exceptions=True)
        return run

    async def shutdown(self, grace_seconds: float = 10) -> None:
        """Let running turns finish (they are checkpointed as they go), cancel what is left."""
        tasks = [r.task for r in self.runs.values() if r.task and not r.task.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
