"""How a streamed chat completion reaches LangChain: as plain dicts, and one chunk per network read.

langchain-openai turns every chunk the SDK yields into a message chunk and a generation chunk (two
validated pydantic models, about 40 µs of CPU) and the answer node hands each on. A server that
sends tokens faster than a busy process reads them — a model without pacing, or a thousand streams on
one loop — leaves several in each read; text deltas that arrived together are joined here into one
chunk, so that work is paid per read, not per token, exactly when it would otherwise pile up. Every
other event (roles changing, tool calls, finish reasons, usage, errors) passes through as it came, in
order.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Iterable, Iterator

import openai
# The SDK's own SSE line splitter and decoder, subclassed below (openai is pinned below 4 for them).
from openai._streaming import ServerSentEvent, SSEDecoder, _SSELineDecoder
from openai.types.chat import ChatCompletionChunk

from booktutor.agents.endpoint import Endpoint
from booktutor.agents.transport import loop_local_http_client

PACE_ABOVE = 100
"""Model streams open in this process above which each waits PACE_SECONDS after a read before the next."""
PACE_SECONDS = 0.1
"""A busy process spends most of its CPU per network read of its model streams (the SDK's decoding and
langchain-openai's chunks): with a thousand streams of tokens 50 ms apart, most reads carry one token.
Reading each stream at most every 100 ms once more than a hundred are open makes each read carry the
tokens that arrived meanwhile, joined into one chunk (below), and the reader sees text every 100 ms
instead of every 50, as chat interfaces paint in steps anyway. Measured side by side with 300 such
streams: 226 against 373 µs of CPU a token; with 1,000 started at once, their first tokens' p95 68 s
against 91 (BENCHMARKS.md)."""
_open_streams = 0  # one process-wide count; a thread's event loop of its own counts in it too
_open_streams_lock = threading.Lock()  # `+=` on a global is not atomic between threads

# Delta fields a plain text chunk may carry besides its text; any other field ends a run of joins.
_TEXT_DELTA_FIELDS = frozenset({"content", "role", "refusal"})


class _ParsedEvent(ServerSentEvent):
    """An event whose JSON is parsed already: the SDK asks for `.json()` and gets the dict."""

    def __init__(self, parsed: dict[str, Any], data: str) -> None:
        super().__init__(data=data)
        self._parsed = parsed

    def json(self) -> Any:
        return self._parsed


def _text_delta(chunk: Any) -> dict[str, Any] | None:
    """The delta of a chunk that only adds text to choice 0, else None."""
    if not isinstance(chunk, dict) or chunk.get("usage") or chunk.get("error"):
        return None
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return None
    choice = choices[0]
    if not isinstance(choice, dict) or choice.get("finish_reason") or choice.get("logprobs"):
        return None
    delta = choice.get("delta")
    if (
        not isinstance(delta, dict)
        or not isinstance(delta.get("content"), str)
        or delta.get("refusal")
        or not delta.keys() <= _TEXT_DELTA_FIELDS
    ):
        return None
    return delta


def join_text_deltas(events: Iterable[ServerSentEvent]) -> Iterator[ServerSentEvent]:
    """The events of one read, consecutive text-only chunks of the same completion joined into one."""
    group: tuple[dict[str, Any], dict[str, Any], list[str], str] | None = None  # chunk, its delta, texts, data

    def flush() -> Iterator[ServerSentEvent]:
        nonlocal group
        if group is not None:
            chunk, delta, texts, data = group
            delta["content"] = "".join(texts)
            group = None
            yield _ParsedEvent(chunk, data)

    for event in events:
        if event.event or event.data.startswith("[DONE]"):
            yield from flush()
            yield event
            continue
        try:
            chunk = event.json()
        except ValueError:
            yield from flush()
            yield event  # the SDK raises its own error for it
            continue
        delta = _text_delta(chunk)
        if delta is None:
            yield from flush()
            yield _ParsedEvent(chunk, event.data)
        elif (
            group is not None
            and chunk.get("id") == group[0].get("id")
            and chunk.get("model") == group[0].get("model")
            and chunk["choices"][0].get("index") == group[0]["choices"][0].get("index")
            and delta.get("role", group[1].get("role")) == group[1].get("role")
        ):
            group[2].append(delta["content"])
        else:
            yield from flush()
            group = (chunk, delta, [delta["content"]], event.data)
    yield from flush()


class ReadJoiningDecoder(SSEDecoder):
    """The SDK's SSE decoder, yielding each read's events with their text deltas joined."""

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
        global _open_streams
        lines = _SSELineDecoder()
        with _open_streams_lock:
            _open_streams += 1
        try:
            async for read in iterator:
                events = list(self._decode_lines(lines.feed(read)))
                # A read of one event (a paced model on a quiet loop) goes through untouched.
                for event in join_text_deltas(events) if len(events) > 1 else events:
                    yield event
                if _open_streams > PACE_ABOVE:
                    await asyncio.sleep(PACE_SECONDS)  # its events are out; the next read gathers more
            for event in self._decode_lines(lines.finish()):
                yield event
        finally:
            with _open_streams_lock:
                _open_streams -= 1
            self._reset()


def chunk_dicts_client(endpoint: Endpoint, api_key: str) -> openai.AsyncOpenAI:
    """An `openai.AsyncOpenAI` on aiohttp (see `transport.py`) whose streamed chat chunks are the
    dicts they were parsed into, text deltas of one read joined (`ReadJoiningDecoder`).

    The SDK builds a `ChatCompletionChunk` model for every chunk (field by field, with runtime type
    checks), and langchain-openai turns it straight back into a dict with `model_dump()` before making
    its message chunk: the round trip was two thirds of the client's CPU per streamed token. Given the
    dict, langchain-openai skips both. Requests, retries, errors (mid-stream ones too) and whole
    responses stay the SDK's; only chunks of `chat.completions.create(stream=True)` are affected, and
    no role here uses `beta.chat.completions.stream`, which would need the models.
    """

    class ChunkDictsClient(openai.AsyncOpenAI):
        def _make_sse_decoder(self) -> SSEDecoder:
            return ReadJoiningDecoder()

        def _process_response_data(self, *, data, cast_to, response):
            if cast_to is ChatCompletionChunk and isinstance(data, dict):
                for choice in data.get("choices") or ():
                    # The model would read a missing delta as None; langchain-openai indexes it.
                    if isinstance(choice, dict):
                        choice.setdefault("delta", None)
                return data
            return super()._process_response_data(data=data, cast_to=cast_to, response=response)

    return ChunkDictsClient(
        base_url=endpoint.base_url,
        api_key=api_key,
        timeout=endpoint.timeout,
        max_retries=endpoint.retries,
        http_client=loop_local_http_client(),
    )
