"""Text Postgres cannot store (a NUL character) is refused with 400 before anything is written."""

from __future__ import annotations

import pytest

from tests.server.test_threads import fresh, start_thread

NUL = "before\u0000after"


@pytest.mark.parametrize(
    "body",
    [{"goals": NUL}, {"software_background": NUL}, {"preferred_language": NUL}],
)
async def test_a_profile_with_a_nul_character_is_refused_and_not_saved(client, body):
    headers = fresh()
    response = await client.put("/v1/profile", json=body, headers=headers)

    assert response.status_code == 400 and response.json()["error"]["code"] == "nul_character"
    assert "NUL" in response.json()["error"]["message"]
    assert (await client.get("/v1/profile", headers=headers)).json()["goals"] == ""


async def test_a_feedback_comment_with_a_nul_character_is_refused_and_not_saved(client):
    headers = fresh()
    thread_id, message_id = await start_thread(client, headers)
    url = f"/v1/threads/{thread_id}/messages/{message_id}/feedback"

    refused = await client.post(url, json={"rating": 1, "comment": NUL}, headers=headers)
    # The connection and the thread stay usable: the same rating without the NUL is taken.
    taken = await client.post(url, json={"rating": 1, "comment": "fine"}, headers=headers)

    assert refused.status_code == 400 and refused.json()["error"]["code"] == "nul_character"
    assert taken.status_code in (200, 201)


@pytest.mark.parametrize("field", ["message", "page", "selected_text"])
async def test_a_turn_with_a_nul_character_is_refused_before_a_thread_exists(client, field):
    headers = fresh()
    body = {"message": "What is a topic?", field: NUL}

    response = await client.post("/v1/chat", json=body, headers=headers)

    assert response.status_code == 400 and response.json()["error"]["code"] == "nul_character"
    assert (await client.get("/v1/threads", headers=headers)).json()["threads"] == []


async def test_a_chapter_with_a_nul_character_is_refused(client):
    response = await client.post(
        "/v1/chapters/translate", json={"markdown": f"# Title\n\n{NUL}", "language": "ur"}, headers=fresh()
    )

    assert response.status_code == 400 and response.json()["error"]["code"] == "nul_character"
