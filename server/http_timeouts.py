"""A deadline for receiving each HTTP request, so slow or half-sent requests cannot hold sockets open.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`), but it has no limit on how long
a request may take to arrive: a client that opens a connection and sends nothing, or sends its
headers a byte at a time, or starts a body and stops, keeps a socket and a file descriptor for good.
This protocol gives every request `seconds` from its connection (or the previous response) until it
has arrived whole — headers and body — and closes the connection otherwise. Streaming responses are
not affected: the deadline ends when the request is in, however long the answer takes.

Behind a reverse proxy, set the proxy's own limits too (see docs/scale-out.md).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from booktutor.server.settings import get_settings


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a per-request receive deadline (BOOKTUTOR_REQUEST_TIMEOUT_SECONDS).

    httptools (llhttp, in C) rather than h11: every streamed event is one `send`, and h11's pure-Python
    framing cost several times more CPU per event. Named to uvicorn by its import path (`http=`), so
    worker processes load it too.
    """

    _deadline: asyncio.TimerHandle | None = None
    # Requests received whole and not yet answered (more than one only when a client pipelines).
    _unanswered = 0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = get_settings().request_timeout_seconds

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        # A request answered before its body finished (a 413, say) is not waiting for an answer.
        answered = self.cycle.response_complete
        super().on_message_complete()
        if not answered:
            self._unanswered += 1
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._unanswered = max(0, self._unanswered - 1)
        # The next request on this keep-alive connection gets its own deadline.
        if not self._unanswered:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self._unanswered and not self.transport.is_closing():
            self.logger.info("closing a connection whose request did not arrive within %ss", self.request_timeout)
            self.transport.close()


PROTOCOL = f"{__name__}:DeadlineHttpToolsProtocol"
