"""The widget with a language model (the scripted OpenAI-compatible server): Urdu answers right to
left, a chapter translated section by section, and a hostile answer rendered inert."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.openai_stub import ScriptedOpenAI
from tests.widget.conftest import CuttingProxy, Server, ask, ingested_sample_book, open_demo, paints, record_paints, screenshot

PID_PAGE = "/demo/motion/pid-control"
URDU_WORDS = ["روبوٹ", "کنٹرولر", "غلطی", "رفتار", "حصہ", "اصول"]
PLACEHOLDER = re.compile(r"(⟦\d+⟧)")
HOSTILE = "XSS-PROBE"
SLOW = "SLOW-PROBE"
HOSTILE_ANSWER = (
    "Here is an image <img src=x onerror=\"window.__xss='answer-img'\"> and a script "
    "<script>window.__xss='answer-script'</script>, a [link](javascript:window.__xss='answer-link') "
    "and <a href=\"javascript:window.__xss='answer-a'\" onclick=\"window.__xss='answer-click'\">another</a> [1]."
)
ANSWER = (
    "The derivative term reacts to how fast the error is changing [1], which damps overshoot.\n\n"
    "```python\nd_term = kd * (error - previous_error) / dt\n```\n\nTune it after `Kp` [2]."
)


def to_urdu(text: str) -> str:
    """'Translate' the way a careful model does: words become Urdu, placeholders and Markdown stay."""
    words = iter(URDU_WORDS * 1000)
    return "".join(
        part if PLACEHOLDER.fullmatch(part) else re.sub(r"[A-Za-z][A-Za-z'-]*", lambda _: next(words), part)
        for part in PLACEHOLDER.split(text)
    )


def scripted_model(body: dict) -> str:
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    last = body["messages"][-1]["content"]
    if isinstance(last, list):
        last = "".join(part.get("text", "") for part in last)
    if "Translate the user's Markdown text" in system:
        return to_urdu(last)
    if "standalone search query" in system:
        found = re.search(r"Latest message: (.*)", last)
        return found.group(1).strip() if found else last
    if "adapt one section of a textbook chapter" in system:
        return last
    if SLOW in last:
        time.sleep(4)  # a model that takes its time, so the reader can press Stop
    if "Write your whole reply in Urdu" in system:
        return to_urdu(ANSWER)  # a reader whose language is Urdu gets the answer written in it
    return HOSTILE_ANSWER if HOSTILE in last else ANSWER


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url):
    model = ScriptedOpenAI()
    model.start()
    model.respond_with(scripted_model)
    home = tmp_path_factory.mktemp("widget-model")
    ingested_sample_book(home, database_url)
    server = Server(
        home,
        database_url,
        {"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": "test-key", "BOOKTUTOR_MODEL_RETRIES": "0"},
    )
    server.model = model
    yield server
    server.stop()
    model.stop()


def widget(page):
    return page.locator("booktutor-widget")


def test_a_model_answer_paints_in_as_its_tokens_arrive_with_sources_first(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    record_paints(page)
    server.model.token_delay = 0.03  # a model writing about 30 tokens a second
    try:
        ask(page, "How does the derivative term work?")
    finally:
        server.model.token_delay = 0.0

    seen = paints(page)
    lengths = [s["body"] for s in seen if s["body"]]
    assert len(set(lengths)) >= 5 and lengths[0] < lengths[-1], "the answer should stream in, not appear whole"
    assert all(s["sources"] for s in seen if s["body"]), "sources are shown before the first token"


def test_an_answer_translated_to_urdu_is_right_to_left_with_code_left_to_right(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    ask(page, "How does the derivative term work?")
    turn = widget(page).locator(".turn").last
    turn.locator("button.translate").click()
    translation = turn.locator(".translation")
    translation.wait_for(state="visible")
    assert translation.get_attribute("dir") == "rtl" and translation.get_attribute("lang") == "ur"
    assert "روبوٹ" in translation.inner_text()
    code = translation.locator("pre").first
    assert code.evaluate("el => getComputedStyle(el).direction") == "ltr"
    assert "d_term = kd * (error - previous_error) / dt" in code.inner_text()
    font = translation.evaluate("el => getComputedStyle(el).fontFamily")
    assert "Nastaliq" in font or "Naskh" in font
    screenshot(page, "10-answer-translated-to-urdu")


def test_urdu_kept_in_the_profile_makes_answers_right_to_left(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    page.evaluate("() => window.booktutor.open()")
    panel = widget(page)
    panel.locator("button.profile-toggle").click()
    panel.locator("form.profile-form [name=preferred_language]").select_option("ur")
    panel.locator("form.profile-form button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('booktutor-widget').shadowRoot.querySelector('.status').textContent.includes('Profile saved')"
    )
    answer = ask(page, "How does the derivative term work?")
    assert answer["language"] == "ur" and answer["direction"] == "rtl"
    body = panel.locator(".turn").last.locator(".answer-body").first
    assert body.get_attribute("dir") == "rtl" and body.get_attribute("lang") == "ur"
    assert body.evaluate("el => getComputedStyle(el).direction") == "rtl"
    # Citation markers survive translation and still link to their sections.
    assert body.locator("a.bt-cite").count() >= 1
    screenshot(page, "11-urdu-answer-rtl")


def test_a_chapter_is_translated_section_by_section_and_the_original_returns(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    original_heading = page.locator("article h1").first.inner_text()
    chapter = page.locator("booktutor-chapter")
    chapter.locator("button.translate-chapter").click()
    progress = chapter.locator(".progress")
    page.wait_for_function(
        "() => document.querySelector('booktutor-chapter').shadowRoot.querySelector('.progress').textContent.startsWith('Chapter translated')"
    )
    view = chapter.locator(".chapter-view")
    assert view.get_attribute("dir") == "rtl" and view.get_attribute("lang") == "ur"
    sections = view.locator("section")
    total = int(re.search(r"(\d+) sections", progress.inner_text()).group(1))
    assert total > 1 and sections.count() == total
    assert [sections.nth(i).get_attribute("data-index") for i in range(total)] == [str(i) for i in range(total)]
    # Code stays byte-identical and left to right inside the right-to-left chapter.
    assert view.locator("pre", has_text="class PID:").count() == 1
    assert view.locator("pre").first.evaluate("el => getComputedStyle(el).direction") == "ltr"
    assert page.locator("article h1").first.is_hidden()
    screenshot(page, "12-chapter-translated")

    chapter.locator("button.show-original").click()
    assert page.locator("article h1").first.is_visible()
    assert page.locator("article h1").first.inner_text() == original_heading
    assert view.is_hidden()

    # Asked again, the cached chapter says so.
    page.reload()
    page.wait_for_function(
        "() => document.querySelector('booktutor-chapter')?.shadowRoot.querySelector('.translate-chapter').textContent.includes('ready')"
    )


def test_a_hostile_model_answer_is_rendered_inert(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    answer = ask(page, f"{HOSTILE}: what is a PID controller?")
    assert "<script>" in answer["text"]
    body = widget(page).locator(".turn").last.locator(".answer-body").first
    assert body.locator("img, script, [onerror], [onclick]").count() == 0
    for link in body.locator("a").all():
        href = link.get_attribute("href") or ""
        assert not href.lower().startswith("javascript:")
    body.locator("a", has_text="another").click()
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__xss") is None
    assert not page.errors
    screenshot(page, "13-hostile-answer-inert")


def test_stop_cancels_the_run_and_says_so(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    page.evaluate(f"() => {{ window.booktutor.ask('{SLOW}: what is a PID controller?'); }}")
    panel = widget(page)
    stop = panel.locator("button", has_text="Stop")
    stop.wait_for(state="visible")
    page.wait_for_function("() => window.booktutor.threadId")
    stop.click()
    turn = panel.locator(".turn").last
    turn.locator(".error-text", has_text="Stopped.").wait_for()
    assert stop.is_hidden()
    # The reader carries on: the next question is answered, not refused.
    answer = ask(page, "What is a PID controller?")
    assert answer["text"] == ANSWER


def test_urdu_split_anywhere_by_the_network_arrives_intact(server, new_page):
    # A reader whose profile asks for Urdu, reading through a network that splits every 7 bytes.
    saved = httpx.put(f"{server.url}/v1/profile", json={"preferred_language": "ur"})
    visitor = saved.headers["X-Visitor-Id"]
    proxy = CuttingProxy(server.port, drip=7)
    try:
        page = new_page()
        # The id is stored from a page without the widget, which would otherwise ask for one of its own.
        page.goto(proxy.url + "/healthz")
        page.evaluate("([key, id]) => localStorage.setItem(key, id)", [f"booktutor.visitor:{proxy.url}", visitor])
        open_demo(page, proxy.url, PID_PAGE)
        result = ask(page, "How does the derivative term work?")

        assert result["direction"] == "rtl" and "\ufffd" not in result["text"]
        stored = httpx.get(f"{server.url}/v1/threads/{result['threadId']}", headers={"X-Visitor-Id": visitor}).json()
        assert result["text"] == stored["messages"][-1]["content"]
        shown = widget(page).locator(".turn").last.locator(".answer-body").first.inner_text()
        assert "\ufffd" not in shown and "روبوٹ" in shown
    finally:
        proxy.close()
