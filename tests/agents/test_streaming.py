"""`agents/streaming.py`: text deltas that arrive in one read become one chunk; nothing else changes."""

from __future__ import annotations

import asyncio
import json

from booktutor.agents.streaming import ReadJoiningDecoder


def chunk(content: str | None = None, *, role: str | None = None, finish: str | None = None, usage=None, id: str = "c1") -> bytes:
    delta = {} if content is None and role is None else {"content": content}
    if role:
        delta["role"] = role
    body = {
        "id": id,
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def decode(reads: list[bytes]) -> list:
    async def events():
        async def source():
            for read in reads:
                yield read

        return [event async for event in ReadJoiningDecoder().aiter_bytes(source())]

    return asyncio.run(events())


def contents(events) -> list:
    out = []
    for event in events:
        if event.data.startswith("[DONE]"):
            out.append("[DONE]")
            continue
        body = event.json()
        out.append(body["choices"][0]["delta"].get("content") if body["choices"] else ("usage", body["usage"]["total_tokens"]))
    return out


def test_text_deltas_of_one_read_become_one_chunk_and_reads_stay_apart():
    reads = [
        chunk("", role="assistant") + chunk("The ") + chunk("derivative "),
        chunk("term"),
        chunk(" damps") + chunk(None, finish="stop") + chunk(usage={"total_tokens": 9}) + b"data: [DONE]\n\n",
    ]

    events = decode(reads)

    assert contents(events) == ["The derivative ", "term", " damps", None, ("usage", 9), "[DONE]"]
    assert events[0].json()["choices"][0]["delta"]["role"] == "assistant"


def test_an_event_split_across_reads_is_whole_and_a_read_ending_mid_event_keeps_its_rest():
    whole = chunk("Hello ") + chunk("reader") + chunk(" again")
    cut = whole.index(b"reader") + 2

    assert contents(decode([whole[:cut], whole[cut:]])) == ["Hello ", "reader again"]


def test_chunks_of_another_completion_or_with_anything_but_text_are_not_joined():
    tool_call = json.dumps(
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]}
    ).encode()
    error = b'data: {"error": {"message": "overloaded"}}\n\n'
    reads = [chunk("a") + chunk("b", id="c2") + b"data: " + tool_call + b"\n\n" + chunk("c") + error + chunk("d")]

    events = decode(reads)

    assert len(events) == 6
    assert contents([events[0], events[1], events[3], events[5]]) == ["a", "b", "c", "d"]
    assert "tool_calls" in events[2].json()["choices"][0]["delta"]
    assert events[4].json() == {"error": {"message": "overloaded"}}
