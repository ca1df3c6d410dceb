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


def sse_event(*, id: str | None, event: str, data: dict[str, Any]) -> ServerSentEvent:
    """One named event with its id (None: an event that is not part of the run, such as an outage);
    non-ASCII text (Urdu, Arabic) is sent as is, not escaped."""
    return ServerSentEvent(data=json.dumps({"type": event, **data}, ensure_ascii=False), event=event, id=id)


def sse_response(
    events: AsyncIterator[ServerSentEvent], *, reader: Reader, heartbeat: float, headers: dict[str, str] | None = None
) -> EventSourceResponse:
    """A stream response that proxies do not buffer, with a comment ping every `heartbeat` seconds."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
    if reader.visitor_id:
        # A returned response does not carry headers set by dependencies, so repeat the visitor id here.
        headers["X-Visitor-Id"] = reader.visitor_id
    return EventSourceResponse(events, ping=heartbeat, headers=headers)
