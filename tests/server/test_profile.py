"""The reader's profile over HTTP: defaults, a saved round trip, and every way a body is refused."""

from __future__ import annotations


from tests.server.conftest import new_visitor
from tests.server.test_threads import fresh

DEFAULTS = {
    "software_background": "",
    "hardware_background": "",
    "experience_level": "",
    "goals": "",
    "preferred_language": "en",
}

FULL = {
    "software_background": "Python and a little C++",
    "hardware_background": "Arduino kits, no robot arm yet",
    "experience_level": "beginner",
    "goals": "Build a line-following robot with ROS 2.",
    "preferred_language": "ur",
}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


async def test_profile_defaults_when_none_saved(client):
    response = await client.get("/v1/profile", headers=fresh())

    assert response.status_code == 200
    assert response.json() == DEFAULTS


async def test_put_then_get_round_trip(client):
    headers = fresh()

    saved = await client.put("/v1/profile", json=FULL, headers=headers)

    assert saved.status_code == 200
    assert saved.json() == FULL
    assert (await client.get("/v1/profile", headers=headers)).json() == FULL


async def test_put_replaces_the_whole_profile(client):
    headers = fresh()
    await client.put("/v1/profile", json=FULL, headers=headers)

    response = await client.put("/v1/profile", json={"goals": "Pass the course."}, headers=headers)

    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, "goals": "Pass the course."}
    assert (await client.get("/v1/profile", headers=headers)).json() == {**DEFAULTS, "goals": "Pass the course."}


async def test_language_is_normalised_and_text_trimmed(client):
    headers = fresh()

    response = await client.put(
        "/v1/profile", json={"preferred_language": "UR_pk", "goals": "  robots  "}, headers=headers
    )

    assert response.status_code == 200
    assert response.json()["preferred_language"] == "ur"
    assert response.json()["goals"] == "robots"


async def test_profiles_are_per_reader(client):
    mine, theirs = fresh(), fresh()
    await client.put("/v1/profile", json=FULL, headers=mine)

    assert (await client.get("/v1/profile", headers=theirs)).json() == DEFAULTS


async def test_anonymous_visitor_keeps_a_profile_under_their_visitor_id(client):
    visitor = await new_visitor(client)

    saved = await client.put("/v1/profile", json={**FULL, "preferred_language": "fr"}, headers=visitor)

    assert saved.status_code == 200
    assert saved.headers["X-Visitor-Id"] == visitor["X-Visitor-Id"]
    assert (await client.get("/v1/profile", headers=visitor)).json()["preferred_language"] == "fr"
    assert (await client.get("/v1/profile", headers=await new_visitor(client))).json() == DEFAULTS


async def test_an_invented_visitor_id_reads_nothing(client):
    owner = await new_visitor(client)
    await client.put("/v1/profile", json=FULL, headers=owner)
    nonce = owner["X-Visitor-Id"].split(".")[0]

    for invented in ("reader-demo-123", nonce, f"{nonce}.forged-signature", owner["X-Visitor-Id"] + "x"):
        response = await client.get("/v1/profile", headers={"X-Visitor-Id": invented})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_visitor_id"


async def test_unknown_field_is_refused(client):
    headers = fresh()

    response = await client.put("/v1/profile", json={**FULL, "favourite_robot": "R2-D2"}, headers=headers)

    error = assert_error(response, 422, "invalid_request")
    assert "favourite_robot" in error["message"]
    assert (await client.get("/v1/profile", headers=headers)).json() == DEFAULTS, "nothing was saved"


async def test_bad_experience_level_is_refused(client):
    response = await client.put("/v1/profile", json={"experience_level": "expert"}, headers=fresh())

    error = assert_error(response, 422, "invalid_request")
    assert "experience_level" in error["message"]


async def test_unsupported_language_is_refused(client):
    headers = fresh()
    for language in ("klingon", "xx", ""):
        response = await client.put("/v1/profile", json={"preferred_language": language}, headers=headers)
        error = assert_error(response, 400, "unsupported_language")
        assert "ur" in error["message"], "the message lists the supported languages"
    assert (await client.get("/v1/profile", headers=headers)).json() == DEFAULTS


async def test_too_long_fields_are_refused(client):
    headers = fresh()
    for field, limit in (("software_background", 500), ("hardware_background", 500), ("goals", 1000)):
        response = await client.put("/v1/profile", json={field: "x" * (limit + 1)}, headers=headers)
        assert_error(response, 422, "invalid_request")
        ok = await client.put("/v1/profile", json={field: "x" * limit}, headers=headers)
        assert ok.status_code == 200


async def test_wrong_types_are_refused(client):
    headers = fresh()
    for body in ({"goals": 5}, {"experience_level": None}, {"preferred_language": ["ur"]}, ["not", "an", "object"]):
        response = await client.put("/v1/profile", json=body, headers=headers)
        assert_error(response, 422, "invalid_request")


async def test_malformed_json_is_refused(client):
    response = await client.put(
        "/v1/profile", content=b'{"goals": "robots"', headers={**fresh(), "Content-Type": "application/json"}
    )

    assert_error(response, 400, "malformed_json")
