"""The chat stream as widgets feel it: event order, resumable streams, busy threads, limits, tokens."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time

import httpx
import jwt
import pytest
import uvicorn

from tests.server.conftest import JWT_SECRET, auth, token_for

TOPICS = "How do ROS 2 nodes exchange messages through topics?"


def parse_sse(text: str) -> list[dict]:
    """Events of an SSE body as {id, event, data}; heartbeat comments are skipped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            fields[key] = fields.get(key, "") + value.removeprefix(" ")
        if "event" in fields:
            events.append({"id": fields.get("id"), "event": fields["event"], "data": json.loads(fields["data"])})
    return events


def answer_text(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "token")


async def active_run(app) -> tuple[str, str]:
    """(thread id, run id) of the run in flight, once the server has started it."""
    for _ in range(500):
        if app.state.runs.active_by_thread:
            return next(iter(app.state.runs.active_by_thread.items()))
        await asyncio.sleep(0.01)
    raise AssertionError("no run started")


async def chat(client, headers, **body) -> tuple[httpx.Response, list[dict]]:
    response = await client.post("/v1/chat", json=body, headers=headers)
    return response, parse_sse(response.text) if response.status_code == 200 else []


async def test_events_arrive_in_protocol_order(client, reader):
    response, events = await chat(client, reader, message=TOPICS)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "metadata" and kinds[-1] == "done"
    assert "step" in kinds and kinds.index("sources") < kinds.index("token")
    run_id = events[0]["data"]["run_id"]
    assert [e["id"] for e in events] == [f"{run_id}:{n}" for n in range(len(events))]
    assert all(e["data"]["type"] == e["event"] for e in events)
    assert response.headers["content-location"] == f"/v1/runs/{run_id}/stream"
    done = events[-1]["data"]
    assert done["thread_id"] == events[0]["data"]["thread_id"]
    assert "01-ros2/02-nodes-topics.md" in [c["path"] for c in done["citations"]]
    assert done["direction"] == "ltr" and done["message_id"]
    sources = next(e for e in events if e["event"] == "sources")["data"]["sources"]
    assert sources[0]["n"] == 1 and sources[0]["url"].startswith("/docs/")


async def test_asking_again_as_soon_as_an_answer_is_done_is_never_refused_as_busy(client, reader):
    """A reader who sends the next message on hearing `done` finds the thread free: the run's ending
    is stored before it is sent."""
    _, events = await chat(client, reader, message=TOPICS)
    thread_id = events[-1]["data"]["thread_id"]
    for n in range(5):
        response, events = await chat(client, reader, message=f"And what about QoS? ({n})", thread_id=thread_id)
        assert response.status_code == 200, response.text
        assert events[-1]["event"] == "done"


async def test_front_end_field_names_are_accepted(client, reader):
    _, first = await chat(client, reader, question=TOPICS)
    thread_id = first[0]["data"]["thread_id"]

    _, second = await chat(client, reader, question="and how is that different from a service?", session_id=thread_id)

    assert second[0]["data"]["thread_id"] == thread_id
    assert second[-1]["data"]["turn"] == "follow_up"


async def test_explain_answers_about_the_selection(client, reader):
    body = {
        "selected_text": "Domain randomization varies simulation parameters such as lighting, textures, friction and masses",
        "page": "03-isaac/05-sim-to-real.md",
    }
    response = await client.post("/v1/explain", json=body, headers=reader)
    events = parse_sse(response.text)
    sources = next(e for e in events if e["event"] == "sources")["data"]["sources"]
    assert sources[0]["path"] == "03-isaac/05-sim-to-real.md"
    assert answer_text(events).startswith("About the selected passage")


async def test_replay_after_last_event_id_gives_exactly_the_missed_events(client, reader):
    _, events = await chat(client, reader, message=TOPICS)
    run_id = events[0]["data"]["run_id"]
    seen = events[:4]

    replay = await client.get(f"/v1/runs/{run_id}/stream", headers={**reader, "Last-Event-ID": seen[-1]["id"]})

    missed = parse_sse(replay.text)
    assert missed == events[4:]
    assert answer_text(seen) + answer_text(missed) == answer_text(events)


@pytest.mark.parametrize("last_event_id", ["not-an-id", "00000000-0000-0000-0000-000000000000:1", "{run}:9999"])
async def test_stale_or_foreign_last_event_id_is_refused(client, reader, last_event_id):
    _, events = await chat(client, reader, message="What is Gazebo?")
    run_id = events[0]["data"]["run_id"]
    response = await client.get(
        f"/v1/runs/{run_id}/stream", headers={**reader, "Last-Event-ID": last_event_id.format(run=run_id)}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_last_event_id"


async def test_threads_and_runs_belong_to_their_reader(client, reader):
    _, events = await chat(client, reader, message=TOPICS)
    thread_id, run_id = events[0]["data"]["thread_id"], events[0]["data"]["run_id"]
    stranger = auth("someone-else")

    response, _ = await chat(client, stranger, message="and services?", thread_id=thread_id)
    assert response.status_code == 404 and response.json()["error"]["code"] == "thread_not_found"
    # Advice for the command line has no place in an HTTP answer.
    assert "--thread" not in response.json()["error"]["message"]
    replay = await client.get(f"/v1/runs/{run_id}/stream", headers=stranger)
    assert replay.status_code == 404 and replay.json()["error"]["code"] == "run_not_found"
    visitor = await client.post("/v1/chat", json={"message": "and services?", "thread_id": thread_id})
    assert visitor.status_code == 404


async def test_anonymous_visitors_get_an_id_to_keep(client):
    response = await client.post("/v1/chat", json={"message": "Hello!"})
    visitor = response.headers["x-visitor-id"]
    thread_id = parse_sse(response.text)[0]["data"]["thread_id"]

    again = await client.post(
        "/v1/chat", json={"message": "What is Gazebo?", "thread_id": thread_id}, headers={"X-Visitor-Id": visitor}
    )
    assert again.status_code == 200 and parse_sse(again.text)[-1]["event"] == "done"


async def test_a_second_message_while_a_run_is_in_flight_gets_409(app, client, reader, language_model):
    def slow_answer(body):
        time.sleep(1.5)
        return "Nodes publish and subscribe on topics [1]."

    language_model.respond_with(slow_answer)
    first = asyncio.create_task(client.post("/v1/chat", json={"message": TOPICS}, headers=reader))
    thread_id, _ = await active_run(app)

    busy = await client.post("/v1/chat", json={"message": "and services?", "thread_id": thread_id}, headers=reader)

    assert busy.status_code == 409 and busy.json()["error"]["code"] == "thread_busy"
    events = parse_sse((await first).text)
    assert events[-1]["event"] == "done" and answer_text(events).startswith("Nodes publish")
    history = await app.state.tutor.history(thread_id)
    assert [m["role"] for m in history] == ["user", "assistant"]


async def test_cancel_stops_the_run_and_cancelling_again_is_refused(app, client, reader, language_model):
    language_model.respond_with(lambda body: (time.sleep(2), "too late")[1])
    stream = asyncio.create_task(client.post("/v1/chat", json={"message": TOPICS}, headers=reader))
    _, run_id = await active_run(app)

    cancelled = await client.post(f"/v1/runs/{run_id}/cancel", headers=reader)
    again = await client.post(f"/v1/runs/{run_id}/cancel", headers=reader)

    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"
    events = parse_sse((await stream).text)
    assert events[-1]["event"] == "error" and events[-1]["data"]["code"] == "cancelled"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"message": "unterminated', 400, "malformed_json"),
        ('{"message": 42}', 422, "invalid_request"),
        ('{"thread_id": "x"}', 422, "invalid_request"),
        ('{"message": "   "}', 400, "empty_message"),
        (json.dumps({"message": "why " * 2000}), 400, "message_too_long"),
        (json.dumps({"message": TOPICS, "language": "xx"}), 400, "unsupported_language"),
        (json.dumps({"message": TOPICS, "thread_id": "nope"}), 404, "thread_not_found"),
    ],
)
async def test_bad_requests_get_precise_errors(client, reader, body, status, code):
    response = await client.post("/v1/chat", content=body, headers={**reader, "Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("kind", ["tampered", "none", "expired", "wrong_key"])
async def test_bad_tokens_are_refused(client, kind):
    token = token_for("mallory")
    if kind == "tampered":
        header, payload, signature = token.split(".")
        token = ".".join([header, payload, signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")])
    elif kind == "none":
        token = jwt.encode({"sub": "mallory", "exp": int(time.time()) + 60}, key=None, algorithm="none")
    elif kind == "expired":
        token = jwt.encode({"sub": "mallory", "exp": int(time.time()) - 60}, JWT_SECRET, algorithm="HS256")
    else:
        token = jwt.encode({"sub": "mallory", "exp": int(time.time()) + 60}, "another-secret-of-enough-length!!", algorithm="HS256")

    response = await client.post("/v1/chat", json={"message": TOPICS}, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"invalid_token", "token_expired"}


async def test_runaway_client_is_answered_429_with_retry_after(app, client):
    app.state.rate_limiter = type(app.state.rate_limiter)(
        app.state.settings.model_copy(update={"request_rate_limit": "3/minute"})
    )
    headers = auth("quota-reader")
    statuses = [(await client.get("/v1/runs/none", headers=headers)).status_code for _ in range(4)]

    assert statuses[:3] == [404, 404, 404]
    limited = await client.get("/v1/runs/none", headers=headers)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1


async def test_health_readiness_metrics_and_openapi(client, reader):
    await chat(client, reader, message=TOPICS)
    await client.post("/v1/chat", json={"message": TOPICS, "thread_id": "missing"}, headers=reader)
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok", "qdrant": "ok"}
    metrics = (await client.get("/metrics")).text
    for name in ("booktutor_http_requests_total", "booktutor_time_to_first_token_seconds", "booktutor_run_seconds",
                 "booktutor_retrieval_seconds", "booktutor_errors_total"):
        assert name in metrics
    assert 'booktutor_errors_total{code="thread_not_found"}' in metrics
    assert "/v1/chat" in (await client.get("/openapi.json")).json()["paths"]
    assert (await client.get("/docs")).status_code == 200


# -- over a real socket: what a browser on a flaky connection sees ------------------------------------


@pytest.fixture
def live_server(server_settings):
    """The app under uvicorn on a loopback port, in a thread with its own event loop."""
    from booktutor.server.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(server_settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", server.config.app
    server.should_exit = True
    thread.join(timeout=20)


def test_a_dropped_client_does_not_stop_the_run_and_can_resume(live_server, language_model):
    url, app = live_server
    headers = auth("flaky-reader")
    words = " ".join(f"word{n}" for n in range(60))
    language_model.respond_with(lambda body: (time.sleep(0.5), f"{words} [1].")[1])

    received: list[dict] = []
    with httpx.Client(base_url=url, timeout=30) as http:
        with http.stream("POST", "/v1/chat", json={"message": TOPICS}, headers=headers) as response:
            buffer = ""
            for chunk in response.iter_text():
                buffer += chunk.replace("\r\n", "\n")
                *complete, buffer = buffer.split("\n\n")
                received += parse_sse("\n\n".join(complete) + "\n\n")
                if any(e["event"] == "token" for e in received):
                    break  # the reader's train goes into a tunnel
        assert received[-1]["event"] == "token", "the stream must be dropped while tokens are still coming"
        run_id = received[0]["data"]["run_id"]
        thread_id = received[0]["data"]["thread_id"]

        for _ in range(300):
            if http.get(f"/v1/runs/{run_id}", headers=headers).json()["status"] != "running":
                break
            time.sleep(0.05)
        status = http.get(f"/v1/runs/{run_id}", headers=headers).json()["status"]
        replay = http.get(f"/v1/runs/{run_id}/stream", headers={**headers, "Last-Event-ID": received[-1]["id"]})

    assert status == "done"
    rest = parse_sse(replay.text)
    assert rest[0]["id"] == f"{run_id}:{len(received)}"
    assert rest[-1]["event"] == "done"
    assert answer_text(received) + answer_text(rest) == f"{words} [1]."
    history = asyncio.run_coroutine_threadsafe(app.state.tutor.history(thread_id), _loop_of(app)).result(10)
    assert history[-1] == {"role": "assistant", "content": f"{words} [1].", "citations": rest[-1]["data"]["citations"]}


def _loop_of(app) -> asyncio.AbstractEventLoop:
    return app.state.runs.loop


def test_a_64_megabyte_chunked_upload_is_refused_before_parsing(live_server):
    """Over a raw socket, reading while sending as a browser does: the 413 arrives while the upload goes on.

    An HTTP client that reads only after sending the whole body (httpx) sees just the closed socket.
    """
    url, _ = live_server
    host, port = url.removeprefix("http://").split(":")
    answer = bytearray()
    answered = threading.Event()

    def read(sock: socket.socket) -> None:
        """Collect the response: its head, then as many body bytes as its Content-Length says."""
        try:
            while True:
                head, gap, body = bytes(answer).partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if gap and length and len(body) >= int(length.group(1)):
                    break
                data = sock.recv(65536)
                if not data:
                    break
                answer.extend(data)
        except OSError:
            pass
        answered.set()

    sent = 0
    chunk = b"x" * (1 << 16)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        reader = threading.Thread(target=read, args=(sock,), daemon=True)
        reader.start()
        headers = f"Authorization: Bearer {token_for('uploader')}\r\nContent-Type: application/json\r\n"
        sock.sendall(f"POST /v1/chat HTTP/1.1\r\nHost: {host}\r\n{headers}Transfer-Encoding: chunked\r\n\r\n".encode())
        sock.settimeout(10)
        try:
            while sent < 64 * (1 << 20) and not answered.is_set():
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection, or stopped reading it
        reader.join(timeout=30)

    head, _, body = bytes(answer).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), bytes(answer)[:500]
    assert json.loads(body)["error"]["code"] == "body_too_large"
    assert sent < 64 * (1 << 20)


async def test_concurrent_runs_are_bounded_per_process(app, client, language_model):
    app.state.runs.slots.max_runs = 1
    language_model.respond_with(lambda body: (time.sleep(1.0), "Slow [1].")[1])
    first = asyncio.create_task(client.post("/v1/chat", json={"message": TOPICS}, headers=auth("busy-a")))
    await active_run(app)

    second = await client.post("/v1/chat", json={"message": TOPICS}, headers=auth("busy-b"))

    assert second.status_code == 503 and second.json()["error"]["code"] == "server_busy"
    assert parse_sse((await first).text)[-1]["event"] == "done"
    assert app.state.runs.slots.in_use == 0
