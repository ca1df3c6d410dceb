"""Feedback on answers, translation (offline and with the scripted model), admin ingest, OpenAPI."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.server.conftest import auth, new_visitor
from tests.server.test_profile import assert_error
from tests.server.test_threads import fresh, start_thread

PLACEHOLDER = re.compile(r"⟦\d+⟧")

FENCED = """```python
import rclpy
node = rclpy.create_node("talker")  # keep me exactly
```"""

PAGE = f"""# Publishing

A publisher sends messages on a topic. Run `ros2 topic list` to see them.

{FENCED}

Read more at https://docs.ros.org/en/humble/ and mind $x^2$.
"""


def fake_urdu(body: dict) -> str:
    """A 'model' that tags every word as translated and keeps the ⟦n⟧ placeholders, as a good model does."""
    text = body["messages"][-1]["content"]
    return " ".join(w if PLACEHOLDER.fullmatch(w.strip()) else f"ur:{w}" for w in text.split(" "))


# -- feedback ----------------------------------------------------------------------------------------


async def test_feedback_on_an_answer(client):
    headers = fresh()
    thread_id, message_id = await start_thread(client, headers)

    response = await client.post(
        f"/v1/threads/{thread_id}/messages/{message_id}/feedback",
        json={"rating": -1, "comment": "It did not mention QoS."},
        headers=headers,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["thread_id"] == thread_id and body["message_id"] == message_id and body["rating"] == -1
    assert isinstance(body["id"], int)
    # Thumbs up without a comment is fine too, and is a new rating.
    again = await client.post(
        f"/v1/threads/{thread_id}/messages/{message_id}/feedback", json={"rating": 1}, headers=headers
    )
    assert again.status_code == 201 and again.json()["id"] != body["id"]


async def test_feedback_bad_rating_is_refused(client):
    headers = fresh()
    thread_id, message_id = await start_thread(client, headers)
    url = f"/v1/threads/{thread_id}/messages/{message_id}/feedback"

    for body in ({"rating": 0}, {"rating": 5}, {"rating": "1"}, {"rating": True}, {"rating": 1.0}, {},
                 {"rating": 1, "comment": "x" * 2001}):
        response = await client.post(url, json=body, headers=headers)
        assert_error(response, 422, "invalid_request")


async def test_feedback_needs_the_readers_thread_and_an_answer_in_it(client):
    owner = fresh("owner")
    thread_id, message_id = await start_thread(client, owner)
    question_id = (await client.get(f"/v1/threads/{thread_id}", headers=owner)).json()["messages"][0]["id"]
    other_thread, other_answer = await start_thread(client, owner, "What is a ROS 2 service?")
    rating = {"rating": 1}

    stranger = await client.post(
        f"/v1/threads/{thread_id}/messages/{message_id}/feedback", json=rating, headers=fresh("other")
    )
    unknown_thread = await client.post(
        f"/v1/threads/{uuid.uuid4()}/messages/{message_id}/feedback", json=rating, headers=owner
    )
    assert_error(stranger, 404, "thread_not_found")
    assert_error(unknown_thread, 404, "thread_not_found")

    for wrong_message in ("no-such-message", question_id, other_answer):
        response = await client.post(
            f"/v1/threads/{thread_id}/messages/{wrong_message}/feedback", json=rating, headers=owner
        )
        assert_error(response, 404, "message_not_found")


# -- translate ---------------------------------------------------------------------------------------


async def test_translate_offline_needs_a_model(client):
    response = await client.post("/v1/translate", json={"text": PAGE, "language": "ur"}, headers=fresh())

    error = assert_error(response, 503, "model_required")
    assert "OPENAI_API_KEY" in error["message"], "the message says how to configure a model"


async def test_translate_to_english_needs_no_model(client):
    response = await client.post("/v1/translate", json={"text": PAGE, "language": "en-GB"}, headers=fresh())

    assert response.status_code == 200
    assert response.json() == {"text": PAGE, "language": "en", "direction": "ltr"}


async def test_translate_refuses_bad_input(client):
    headers = fresh()
    for body in ({"text": "", "language": "ur"}, {"text": "x" * 20_001, "language": "ur"}, {"text": "hi"},
                 {"text": 5, "language": "ur"}):
        assert_error(await client.post("/v1/translate", json=body, headers=headers), 422, "invalid_request")
    unsupported = await client.post("/v1/translate", json={"text": "hello", "language": "klingon"}, headers=headers)
    assert_error(unsupported, 400, "unsupported_language")


async def test_translate_keeps_code_byte_identical(client, language_model):
    language_model.respond_with(fake_urdu)

    response = await client.post("/v1/translate", json={"text": PAGE, "language": "ur-PK"}, headers=fresh())

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["language"], result["direction"]) == ("ur", "rtl")
    assert FENCED in result["text"]
    for kept in ("`ros2 topic list`", "https://docs.ros.org/en/humble/", "$x^2$"):
        assert kept in result["text"]
    assert "ur:publisher" in result["text"], "the prose went through the model"
    sent = language_model.requests[-1]["messages"][-1]["content"]
    assert "rclpy" not in sent, "protected code never reaches the model"


async def test_translate_a_past_answer(client, language_model):
    headers = fresh()
    answer_text = "Run `ros2 topic list` to see the topics [1]."

    def model(body: dict) -> str:
        # Whether the turn also rewrites its query depends on the reader, so answer by what is asked.
        if "Translate the user's Markdown" in body["messages"][0]["content"]:
            return fake_urdu(body)
        return answer_text

    language_model.respond_with(model)
    thread_id, message_id = await start_thread(client, headers, "Which command lists ROS 2 topics?")

    response = await client.post(
        f"/v1/threads/{thread_id}/messages/{message_id}/translate", json={"language": "ur"}, headers=headers
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["language"], result["direction"]) == ("ur", "rtl")
    assert "`ros2 topic list`" in result["text"] and "ur:Run" in result["text"]
    # The stored thread is unchanged: the answer is still the English one, with its citation.
    answer = (await client.get(f"/v1/threads/{thread_id}", headers=headers)).json()["messages"][-1]
    assert answer["content"] == answer_text
    assert answer["citations"][0]["n"] == 1


async def test_an_answer_written_in_urdu_is_translated_on_from_what_was_written(client, language_model):
    """With a model, an Urdu answer is written in Urdu (no English original is kept), so another language starts from it."""
    headers = fresh()

    def model(body: dict) -> str:
        system = body["messages"][0]["content"]
        if "Write your whole reply in Urdu" in system:  # the answer is written in Urdu directly
            return "ur:Run `ros2 topic list` ur:to ur:see ur:the ur:topics [1]."
        if "Translate the user's Markdown" not in system:
            return "Run `ros2 topic list` to see the topics [1]."
        tag = "ur" if "Urdu" in system else "fr"
        text = body["messages"][-1]["content"]
        return " ".join(w if PLACEHOLDER.fullmatch(w.strip()) else f"{tag}:{w}" for w in text.split(" "))

    language_model.respond_with(model)
    thread_id, message_id = await start_thread(client, headers, "Which command lists ROS 2 topics?", language="ur")
    stored = (await client.get(f"/v1/threads/{thread_id}", headers=headers)).json()["messages"][-1]
    assert stored["id"] == message_id and (stored["language"], stored["direction"]) == ("ur", "rtl")
    assert "ur:Run" in stored["content"]

    response = await client.post(
        f"/v1/threads/{thread_id}/messages/{message_id}/translate", json={"language": "fr"}, headers=headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["direction"] == "ltr"
    assert response.json()["text"].startswith("fr:ur:Run `ros2 topic list`")


async def test_translate_a_past_answer_needs_the_readers_thread(client):
    owner = fresh("owner")
    thread_id, message_id = await start_thread(client, owner)
    body = {"language": "ur"}

    stranger = await client.post(
        f"/v1/threads/{thread_id}/messages/{message_id}/translate", json=body, headers=fresh("other")
    )
    unknown = await client.post(f"/v1/threads/{uuid.uuid4()}/messages/{message_id}/translate", json=body, headers=owner)
    missing = await client.post(f"/v1/threads/{thread_id}/messages/nope/translate", json=body, headers=owner)
    offline = await client.post(f"/v1/threads/{thread_id}/messages/{message_id}/translate", json=body, headers=owner)

    assert_error(stranger, 404, "thread_not_found")
    assert_error(unknown, 404, "thread_not_found")
    assert_error(missing, 404, "message_not_found")
    assert_error(offline, 503, "model_required")


# -- ingest ------------------------------------------------------------------------------------------


async def test_ingest_needs_an_admin(client, tmp_path):
    for headers in (fresh(), await new_visitor(client), auth(f"user-{uuid.uuid4().hex[:8]}", role="editor")):
        response = await client.post("/v1/ingest", json={"path": str(tmp_path)}, headers=headers)
        assert_error(response, 403, "forbidden")


@pytest.mark.parametrize(
    "make_path, code",
    [
        (lambda tmp: tmp / "no-such-book" / "docs", "docs_not_found"),
        (lambda tmp: tmp, "docs_empty"),
    ],
)
async def test_admin_ingest_reports_unusable_folders(client, app, tmp_path, make_path, code):
    # Only failing ingests here: a real one would change the index the other tests search.
    (tmp_path / "notes.txt").write_text("not Markdown")

    response = await client.post(
        "/v1/ingest", json={"path": str(make_path(tmp_path))}, headers=auth("admin-1", role="admin")
    )

    error = assert_error(response, 400, code)
    assert str(tmp_path) in error["message"]


async def test_admin_ingest_refuses_unknown_fields(client, tmp_path):
    response = await client.post(
        "/v1/ingest", json={"path": str(tmp_path), "rebuld": True}, headers=auth("admin-1", role="admin")
    )

    assert_error(response, 422, "invalid_request")


# -- OpenAPI -----------------------------------------------------------------------------------------


async def test_openapi_lists_the_new_paths_and_docs_serve(client):
    schema = await client.get("/openapi.json")
    docs = await client.get("/docs")

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"get"} <= set(paths["/v1/threads"])
    assert {"get", "delete"} <= set(paths["/v1/threads/{thread_id}"])
    assert {"get", "put"} <= set(paths["/v1/profile"])
    assert "post" in paths["/v1/threads/{thread_id}/messages/{message_id}/feedback"]
    assert "post" in paths["/v1/threads/{thread_id}/messages/{message_id}/translate"]
    assert "post" in paths["/v1/translate"]
    assert "post" in paths["/v1/ingest"]
    assert paths["/v1/translate"]["post"]["description"], "route docstrings become descriptions"
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
