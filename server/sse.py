"""How every stream is framed as Server-Sent Events: chat runs, their replay, and chapters.

Each event has an id (so a client can resume with Last-Event-ID), a name, and JSON data that repeats
the name as `type` (for clients that read only `data`). See docs/stream-protocol.md.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent

from booktutor.server.auth import Reader

# The OpenAPI description of a streaming route's 200 response.
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Named SSE events; see docs/stream-protocol.md."}
}


SEP = ServerSentEvent.DEFAULT_SEPARATOR


def sse_event(*, id: str | None, event: str, data: dict[str, Any]) -> bytes:
    """One named event with its id (None: an event that is not part of the run, such as an outage),
    framed as `ServerSentEvent` would frame it; non-ASCII text (Urdu, Arabic) is sent as is, not escaped.

    Framed here in one step because a stream sends one of these per token: JSON holds no raw line
    break, and ids and names are ours, so none of sse-starlette's line splitting is needed.
    """
    head = f"id: {id}{SEP}" if id is not None else ""
    return f"{head}event: {event}{SEP}data: {json.dumps({'type': event, **data}, ensure_ascii=False)}{SEP}{SEP}".encode()


def sse_response(
    events: AsyncIterator[bytes], *, reader: Reader, heartbeat: float, headers: dict[str, str] | None = None
) -> EventSourceResponse:
    """A stream response that proxies do not buffer, with a comment ping every `heartbeat` seconds."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
    if reader.visitor_id:
        # A returned response does not carry headers set by dependencies, so repeat the visitor id here.
        headers["X-Visitor-Id"] = reader.visitor_id
    return EventSourceResponse(events, ping=heartbeat, headers=headers)
