"""Threads over HTTP: list, read back from the checkpoints, delete; never another reader's."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from booktutor.server.run_store import RunGone, StoredEvent
from tests.server.conftest import auth, new_visitor

TOPICS = "How do ROS 2 nodes exchange messages through topics?"


def fresh(prefix: str = "reader") -> dict[str, str]:
    """Headers of a signed-in reader no other test uses."""
    return auth(f"{prefix}-{uuid.uuid4().hex[:10]}")


def sse_events(body: str) -> list[tuple[str, dict]]:
    """(event, data) pairs of a Server-Sent Events body (comments and pings skipped)."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].strip())
        if name and data:
            events.append((name, json.loads("\n".join(data))))
    return events


async def start_thread(
    client: httpx.AsyncClient, headers: dict[str, str], message: str = TOPICS, **fields
) -> tuple[str, str]:
    """Ask the tutor once through `/v1/chat`: (thread id, the answer's message id)."""
    response = await client.post("/v1/chat", json={"message": message, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    events = dict(sse_events(response.text))
    assert "done" in events, events.get("error")
    return events["metadata"]["thread_id"], events["done"]["message_id"]


async def test_list_own_threads_newest_first(client):
    headers = fresh()
    first, _ = await start_thread(client, headers)
    second, _ = await start_thread(client, headers, "What is a ROS 2 service?")

    response = await client.get("/v1/threads", headers=headers)

    assert response.status_code == 200
    threads = response.json()["threads"]
    assert [t["thread_id"] for t in threads] == [second, first]
    assert threads[1]["title"] == TOPICS
    assert set(threads[0]) == {"thread_id", "title", "created_at", "updated_at"}


async def test_list_limit_is_honoured_and_bounded(client):
    headers = fresh()
    await start_thread(client, headers)
    await start_thread(client, headers, "What is a ROS 2 service?")

    assert len((await client.get("/v1/threads", params={"limit": 1}, headers=headers)).json()["threads"]) == 1
    for bad in (0, 101, "many"):
        response = await client.get("/v1/threads", params={"limit": bad}, headers=headers)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_request"


async def test_new_reader_has_no_threads_and_does_not_see_others(client):
    await start_thread(client, fresh())

    response = await client.get("/v1/threads", headers=fresh())

    assert response.status_code == 200
    assert response.json() == {"threads": []}


async def test_read_thread_has_messages_with_citations(client):
    headers = fresh()
    thread_id, message_id = await start_thread(client, headers)

    response = await client.get(f"/v1/threads/{thread_id}", headers=headers)

    assert response.status_code == 200
    thread = response.json()
    assert thread["thread_id"] == thread_id and thread["title"] == TOPICS
    question, answer = thread["messages"]
    assert question["role"] == "user" and question["content"] == TOPICS and question["id"]
    assert answer["role"] == "assistant" and answer["id"] == message_id
    assert answer["content"].strip()
    assert answer["citations"], "the offline answer quotes the book and cites it"
    assert {"n", "path", "title", "url"} <= set(answer["citations"][0])
    assert f"[{answer['citations'][0]['n']}]" in answer["content"]
    assert (answer["language"], answer["direction"]) == ("en", "ltr")


async def test_read_thread_shows_selection_and_language_of_each_turn(client):
    headers = fresh()
    selection = "A topic is a named bus over which nodes exchange messages."
    thread_id, _ = await start_thread(
        client, headers, "What does this mean?", selected_text=selection, page="/docs/ros2/01-ros2-nodes-topics"
    )

    question = (await client.get(f"/v1/threads/{thread_id}", headers=headers)).json()["messages"][0]

    assert question["selected_text"] == selection
    assert question["page"] == "/docs/ros2/01-ros2-nodes-topics"


async def test_another_readers_thread_is_not_found(client):
    owner = fresh("owner")
    thread_id, _ = await start_thread(client, owner)
    other = fresh("other")

    read = await client.get(f"/v1/threads/{thread_id}", headers=other)
    delete = await client.delete(f"/v1/threads/{thread_id}", headers=other)

    for response in (read, delete):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "thread_not_found"
    # The failed delete did nothing.
    assert (await client.get(f"/v1/threads/{thread_id}", headers=owner)).status_code == 200


async def test_anonymous_visitor_cannot_reach_a_signed_in_readers_thread(client):
    thread_id, _ = await start_thread(client, fresh())

    response = await client.get(f"/v1/threads/{thread_id}", headers=await new_visitor(client))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "thread_not_found"


async def test_unknown_thread_is_not_found(client):
    headers = fresh()
    for thread_id in (str(uuid.uuid4()), "x" * 200, "not a thread"):
        for method in ("GET", "DELETE"):
            response = await client.request(method, f"/v1/threads/{thread_id}", headers=headers)
            assert response.status_code == 404, (method, thread_id)
            assert response.json()["error"]["code"] == "thread_not_found"


async def test_delete_removes_thread_and_checkpoints(client, app):
    headers = fresh()
    thread_id, _ = await start_thread(client, headers)
    kept, _ = await start_thread(client, headers, "What is a ROS 2 service?")

    response = await client.delete(f"/v1/threads/{thread_id}", headers=headers)

    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/v1/threads/{thread_id}", headers=headers)).status_code == 404
    listed = (await client.get("/v1/threads", headers=headers)).json()["threads"]
    assert [t["thread_id"] for t in listed] == [kept]
    state = await app.state.tutor.graph.aget_state({"configurable": {"thread_id": thread_id}})
    assert not state.values, "the checkpoints were deleted too"
    # Deleting again is a plain 404, and the other thread is untouched.
    assert (await client.delete(f"/v1/threads/{thread_id}", headers=headers)).status_code == 404
    assert len((await client.get(f"/v1/threads/{kept}", headers=headers)).json()["messages"]) == 2


async def run_elsewhere(store, thread_id: str) -> str:
    """A run of the thread recorded by another server process, still holding its lease: its id."""
    run_id = f"elsewhere-{uuid.uuid4()}"
    await store.claim(run_id=run_id, thread_id=thread_id, reader_id="someone", metadata={})
    return run_id


async def test_delete_refuses_a_thread_that_is_answering(client, app):
    headers = fresh()
    thread_id, _ = await start_thread(client, headers)
    store = app.state.runs.store
    run_id = await run_elsewhere(store, thread_id)
    try:
        response = await client.delete(f"/v1/threads/{thread_id}", headers=headers)
    finally:
        await store.append(run_id, [], status="done")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "thread_busy"
    assert (await client.get(f"/v1/threads/{thread_id}", headers=headers)).status_code == 200


async def test_a_run_ended_elsewhere_keeps_its_status_and_refuses_later_events(client, app):
    thread_id, _ = await start_thread(client, fresh())
    store = app.state.runs.store
    run_id = await run_elsewhere(store, thread_id)
    with store.watch(run_id) as news:
        await store.append(run_id, [StoredEvent(1, "token", {"text": "A"})])
        await asyncio.wait_for(news.wait(), 5)  # followers hear of the write
    # Another process marks the run interrupted (its lease lapsed): the run's last writes are refused,
    # and neither its events nor its status change.
    async with store.pool.connection() as conn:
        await conn.execute("UPDATE runs SET status = 'interrupted', finished_at = now() WHERE id = %s", (run_id,))
    with pytest.raises(RunGone):
        await store.append(run_id, [StoredEvent(2, "token", {"text": "B"})], status="done")
    record, events = await store.read(run_id, reader_id="someone", after=-1)
    assert record.status == "interrupted"
    assert [(e.seq, e.event) for e in events] == [(0, "metadata"), (1, "token")]
    # A run that ends where it runs stores its last events and its status together.
    other = await run_elsewhere(store, f"{thread_id}-2")
    await store.append(other, [StoredEvent(1, "done", {})], status="done")
    record, events = await store.read(other, reader_id="someone", after=-1)
    assert record.status == "done"
    assert [e.event for e in events] == ["metadata", "done"]
    with pytest.raises(RunGone):
        await store.append(f"unknown-{uuid.uuid4()}", [], status="done")


async def test_continued_thread_keeps_all_turns_in_order(client):
    headers = fresh()
    thread_id, first_answer = await start_thread(client, headers)
    _, second_answer = await start_thread(client, headers, "What is a ROS 2 service?", thread_id=thread_id)

    messages = (await client.get(f"/v1/threads/{thread_id}", headers=headers)).json()["messages"]

    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [messages[1]["id"], messages[3]["id"]] == [first_answer, second_answer]
    assert messages[2]["content"] == "What is a ROS 2 service?"


async def test_threads_need_a_valid_reader(client):
    response = await client.get("/v1/threads", headers={"Authorization": "Bearer not-a-token"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
