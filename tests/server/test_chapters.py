"""Chapters over HTTP: translation and personalization streams, their Postgres cache, status and errors."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import CORPUS
from tests.server.test_profile import FULL, assert_error
from tests.server.test_threads import fresh, sse_events
from tests.tools.test_chapters import fake_urdu, fenced_blocks
from booktutor.tools.chapters import heading_levels, split_sections

BOOK_PAGES = sorted([*CORPUS.rglob("*.md"), *CORPUS.rglob("*.mdx")]) if CORPUS.is_dir() else []
NODES_TOPICS = CORPUS / "01-ros2" / "02-nodes-topics.md"
# A page of the ingested index; only the status test translates it (into Persian), so its cache is its own.
INDEXED_PATH = "01-ros2/02-nodes-topics.md"


def urdu_model(body: dict) -> str:
    """The scripted model: translate the user message the way `fake_urdu` does."""
    return fake_urdu(body["messages"][-1]["content"])


def isolated(markdown: str) -> tuple[str, str]:
    """The chapter with a unique sentence at the end of every section, so no other test's cache serves it.

    Returns (markdown, token); section n carries the word `<token>n`.
    """
    token = f"run{uuid.uuid4().hex[:8]}x"
    sections = split_sections(markdown)
    return "".join(s.rstrip("\n") + f"\n\nNote {token}{n}.\n\n" for n, s in enumerate(sections)), token


async def stream(client, url: str, body: dict, headers: dict[str, str]) -> list[tuple[str, dict]]:
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response.text)


def sections_of(events: list[tuple[str, dict]]) -> list[dict]:
    return [data for name, data in events if name == "section"]


def chapter_text(events: list[tuple[str, dict]]) -> str:
    return "".join(s["text"] for s in sections_of(events))


async def save_profile(client, headers: dict[str, str], **fields) -> dict:
    response = await client.put("/v1/profile", json={**FULL, **fields}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# -- translation -----------------------------------------------------------------------------------------


async def test_translate_streams_metadata_sections_in_order_then_done(client, language_model):
    language_model.respond_with(urdu_model)
    markdown, _ = isolated(NODES_TOPICS.read_text(encoding="utf-8"))

    response = await client.post("/v1/chapters/translate", json={"markdown": markdown, "language": "ur-PK"}, headers=fresh())

    assert response.status_code == 200, response.text
    assert response.headers["content-language"] == "ur"
    ids = re.findall(r"(?m)^id: (\S+)", response.text)
    events = sse_events(response.text)
    assert ids == [str(n) for n in range(len(events))]
    assert all(data["type"] == name for name, data in events)
    names = [name for name, _ in events]
    assert names[0] == "metadata" and names[-1] == "done" and set(names[1:-1]) == {"section"}
    metadata, done = events[0][1], events[-1][1]
    sections = sections_of(events)
    assert metadata["language"] == "ur" and metadata["direction"] == "rtl"
    assert metadata["sections"] == len(sections) == len(split_sections(markdown)) and len(metadata["content_hash"]) == 64
    assert [s["index"] for s in sections] == list(range(len(sections)))
    assert done == {
        "type": "done",
        "language": "ur",
        "direction": "rtl",
        "sections": len(sections),
        "cached_sections": 0,
        "flagged_sections": 0,
    }
    translated = chapter_text(events)
    assert "ur:Nodes" in translated
    assert heading_levels(translated) == heading_levels(markdown)
    for block in fenced_blocks(markdown):
        assert translated.count(block) == markdown.count(block)
    # Frontmatter (keys and slug-like values) and MDX imports are untouched.
    assert translated.startswith(markdown[: markdown.index("\n---", 3) + 4])
    assert "import ReadingTime from '@site/src/components/ReadingTime';" in translated


async def test_every_chapter_of_the_book_keeps_its_code_and_headings(client, language_model):
    language_model.respond_with(urdu_model)
    headers = fresh()
    for page in BOOK_PAGES:
        text = page.read_text(encoding="utf-8")

        events = await stream(client, "/v1/chapters/translate", {"markdown": text, "language": "ur"}, headers)

        name = str(page.relative_to(CORPUS))
        assert events[-1][0] == "done", (name, events[-1])
        assert events[-1][1]["flagged_sections"] == 0, name
        translated = chapter_text(events)
        assert heading_levels(translated) == heading_levels(text), name
        for block in fenced_blocks(text):
            assert translated.count(block) == text.count(block), (name, block[:80])
        for span in re.findall(r"`[^`\n]+`", text):
            assert span in translated, (name, span)


async def test_a_repeat_request_streams_from_the_cache_with_no_model_call(client, language_model):
    language_model.respond_with(urdu_model)
    markdown, _ = isolated(NODES_TOPICS.read_text(encoding="utf-8"))
    body = {"markdown": markdown, "language": "ur"}

    first = await stream(client, "/v1/chapters/translate", body, fresh())
    calls = len(language_model.requests)
    assert calls >= len(sections_of(first)) - 1
    second = await stream(client, "/v1/chapters/translate", body, fresh("someone-else"))

    assert len(language_model.requests) == calls, "served from the cache"
    assert chapter_text(second) == chapter_text(first)
    assert all(s["cached"] and not s["flagged"] for s in sections_of(second))
    assert second[-1][1]["cached_sections"] == second[-1][1]["sections"]
    assert second[0][1]["content_hash"] == first[0][1]["content_hash"]


async def test_an_edited_chapter_misses_the_cache_and_redoes_only_the_changed_section(client, language_model):
    language_model.respond_with(urdu_model)
    markdown, token = isolated(NODES_TOPICS.read_text(encoding="utf-8"))
    first = await stream(client, "/v1/chapters/translate", {"markdown": markdown, "language": "ur"}, fresh())
    calls = len(language_model.requests)

    edited = markdown.replace(f"Note {token}4.", f"Note {token}4, now edited.")
    second = await stream(client, "/v1/chapters/translate", {"markdown": edited, "language": "ur"}, fresh())

    assert second[0][1]["content_hash"] != first[0][1]["content_hash"]
    assert len(language_model.requests) == calls + 1
    assert [s["cached"] for s in sections_of(second)] == [s["index"] != 4 for s in sections_of(second)]
    assert "ur:edited." in sections_of(second)[4]["text"]


async def test_another_language_is_another_translation(client, language_model):
    language_model.respond_with(urdu_model)
    markdown, _ = isolated("# Topics\n\nA topic is a bus.\n\n## QoS\n\nReliable or best effort.\n")
    await stream(client, "/v1/chapters/translate", {"markdown": markdown, "language": "ur"}, fresh())
    calls = len(language_model.requests)

    arabic = await stream(client, "/v1/chapters/translate", {"markdown": markdown, "language": "ar"}, fresh())

    assert len(language_model.requests) == calls + 2
    assert "Arabic" in language_model.requests[-1]["messages"][0]["content"]
    assert arabic[-1][1]["direction"] == "rtl" and not any(s["cached"] for s in sections_of(arabic))


async def test_a_model_error_mid_chapter_keeps_earlier_sections_and_names_the_failed_one(client, language_model):
    markdown, token = isolated(NODES_TOPICS.read_text(encoding="utf-8"))

    def failing_on_section_3(body: dict) -> str:
        text = body["messages"][-1]["content"]
        if f"{token}3." in text:
            raise RuntimeError("the model fell over")
        return fake_urdu(text)

    language_model.respond_with(failing_on_section_3)
    body = {"markdown": markdown, "language": "ur"}

    events = await stream(client, "/v1/chapters/translate", body, fresh())

    assert [name for name, _ in events] == ["metadata", "section", "section", "section", "error"]
    assert [s["index"] for s in sections_of(events)] == [0, 1, 2]
    error = events[-1][1]
    assert error["code"] == "model_error" and error["section"] == 3 and error["message"]

    language_model.respond_with(urdu_model)
    again = await stream(client, "/v1/chapters/translate", body, fresh())

    assert again[-1][0] == "done"
    assert [s["cached"] for s in sections_of(again)][:4] == [True, True, True, False]
    assert [s["text"] for s in sections_of(again)][:3] == [s["text"] for s in sections_of(events)]


async def test_a_section_that_fails_verification_is_flagged_and_left_untranslated(client, language_model):
    markdown, token = isolated("# Topics\n\nRun `ros2 topic list`.\n\n## QoS\n\nReliable.\n")

    def loses_code(body: dict) -> str:
        return fake_urdu(body["messages"][-1]["content"]).replace("⟦0⟧", "")

    language_model.respond_with(loses_code)
    events = await stream(client, "/v1/chapters/translate", {"markdown": markdown, "language": "ur"}, fresh())

    first, second = sections_of(events)
    assert first["flagged"] and first["text"] == split_sections(markdown)[0]
    assert not second["flagged"]
    assert events[-1][1]["flagged_sections"] == 1
    assert len(language_model.requests) == 3  # section 0 twice (a retry), section 1 once


async def test_translate_to_english_streams_the_chapter_unchanged_without_a_model(client):
    markdown = "# Topics\n\nA topic is a bus.\n"
    events = await stream(client, "/v1/chapters/translate", {"markdown": markdown, "language": "en"}, fresh())
    assert chapter_text(events) == markdown and events[-1][1]["direction"] == "ltr"


# -- personalization -------------------------------------------------------------------------------------


def echo_model(body: dict) -> str:
    """A 'personalizer' that keeps the section and adds a sentence: structure intact."""
    return body["messages"][-1]["content"] + "\n\nIn other words: tailored."


async def test_personalize_uses_the_stored_profile_not_one_in_the_request(client, language_model):
    language_model.respond_with(echo_model)
    headers = fresh()
    goals = f"Build a biped that climbs stairs {uuid.uuid4().hex[:6]}"
    await save_profile(client, headers, goals=goals, experience_level="beginner")
    markdown, _ = isolated("# Topics\n\nA topic is a bus. Run `ros2 topic list`.\n\n## QoS\n\nReliable.\n")

    events = await stream(
        client,
        "/v1/chapters/personalize",
        {
            "markdown": markdown,
            "profile": {"goals": "Hack the planet", "experience_level": "advanced"},
            "goals": "Hack the planet",
        },
        headers,
    )

    assert events[-1][0] == "done", events[-1]
    assert events[0][1]["mode"] == "personalize"
    assert len(language_model.requests) == 2
    for request in language_model.requests:
        system = request["messages"][0]["content"]
        assert goals in system and "beginner" in system and FULL["software_background"] in system
        assert "Hack the planet" not in system and "advanced" not in system
        assert "ros2 topic list" not in request["messages"][-1]["content"]
    text = chapter_text(events)
    assert "In other words: tailored." in text and "`ros2 topic list`" in text
    assert heading_levels(text) == [1, 2]


async def test_a_changed_profile_misses_the_cache(client, language_model):
    language_model.respond_with(echo_model)
    headers = fresh()
    await save_profile(client, headers, goals=f"Walk {uuid.uuid4().hex[:6]}")
    markdown, _ = isolated("# Topics\n\nA topic is a bus.\n\n## QoS\n\nReliable.\n")
    body = {"markdown": markdown}

    await stream(client, "/v1/chapters/personalize", body, headers)
    assert len(language_model.requests) == 2
    repeat = await stream(client, "/v1/chapters/personalize", body, headers)
    assert len(language_model.requests) == 2 and all(s["cached"] for s in sections_of(repeat))

    await save_profile(client, headers, goals="Run instead")
    changed = await stream(client, "/v1/chapters/personalize", body, headers)

    assert len(language_model.requests) == 4
    assert not any(s["cached"] for s in sections_of(changed))
    assert "Run instead" in language_model.requests[-1]["messages"][0]["content"]


async def test_a_rewrite_that_drops_a_heading_is_flagged(client, language_model):
    language_model.respond_with(lambda body: "Just a summary, no headings.")
    headers = fresh()
    await save_profile(client, headers, goals=f"Walk {uuid.uuid4().hex[:6]}")
    markdown, _ = isolated("# Topics\n\nA topic is a bus.\n")

    events = await stream(client, "/v1/chapters/personalize", {"markdown": markdown}, headers)

    (section,) = sections_of(events)
    assert section["flagged"] and section["text"] == markdown
    assert len(language_model.requests) == 2


async def test_personalize_needs_a_stored_profile(client, language_model):
    body = {"markdown": "# Topics\n\nA topic is a bus.\n", "profile": FULL}
    error = assert_error(await client.post("/v1/chapters/personalize", json=body, headers=fresh()), 409, "profile_required")
    assert "PUT /v1/profile" in error["message"]

    only_language = fresh()
    response = await client.put("/v1/profile", json={"preferred_language": "ur"}, headers=only_language)
    assert response.status_code == 200
    assert_error(await client.post("/v1/chapters/personalize", json=body, headers=only_language), 409, "profile_required")
    assert language_model.requests == []


# -- offline and bad input -------------------------------------------------------------------------------


async def test_offline_both_endpoints_answer_model_required_before_streaming(client):
    headers = fresh()
    await save_profile(client, headers)
    markdown = "# Topics\n\nA topic is a bus.\n"

    translate = await client.post("/v1/chapters/translate", json={"markdown": markdown, "language": "ur"}, headers=headers)
    personalize = await client.post("/v1/chapters/personalize", json={"markdown": markdown}, headers=headers)

    for response, variable in ((translate, "BOOKTUTOR_TRANSLATE_MODEL"), (personalize, "BOOKTUTOR_PERSONALIZE_MODEL")):
        error = assert_error(response, 503, "model_required")
        assert "OPENAI_API_KEY" in error["message"] and "OPENAI_BASE_URL" in error["message"]
        assert variable in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"path": "99-nowhere/missing.md", "language": "ur"}, 404, "chapter_not_found"),
        ({"markdown": "  \n\n", "language": "ur"}, 400, "chapter_empty"),
        ({"markdown": "", "language": "ur"}, 400, "chapter_empty"),
        ({"markdown": "word " * 40_001, "language": "ur"}, 413, "chapter_too_large"),
        ({"markdown": "# Hi\n\nText.\n", "language": "klingon"}, 400, "unsupported_language"),
        ({"language": "ur"}, 422, "invalid_request"),
        ({"markdown": "# Hi\n", "path": INDEXED_PATH, "language": "ur"}, 422, "invalid_request"),
        ({"markdown": "# Hi\n"}, 422, "invalid_request"),
        ({"markdown": 5, "language": "ur"}, 422, "invalid_request"),
    ],
)
async def test_translate_refuses_bad_input(client, language_model, body, status, code):
    assert_error(await client.post("/v1/chapters/translate", json=body, headers=fresh()), status, code)
    assert language_model.requests == []


async def test_personalize_refuses_bad_input(client, language_model):
    headers = fresh()
    await save_profile(client, headers)
    for body, status, code in (
        ({"path": "99-nowhere/missing.md"}, 404, "chapter_not_found"),
        ({"markdown": "\n"}, 400, "chapter_empty"),
        ({}, 422, "invalid_request"),
        ({"markdown": "# Hi\n", "path": INDEXED_PATH}, 422, "invalid_request"),
    ):
        assert_error(await client.post("/v1/chapters/personalize", json=body, headers=headers), status, code)
    assert language_model.requests == []


def test_chapter_settings_have_defaults_and_environment_variables(monkeypatch):
    from booktutor.server.settings import Settings

    assert (Settings().chapter_concurrency, Settings().max_chapter_chars) == (4, 200_000)
    monkeypatch.setenv("BOOKTUTOR_CHAPTER_CONCURRENCY", "2")
    monkeypatch.setenv("BOOKTUTOR_MAX_CHAPTER_CHARS", "5000")
    assert (Settings().chapter_concurrency, Settings().max_chapter_chars) == (2, 5000)


# -- a page of the book index, and its status ------------------------------------------------------------


async def test_status_flips_to_ready_after_a_full_translation_and_personalization(client, language_model):
    language_model.respond_with(urdu_model)
    headers = fresh()
    await save_profile(client, headers, goals=f"Walk {uuid.uuid4().hex[:6]}")
    query = {"path": INDEXED_PATH, "language": "fa", "personalized": "true"}

    before = await client.get("/v1/chapters/status", params=query, headers=headers)
    assert before.status_code == 200, before.text
    status = before.json()
    total = status["sections"]
    assert total > 1 and status["path"] == INDEXED_PATH
    assert status["translated"] == {"ready": False, "sections": total, "cached": 0, "language": "fa", "direction": "rtl"}
    assert status["personalized"] == {"ready": False, "sections": total, "cached": 0, "profile": True}

    events = await stream(client, "/v1/chapters/translate", {"path": INDEXED_PATH, "language": "fa"}, headers)
    metadata = events[0][1]
    assert metadata["path"] == INDEXED_PATH and metadata["title"] == "Nodes and Topics: The Publish-Subscribe Pattern"
    assert metadata["sections"] == total and metadata["content_hash"] == status["content_hash"]
    assert events[-1][0] == "done" and events[-1][1]["flagged_sections"] == 0
    assert "```python" in chapter_text(events)

    middle = (await client.get("/v1/chapters/status", params=query, headers=headers)).json()
    assert middle["translated"]["ready"] and middle["translated"]["cached"] == total
    assert not middle["personalized"]["ready"]

    language_model.respond_with(echo_model)
    await stream(client, "/v1/chapters/personalize", {"path": INDEXED_PATH}, headers)
    after = (await client.get("/v1/chapters/status", params=query, headers=headers)).json()
    assert after["personalized"] == {"ready": True, "sections": total, "cached": total, "profile": True}

    # another reader's personalization is not ready: their profile is different
    other = (await client.get("/v1/chapters/status", params={"path": INDEXED_PATH, "personalized": "true"}, headers=fresh())).json()
    assert other["translated"] is None
    assert other["personalized"] == {"ready": False, "sections": total, "cached": 0, "profile": False}


async def test_status_refuses_bad_input(client):
    headers = fresh()
    assert_error(await client.get("/v1/chapters/status", params={"path": "nope.md", "language": "ur"}, headers=headers), 404, "chapter_not_found")
    assert_error(await client.get("/v1/chapters/status", params={"path": INDEXED_PATH, "language": "xx"}, headers=headers), 400, "unsupported_language")
    assert_error(await client.get("/v1/chapters/status", params={"path": INDEXED_PATH}, headers=headers), 422, "invalid_request")
    assert_error(await client.get("/v1/chapters/status", params={"language": "ur"}, headers=headers), 422, "invalid_request")
