"""How the model clients reach an OpenAI-compatible server: the openai SDK's aiohttp transport, one per
event loop.

A streamed answer is one HTTP read per token, and the SDK's default transport (HTTPX on anyio) spent
about 150 µs of CPU on each; aiohttp, which the SDK offers as its `aiohttp` extra, about 50. Every
other step — requests, retries, status errors, timeouts, proxies from the environment — is still the
SDK's own client, built by `openai.DefaultAioHttpClient`.

An aiohttp session belongs to the event loop it was opened on, while a chat model is built once and
shared (the server has one loop; the CLI and the tests run several, one after another). So the clients
the SDK holds (`loop_local_http_client`) hand each request to the running loop's own session, one per
loop for the whole process (every role and endpoint shares its connection pool), closed when that loop
shuts down.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import httpx2
import openai


# Every open answer stream holds a connection. aiohttp's own default is 100 per session, the SDK's 1,000;
# a process serving a thousand streams also rewrites and translates while they run.
LIMITS = httpx2.Limits(max_connections=4096, max_keepalive_connections=100)


class _LoopLocalTransport(httpx2.AsyncBaseTransport):
    """Sends each request through an `openai.DefaultAioHttpClient` belonging to the running loop."""

    def __init__(self) -> None:
        self._clients: dict[asyncio.AbstractEventLoop, httpx2.AsyncClient] = {}
        # Kept so they are not collected: each closes its loop's client at that loop's shutdown.
        self._closers: dict[asyncio.AbstractEventLoop, AsyncIterator[None]] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = openai.DefaultAioHttpClient(limits=LIMITS)
            closer = self._closers[loop] = self._close_at_shutdown(loop, client)
            await anext(closer)
        return await client.send(request, stream=True)

    async def _close_at_shutdown(self, loop: asyncio.AbstractEventLoop, client: httpx2.AsyncClient) -> AsyncIterator[None]:
        # An async generator left suspended here is closed by `loop.shutdown_asyncgens()`, which
        # `asyncio.run` and uvicorn call before closing their loop: the one hook a loop offers for
        # "I am ending" that needs nothing from whoever runs it.
        try:
            yield
        finally:
            if self._clients.get(loop) is client:
                del self._clients[loop], self._closers[loop]
            await client.aclose()

    async def aclose(self) -> None:
        # One client closing (`AsyncOpenAI.close()`) must not cut the others' streams on this loop:
        # the sessions are the process's, and close with their loops.
        pass


_SESSIONS = _LoopLocalTransport()


def loop_local_http_client() -> httpx2.AsyncClient:
    """The HTTP client to give `openai.AsyncOpenAI(http_client=...)`: the SDK's default timeouts, aiohttp
    underneath, the running loop's session (shared by every client this returns)."""
    return openai.DefaultAsyncHttpxClient(transport=_SESSIONS)
