"""Proves tests/openai_stub.py against the real openai / langchain-openai clients."""

from __future__ import annotations

import json
import math
import threading
import urllib.error
import urllib.request

import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.openai_stub import ScriptedOpenAI


@tool
def lookup_page(query: str, limit: int = 3) -> str:
    """Look up book pages matching a query."""
    return query


def make_llm(server: ScriptedOpenAI, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.base_url, api_key="test", model="gpt-test", **kwargs)


# --------------------------------------------------------------- chat: text
def test_invoke_non_streaming(openai_server: ScriptedOpenAI) -> None:
    openai_server.reply("A PID controller has three terms.")
    msg = make_llm(openai_server).invoke([HumanMessage("What is PID?")])

    assert msg.content == "A PID controller has three terms."
    assert msg.response_metadata["model_name"] == "gpt-test"
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.usage_metadata is not None and msg.usage_metadata["output_tokens"] > 0

    assert len(openai_server.requests) == 1
    body = openai_server.requests[0]
    assert body["model"] == "gpt-test"
    assert not body.get("stream")
    assert body["messages"] == [{"role": "user", "content": "What is PID?"}]


def test_model_is_echoed(openai_server: ScriptedOpenAI) -> None:
    llm = ChatOpenAI(base_url=openai_server.base_url, api_key="test", model="other-model")
    msg = llm.invoke("hi")
    assert msg.response_metadata["model_name"] == "other-model"


def test_stream_text(openai_server: ScriptedOpenAI) -> None:
    text = "The derivative term reacts to how fast the error is changing."
    openai_server.reply(text)
    chunks = list(make_llm(openai_server).stream("Explain the D term"))

    contents = [c.content for c in chunks if c.content]
    assert len(contents) >= 5
    assert "".join(c.content for c in chunks) == text

    body = openai_server.requests[0]
    assert body["stream"] is True
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.response_metadata.get("finish_reason") == "stop"


def test_stream_usage_chunk(openai_server: ScriptedOpenAI) -> None:
    openai_server.reply("one two three four")
    chunks = list(make_llm(openai_server, stream_usage=True).stream("count"))
    assert openai_server.requests[0]["stream_options"] == {"include_usage": True}
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == 4
    assert "".join(c.content for c in chunks) == "one two three four"


def test_default_reply_and_fallback(openai_server: ScriptedOpenAI) -> None:
    llm = make_llm(openai_server)
    assert llm.invoke("anything").content == "OK"

    openai_server.respond_with(lambda body: "echo: " + body["messages"][-1]["content"])
    assert llm.invoke("ping").content == "echo: ping"
    assert "".join(c.content for c in llm.stream("pong")) == "echo: pong"

    # Queued replies take precedence over the fallback, in FIFO order.
    openai_server.reply("first")
    openai_server.reply("second")
    assert openai_server.pending == 2
    assert llm.invoke("x").content == "first"
    assert llm.invoke("x").content == "second"
    assert llm.invoke("x").content == "echo: x"
    assert openai_server.pending == 0
    assert len(openai_server.requests) == 6


@pytest.mark.asyncio
async def test_async_stream(openai_server: ScriptedOpenAI) -> None:
    openai_server.reply("async streaming works fine")
    llm = make_llm(openai_server)
    parts = [c.content async for c in llm.astream("hi")]
    assert "".join(parts) == "async streaming works fine"
    assert (await llm.ainvoke("again")).content == "OK"


# --------------------------------------------------------------- tool calls
def test_tool_call_non_streaming(openai_server: ScriptedOpenAI) -> None:
    openai_server.reply_tool_call("lookup_page", {"query": "PID derivative", "limit": 2}, call_id="call_1")
    llm = make_llm(openai_server).bind_tools([lookup_page])
    msg = llm.invoke("find the PID page")

    assert msg.tool_calls == [
        {
            "name": "lookup_page",
            "args": {"query": "PID derivative", "limit": 2},
            "id": "call_1",
            "type": "tool_call",
        }
    ]
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    tools = openai_server.requests[0]["tools"]
    assert tools[0]["function"]["name"] == "lookup_page"


def test_tool_call_streaming(openai_server: ScriptedOpenAI) -> None:
    args = {"query": "differential drive wheel speeds", "limit": 5}
    openai_server.reply_tool_call("lookup_page", args)
    llm = make_llm(openai_server).bind_tools([lookup_page])
    chunks = list(llm.stream("wheel speeds?"))

    assert len(chunks) >= 4  # head + several argument fragments + finish
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert isinstance(full, AIMessageChunk)
    assert len(full.tool_calls) == 1
    call = full.tool_calls[0]
    assert call["name"] == "lookup_page"
    assert call["args"] == args
    assert call["id"].startswith("call_")
    assert openai_server.requests[0]["stream"] is True


def test_parallel_tool_calls_streaming(openai_server: ScriptedOpenAI) -> None:
    openai_server.reply_tool_calls([("lookup_page", {"query": "a"}), ("lookup_page", {"query": "b"}, "call_b")])
    chunks = list(make_llm(openai_server).bind_tools([lookup_page]).stream("two lookups"))
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert [tc["args"] for tc in full.tool_calls] == [{"query": "a"}, {"query": "b"}]
    assert full.tool_calls[1]["id"] == "call_b"


def test_tool_then_text_conversation(openai_server: ScriptedOpenAI) -> None:
    openai_server.reply_tool_call("lookup_page", {"query": "sensors"}, call_id="call_s")
    openai_server.reply("Sensors are covered in chapter 1.")
    llm = make_llm(openai_server).bind_tools([lookup_page])

    first = llm.invoke([HumanMessage("where are sensors?")])
    tool_msg = lookup_page.invoke(first.tool_calls[0])
    second = llm.invoke([HumanMessage("where are sensors?"), first, tool_msg])

    assert second.content == "Sensors are covered in chapter 1."
    sent = openai_server.requests[1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_s"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_s", "content": "sensors"}


# ------------------------------------------------------------------- errors
def test_error_status_raises(openai_server: ScriptedOpenAI) -> None:
    openai_server.reply_error(400, "Invalid prompt for this test")
    with pytest.raises(openai.BadRequestError) as excinfo:
        make_llm(openai_server).invoke("hi")
    assert excinfo.value.status_code == 400
    assert "Invalid prompt for this test" in str(excinfo.value)
    assert excinfo.value.body["message"] == "Invalid prompt for this test"


def test_error_status_raises_when_streaming(openai_server: ScriptedOpenAI) -> None:
    openai_server.reply_error(401, "Incorrect API key provided")
    with pytest.raises(openai.AuthenticationError):
        list(make_llm(openai_server).stream("hi"))


def test_retryable_error(openai_server: ScriptedOpenAI) -> None:
    # Not retried when the client is told not to retry:
    openai_server.reply_error(429, "Slow down", retryable=False)
    with pytest.raises(openai.RateLimitError):
        make_llm(openai_server).invoke("hi")
    assert len(openai_server.requests) == 1

    # ... and with max_retries=0 the error surfaces exactly once.
    openai_server.reply_error(503, "Overloaded")
    with pytest.raises(openai.InternalServerError):
        make_llm(openai_server, max_retries=0).invoke("hi")
    assert len(openai_server.requests) == 2

    # With retries, the client retries the 500 and gets the next reply.
    openai_server.reply_error(500, "Transient", retryable=True)
    openai_server.reply("recovered")
    assert make_llm(openai_server, max_retries=1).invoke("hi").content == "recovered"
    assert len(openai_server.requests) == 4


# --------------------------------------------------------------- embeddings
def test_embeddings(openai_server: ScriptedOpenAI) -> None:
    emb = OpenAIEmbeddings(
        base_url=openai_server.base_url,
        api_key="test",
        model="text-embedding-test",
        check_embedding_ctx_length=False,
    )
    vecs = emb.embed_documents(["sensors", "motors", "sensors"])
    assert len(vecs) == 3
    for v in vecs:
        assert len(v) == 8
        assert math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5)
    assert vecs[0] == vecs[2]
    assert vecs[0] != vecs[1]

    q = emb.embed_query("sensors")
    assert q == vecs[0]
    assert openai_server.embedding_requests[0]["model"] == "text-embedding-test"
    assert openai_server.requests == []  # chat log is separate


def test_embeddings_float_format(openai_server: ScriptedOpenAI) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    res = client.embeddings.create(model="m", input="sensors", encoding_format="float")
    b64 = client.embeddings.create(model="m", input="sensors")
    assert res.data[0].embedding == pytest.approx(b64.data[0].embedding)


# ------------------------------------------------------------- plumbing
def test_models_and_unknown_paths(openai_server: ScriptedOpenAI) -> None:
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test")
    assert [m.id for m in client.models.list()] == ["gpt-test"]

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(openai_server.base_url + "/nope", timeout=5)
    assert excinfo.value.code == 404
    assert "error" in json.loads(excinfo.value.read())
    excinfo.value.close()

    req = urllib.request.Request(openai_server.base_url + "/responses", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(req, timeout=5)
    assert excinfo.value.code == 404
    excinfo.value.close()
    paths = [r["path"] for r in openai_server.all_requests]
    assert paths == ["/v1/models", "/v1/nope", "/v1/responses"]


def test_concurrent_requests(openai_server: ScriptedOpenAI) -> None:
    openai_server.respond_with(lambda body: body["messages"][-1]["content"].upper())
    llm = make_llm(openai_server)
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        results[i] = "".join(c.content for c in llm.stream(f"msg {i}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: f"MSG {i}" for i in range(8)}
    assert len(openai_server.requests) == 8


def test_clean_shutdown_leaves_no_threads() -> None:
    before = {t.name for t in threading.enumerate()}
    with ScriptedOpenAI() as server:
        server.reply("hello world")
        llm = make_llm(server)  # keeps a keep-alive connection open
        assert "".join(c.content for c in llm.stream("hi")) == "hello world"
        assert llm.invoke("again").content == "OK"
        url = server.base_url
    leftover = {t.name for t in threading.enumerate()} - before
    assert not [n for n in leftover if n.startswith("ScriptedOpenAI")]
    with pytest.raises(RuntimeError):
        server.base_url  # noqa: B018
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/models", timeout=2)
