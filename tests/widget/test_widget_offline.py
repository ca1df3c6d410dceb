"""The widget on the demo book with the offline model: asking, citations, selections, a dropped
connection, threads, profile, identity, keyboard use and inert HTML."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.widget.conftest import (
    CuttingProxy,
    Server,
    ask,
    ingested_sample_book,
    listen_for_answer,
    next_answer,
    open_demo,
    paints,
    record_paints,
    screenshot,
)

PID_PAGE = "/demo/motion/pid-control"
PUBSUB_PAGE = "/demo/software/publish-subscribe"


@pytest.fixture(scope="module")
def server(tmp_path_factory, database_url) -> Server:
    home = tmp_path_factory.mktemp("widget-offline")
    ingested_sample_book(home, database_url)
    server = Server(home, database_url)
    yield server
    server.stop()


def widget(page):
    return page.locator("booktutor-widget")


def visitor_id(page, server) -> str:
    return page.evaluate("key => localStorage.getItem(key)", f"booktutor.visitor:{server.url}")


# -- serving -----------------------------------------------------------------------------------------


def test_widget_js_is_served_from_the_package_and_fits_the_budget(server):
    response = httpx.get(f"{server.url}/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    import gzip

    assert len(gzip.compress(response.content, 9)) < 60 * 1024


def test_demo_lists_the_book_and_unknown_pages_are_404(server):
    index = httpx.get(f"{server.url}/demo/")
    assert index.status_code == 200 and '<script src="/widget.js"' in index.text
    assert 'href="/demo/motion/pid-control"' in index.text
    assert httpx.get(f"{server.url}/demo/no/such/page").status_code == 404


# -- asking ------------------------------------------------------------------------------------------


def test_ask_streams_tokens_with_sources_first_and_citations_link_to_their_section(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    # Record what the reader sees as the answer arrives: sources must be there before any token. (The
    # offline quote arrives in one burst, which the server sends as one or two events; a model's paced
    # tokens painting in one by one is checked in test_widget_model.py.)
    record_paints(page)
    answer = ask(page, "How do I tune a PID controller on a real robot?")

    seen = paints(page)
    assert any(s["body"] for s in seen)
    assert all(s["sources"] for s in seen if s["body"]), "sources are shown before the first token"
    assert answer["citations"], answer
    turn = widget(page).locator(".turn").last
    links = turn.locator(".answer-body a.bt-cite")
    assert links.count() >= 1
    by_n = {c["n"]: c for c in answer["citations"]}
    for i in range(links.count()):
        link = links.nth(i)
        cited = by_n[int(link.get_attribute("data-n"))]
        assert link.get_attribute("href") == cited["url"].replace("/docs", "/demo", 1)
    first = by_n[min(by_n)]
    assert first["path"] == "02-motion/03-pid-control.md"
    screenshot(page, "01-answer-with-citations")

    # Following a citation lands on the cited section of the demo page.
    links.first.click()
    page.wait_for_url(re.compile(r".*/demo/motion/pid-control#.+"))
    anchor = page.url.split("#", 1)[1]
    assert page.locator(f"article [id='{anchor}']").count() == 1


def test_select_text_then_explain_answers_about_the_selection(server, new_page):
    page = open_demo(new_page(), server.url, PUBSUB_PAGE)
    paragraph = page.locator("article p", has_text="In ROS terminology")
    paragraph.click(click_count=3)
    popover = widget(page).locator(".popover")
    popover.wait_for(state="visible")
    screenshot(page, "02-selection-popover")
    selected = page.evaluate("() => document.getSelection().toString().trim()")
    assert selected

    listen_for_answer(page)
    popover.locator("button.explain").click()
    answer = next_answer(page)

    turn = widget(page).locator(".turn").last
    assert turn.locator("blockquote.selection").inner_text().strip() == selected[:8000]
    # The passage the selection came from is the first source; the answer quotes what the book says
    # about the same things (publishers, subscribers), not the selection the reader already has.
    assert answer["sources"][0]["path"] == "03-software/01-publish-subscribe.md"
    assert answer["citations"]
    assert selected not in answer["text"], answer["text"]
    stems = {w.lower()[:6] for w in re.findall(r"[A-Za-z]{6,}", selected)}
    assert stems & {w.lower()[:6] for w in re.findall(r"[A-Za-z]{6,}", answer["text"])}, answer["text"]
    screenshot(page, "03-explained-selection")


def test_ask_about_this_quotes_the_selection_above_the_question(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    page.locator("article pre").first.click(click_count=3)
    widget(page).locator(".popover button.ask-about").click()
    pending = widget(page).locator(".composer blockquote.selection")
    assert "Kp" in pending.inner_text()
    textarea = widget(page).locator("textarea")
    assert textarea.evaluate("el => el.getRootNode().activeElement === el")
    textarea.fill("What do the three gains do?")
    listen_for_answer(page)
    textarea.press("Enter")
    answer = next_answer(page)
    turn = widget(page).locator(".turn").last
    assert "Kp" in turn.locator("blockquote.selection").inner_text()
    assert answer["citations"]


def test_a_dropped_connection_resumes_and_the_answer_arrives_once(server, new_page):
    proxy = CuttingProxy(server.port)
    try:
        page = open_demo(new_page(), proxy.url, PID_PAGE)
        blocked = []

        def refuse(route):
            blocked.append(route.request.url)
            route.abort()

        page.route("**/v1/runs/*/stream*", refuse)
        proxy.arm(tokens=2)
        listen_for_answer(page)
        page.evaluate("() => { window.booktutor.ask('How do I tune a PID controller on a real robot?'); }")
        status = widget(page).locator(".status")
        for _ in range(100):
            if blocked:
                break
            page.wait_for_timeout(100)
        # The stream broke part-way, the first attempt to resume hit the blocked route, and the reader is told.
        assert proxy.cuts == 1 and blocked
        assert "reconnecting" in status.inner_text()
        # The text shown so far is drawn on the next animation frame, which a loaded machine may delay.
        body = widget(page).locator(".turn").last.locator(".answer-body")
        for _ in range(50):
            if body.inner_text().strip():
                break
            page.wait_for_timeout(100)
        assert body.inner_text().strip(), "some of the answer arrived before the connection dropped"
        screenshot(page, "04-connection-lost-reconnecting")

        page.unroute("**/v1/runs/*/stream*")
        answer = next_answer(page)

        # Exactly the answer the server stored: nothing lost, nothing twice.
        stored = httpx.get(
            f"{server.url}/v1/threads/{answer['threadId']}", headers={"X-Visitor-Id": visitor_id(page, proxy)}
        ).json()
        assert answer["text"] == stored["messages"][-1]["content"]
        shown = widget(page).locator(".turn").last.locator(".answer-body").inner_text()
        # The answer's first words as the panel shows them (Markdown emphasis rendered away).
        opening = " ".join(re.sub(r"[*_`]", "", answer["text"]).split()[:5])
        assert shown.count(opening) == 1 and shown.count("Offline answer") == 1
        assert widget(page).locator(".turn").count() == 1
        screenshot(page, "05-resumed-answer")
    finally:
        proxy.close()


def test_a_connection_dropped_before_the_first_event_is_read_still_resumes(server, new_page):
    # The run's first event (its id) is cut in half: the widget learns the run from the response's
    # Content-Location header and picks the whole answer up from the server.
    proxy = CuttingProxy(server.port)
    try:
        page = open_demo(new_page(), proxy.url, PID_PAGE)
        proxy.arm(1, event="metadata")
        answer = ask(page, "What does the integral term of a PID controller do?")
        assert proxy.cuts == 1
        stored = httpx.get(
            f"{server.url}/v1/threads/{answer['threadId']}", headers={"X-Visitor-Id": visitor_id(page, proxy)}
        ).json()
        assert answer["text"] == stored["messages"][-1]["content"] and answer["citations"]
        assert widget(page).locator(".turn").count() == 1
    finally:
        proxy.close()


# -- the reader's things -----------------------------------------------------------------------------


def test_threads_are_listed_reopened_and_deleted(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    first = ask(page, "What is a setpoint?")
    page.evaluate("() => window.booktutor.newConversation()")
    second = ask(page, "What is a differential drive robot?")
    assert first["threadId"] != second["threadId"]

    panel = widget(page)
    panel.locator("button.threads-toggle").click()
    items = panel.locator(".threads li")
    items.first.wait_for()
    assert items.count() == 2
    screenshot(page, "06-threads")
    panel.locator(f".threads li[data-thread-id='{first['threadId']}'] button.open").click()
    panel.locator(".turn .question", has_text="What is a setpoint?").wait_for()
    assert panel.locator(".turn").count() == 1
    assert panel.locator(".turn .answer-body a.bt-cite").count() >= 1

    assert panel.locator(".threads").is_hidden()  # reopening a conversation closes the list
    panel.locator("button.threads-toggle").click()
    panel.locator(f".threads li[data-thread-id='{second['threadId']}'] button.delete").click()
    page.wait_for_function(
        "id => !document.querySelector('booktutor-widget').shadowRoot.querySelector(`.threads li[data-thread-id='${id}']`)",
        arg=second["threadId"],
    )
    listed = httpx.get(f"{server.url}/v1/threads", headers={"X-Visitor-Id": visitor_id(page, server)}).json()["threads"]
    assert [t["thread_id"] for t in listed] == [first["threadId"]]


def test_feedback_and_copy(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    answer = ask(page, "What does the integral term do?")
    turn = widget(page).locator(".turn").last
    turn.locator("button.rate.down").click()
    form = turn.locator(".feedback-form")
    form.locator("input").fill("Too short")
    form.locator("button").click()
    page.wait_for_function(
        "() => document.querySelector('booktutor-widget').shadowRoot.querySelector('.status').textContent.includes('comment')"
    )
    assert turn.locator("button.rate.down").get_attribute("aria-pressed") == "true"
    turn.locator("button.copy").click()
    page.wait_for_function(
        "() => document.querySelector('booktutor-widget').shadowRoot.querySelector('.status').textContent.includes('copied')"
    )
    assert page.evaluate("() => navigator.clipboard.readText()") == answer["text"]


def test_profile_is_saved_and_sent_back(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    page.evaluate("() => window.booktutor.open()")
    panel = widget(page)
    panel.locator("button.profile-toggle").click()
    form = panel.locator("form.profile-form")
    form.locator("[name=software_background]").fill("Python, a little C")
    form.locator("[name=hardware_background]").fill("Arduino kits")
    form.locator("[name=experience_level]").select_option("beginner")
    form.locator("[name=goals]").fill("Build a line-following robot")
    screenshot(page, "07-profile-form")
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('booktutor-widget').shadowRoot.querySelector('.status').textContent.includes('Profile saved')"
    )
    stored = httpx.get(f"{server.url}/v1/profile", headers={"X-Visitor-Id": visitor_id(page, server)}).json()
    assert stored["software_background"] == "Python, a little C" and stored["experience_level"] == "beginner"

    page.reload()
    page.wait_for_function("() => window.booktutor !== undefined")
    page.evaluate("() => window.booktutor.open()")
    panel.locator("button.profile-toggle").click()
    assert panel.locator("form.profile-form [name=goals]").input_value() == "Build a line-following robot"
    assert panel.locator("form.profile-form [name=experience_level]").input_value() == "beginner"


def test_an_invented_visitor_id_reads_nothing(server, new_page):
    owner = open_demo(new_page(), server.url, PID_PAGE)
    mine = ask(owner, "What is an encoder?")
    owner_id = visitor_id(owner, server)
    nonce = owner_id.split(".")[0]

    for invented in ("reader-demo-123", nonce, f"{nonce}.AAAAAAAAAAAAAAAAAAAAAA"):
        response = httpx.get(f"{server.url}/v1/threads", headers={"X-Visitor-Id": invented})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_visitor_id"
        response = httpx.get(f"{server.url}/v1/threads/{mine['threadId']}", headers={"X-Visitor-Id": invented})
        assert response.status_code == 401

    # A browser that plants someone's bare id is given a new identity of its own and sees nothing.
    intruder = new_page()
    intruder.goto(server.url + PID_PAGE)
    intruder.evaluate("([key, value]) => localStorage.setItem(key, value)", [f"booktutor.visitor:{server.url}", "reader-demo-123"])
    intruder.reload()
    intruder.wait_for_function("() => window.booktutor !== undefined")
    intruder.evaluate("() => window.booktutor.open()")
    widget(intruder).locator("button.threads-toggle").click()
    widget(intruder).locator(".threads .empty").wait_for()
    assert visitor_id(intruder, server) not in ("reader-demo-123", owner_id)


# -- keyboard, contrast, safety ----------------------------------------------------------------------


def test_keyboard_only_open_ask_navigate_sources_and_escape(server, new_page):
    page = open_demo(new_page(color_scheme="dark"), server.url, PID_PAGE)
    in_widget = "() => { const a = document.activeElement; return a && a.tagName === 'BOOKTUTOR-WIDGET' ? a.shadowRoot.activeElement.className : null; }"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate(in_widget) == "launcher":
            break
    assert page.evaluate(in_widget) == "launcher"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.querySelector('booktutor-widget').shadowRoot.activeElement.tagName") == "TEXTAREA"
    listen_for_answer(page)
    page.keyboard.type("How do nodes exchange messages with publish and subscribe?")
    page.keyboard.press("Enter")
    next_answer(page)
    log = widget(page).locator(".log")
    assert log.get_attribute("aria-live") == "polite" and log.get_attribute("aria-busy") == "false"

    focused_source = None
    for _ in range(30):
        page.keyboard.press("Shift+Tab")
        focused_source = page.evaluate(
            "() => { const a = document.querySelector('booktutor-widget').shadowRoot.activeElement;"
            " return a && a.closest('.sources') ? a.getAttribute('href') : null; }"
        )
        if focused_source:
            break
    assert focused_source and focused_source.startswith("/demo/")
    screenshot(page, "08-keyboard-dark")
    page.keyboard.press("Escape")
    assert widget(page).locator(".panel").is_hidden()
    assert page.evaluate(in_widget) == "launcher"


def test_html_in_a_book_page_is_inert(server, new_page):
    page = open_demo(new_page(), server.url, "/demo/unsafe")
    assert page.locator("article h1").inner_text() == "Unsafe page"
    assert page.locator("article img, article script, article [onerror]").count() == 0
    for link in page.locator("article a").all():
        assert not (link.get_attribute("href") or "").lower().startswith("javascript:")
        link.click()
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__xss") is None
    assert not page.errors


def test_chapter_buttons_without_a_model_say_a_model_is_needed(server, new_page):
    page = open_demo(new_page(), server.url, PID_PAGE)
    chapter = page.locator("booktutor-chapter")
    chapter.locator("button.translate-chapter").click()
    progress = chapter.locator(".progress")
    page.wait_for_function(
        "() => document.querySelector('booktutor-chapter').shadowRoot.querySelector('.progress').textContent.includes('language model')"
    )
    assert "none is set up" in progress.inner_text()
    # The article stays as it was.
    assert page.locator("article h1").first.is_visible()
    screenshot(page, "09-chapter-needs-a-model")
