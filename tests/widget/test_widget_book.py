"""The widget on the physical-AI book: the question from the issue gets a cited answer in seconds."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.widget.conftest import Server, ask, open_demo, screenshot

TOPICS_PATH = "01-ros2/02-nodes-topics.md"


@pytest.fixture(scope="module")
def server(tmp_path_factory, corpus_home, database_url):
    # A copy of the ingested book of our own: Qdrant's local mode lets one process open a folder.
    home = tmp_path_factory.mktemp("widget-book")
    shutil.copytree(corpus_home / "qdrant", home / "qdrant")
    server = Server(home, database_url)
    yield server
    server.stop()


def test_asking_about_topics_links_to_the_topics_chapter_within_seconds(server, new_page):
    page = open_demo(new_page(), server.url, "/demo/")
    started = time.monotonic()
    answer = ask(page, "How do ROS 2 nodes exchange messages through topics?")
    elapsed = time.monotonic() - started

    assert elapsed < 10, f"the answer took {elapsed:.1f} s"
    cited = [c for c in answer["citations"] if c["path"] == TOPICS_PATH]
    assert cited, answer["citations"]
    links = page.locator("booktutor-widget .turn .answer-body a.bt-cite")
    hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
    assert cited[0]["url"].replace("/docs", "/demo", 1) in hrefs
    screenshot(page, "14-physical-ai-topics")
