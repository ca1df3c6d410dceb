"""Chat and explain-a-selection as resumable Server-Sent Event streams; run replay and cancel."""

from __future__ import annotations

from typing import Any, AsyncIterator, Optional

from fastapi import APIRouter, Header, Query
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from booktutor.graphs.turn import TurnInput
from booktutor.server.auth import Reader
from booktutor.server.deps import CurrentReader, RunsDep, SettingsDep
from booktutor.server.runs import RunManager
from booktutor.server.sse import STREAM_RESPONSE, sse_event, sse_response
from booktutor.server.threads import THREAD_ID

router = APIRouter(prefix="/v1", tags=["chat"])

_THREAD_ID = Field(
    default=None,
    validation_alias=AliasChoices("thread_id", "session_id"),
    pattern=f"^{THREAD_ID.pattern}$",
    description="Continue this thread (`session_id` is accepted too); leave out to start one.",
)


class _TurnRequest(BaseModel):
    message: str
    selected_text: Optional[str]
    page: Optional[str]
    language: Optional[str]

    def turn(self) -> TurnInput:
        """The request's turn inputs as the one value the tutor and the graph take."""
        return TurnInput(message=self.message, selected_text=self.selected_text, page=self.page, language=self.language)


class ChatRequest(_TurnRequest):
    """A chat turn. Field names follow what book front ends already send."""

    # Front ends send extra fields (user ids, UI state); ignoring them loses nothing we store.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message: str = Field(validation_alias=AliasChoices("message", "question"), description="The reader's text.")
    thread_id: Optional[str] = _THREAD_ID
    selected_text: Optional[str] = Field(default=None, description="A passage the reader selected.")
    language: Optional[str] = Field(default=None, max_length=16, description="Answer language, e.g. `ur`.")
    page: Optional[str] = Field(default=None, max_length=1024, description="Doc path or URL the reader is on.")


class ExplainRequest(_TurnRequest):
    """Explain (or ask about) a selected passage."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    selected_text: str = Field(description="The passage to explain.")
    message: str = Field(
        default="Explain this passage.",
        validation_alias=AliasChoices("message", "question"),
        description="An optional question about the passage.",
    )
    thread_id: Optional[str] = _THREAD_ID
    language: Optional[str] = Field(default=None, max_length=16)
    page: Optional[str] = Field(default=None, max_length=1024)


def stream_url(run_id: str) -> str:
    return f"/v1/runs/{run_id}/stream"


def event_stream(
    runs: RunManager, run_id: str, reader: Reader, *, after: int, heartbeat: float
) -> EventSourceResponse:
    """The run's events from `after` on; a client that goes away stops reading, not the run."""

    async def events() -> AsyncIterator[bytes]:
        async for item in runs.follow(run_id, reader_id=reader.id, after=after):
            yield sse_event(id=item.id, event=item.event, data=item.data)

    return sse_response(events(), reader=reader, heartbeat=heartbeat, headers={"Content-Location": stream_url(run_id)})


async def _start(body: ChatRequest | ExplainRequest, reader: Reader, runs: RunManager, settings) -> EventSourceResponse:
    run_id = await runs.start(body.turn(), reader_id=reader.id, thread_id=body.thread_id)
    return event_stream(runs, run_id, reader, after=-1, heartbeat=settings.heartbeat_seconds)


@router.post("/chat", response_class=EventSourceResponse, responses=STREAM_RESPONSE)
async def chat(body: ChatRequest, reader: CurrentReader, runs: RunsDep, settings: SettingsDep):
    """Ask the tutor; the answer streams as `metadata`, `step`, `sources`, `token`…, `done` (or `error`)."""
    return await _start(body, reader, runs, settings)


@router.post("/explain", response_class=EventSourceResponse, responses=STREAM_RESPONSE)
async def explain(body: ExplainRequest, reader: CurrentReader, runs: RunsDep, settings: SettingsDep):
    """Explain a selected passage, streamed like `/v1/chat`."""
    return await _start(body, reader, runs, settings)


@router.get("/runs/{run_id}/stream", response_class=EventSourceResponse, responses=STREAM_RESPONSE)
async def resume(
    run_id: str,
    reader: CurrentReader,
    runs: RunsDep,
    settings: SettingsDep,
    last_event_id: Optional[str] = Header(default=None, alias="Last-Event-ID"),
    after: Optional[str] = Query(default=None, alias="last_event_id", description="Same as the Last-Event-ID header."),
):
    """Replay a run's events after `Last-Event-ID` (all of them without it), then follow it live."""
    record = await runs.get(run_id, reader_id=reader.id)
    position = runs.resume_position(record, last_event_id or after)
    return event_stream(runs, run_id, reader, after=position, heartbeat=settings.heartbeat_seconds)


@router.get("/runs/{run_id}")
async def run_status(run_id: str, reader: CurrentReader, runs: RunsDep) -> dict[str, Any]:
    """Whether a run is still going: `running`, `done`, `error`, `cancelled` or `interrupted`."""
    return (await runs.get(run_id, reader_id=reader.id)).public()


@router.post("/runs/{run_id}/cancel", status_code=202)
async def cancel(run_id: str, reader: CurrentReader, runs: RunsDep) -> dict[str, Any]:
    """Stop a running turn; what was checkpointed so far stays."""
    return (await runs.cancel(run_id, reader_id=reader.id)).public()
