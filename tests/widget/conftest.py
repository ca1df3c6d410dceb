"""Browser tests of the reader widget: Debian's chromium driven by Playwright against a real
`booktutor serve` process on the sample book (one server per test module)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import BOOKTUTOR, MODEL_VARIABLES, REPO, SAMPLE_BOOK, run_cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "widget"
WIDGET_JS = REPO / "server" / "static" / "widget.js"
VISITOR_SECRET = "widget-tests-visitor-secret-long-enough"
# Every wait in these tests is bounded; a hung page fails the test instead of the run.
TIMEOUT_MS = 40_000  # generous: the CI machine may be busy; a working widget answers in a second or two

UNSAFE_PAGE = """---
title: Unsafe Page
---

# Unsafe page

A paragraph with <img src="x" onerror="window.__xss = 'page-img'"> inline HTML in it.

<script>window.__xss = 'page-script'</script>

A [tricky link](javascript:window.__xss='page-link') and <a href="javascript:window.__xss='page-a'">another</a>.
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ingested_sample_book(home: Path, database_url: str) -> None:
    """The sample book plus one page full of HTML that must never run, ingested by the real CLI."""
    docs = home / "docs"
    shutil.copytree(SAMPLE_BOOK, docs)
    (docs / "99-unsafe.md").write_text(UNSAFE_PAGE, encoding="utf-8")
    result = run_cli("ingest", str(docs), "--json", env={"BOOKTUTOR_HOME": str(home), "DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr


class Server:
    """A `booktutor serve` subprocess on a free port, stopped (by its own pid) when done."""

    def __init__(self, home: Path, database_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        clean = {k: v for k, v in os.environ.items() if k not in MODEL_VARIABLES}
        env = {
            **clean,
            "BOOKTUTOR_HOME": str(home),
            "DATABASE_URL": database_url,
            "BOOKTUTOR_VISITOR_SECRET": VISITOR_SECRET,
            "BOOKTUTOR_HEARTBEAT_SECONDS": "1",
            **(extra_env or {}),
        }
        self.log = open(home / "serve.log", "w")
        self.process = subprocess.Popen(
            [*BOOKTUTOR, "serve", "--port", str(self.port)], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (home / "serve.log").read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError("booktutor serve did not become ready in 120 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


class CuttingProxy:
    """A TCP proxy in front of the server that behaves like a poor network: `arm(n)` cuts the next response carrying SSE tokens in the middle of its n-th token
    event, closing the browser's connection while the run goes on at the server."""

    def __init__(self, upstream_port: int, *, drip: int = 0) -> None:
        self.upstream_port = upstream_port
        # With `drip`, responses reach the browser in pieces of that many bytes, split anywhere: inside
        # a UTF-8 character, between "\r" and "\n", in the middle of an event.
        self.drip = drip
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.cut_after = 0
        self.cut_event = b"event: token"
        self.cuts = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, tokens: int, *, event: str = "token") -> None:
        """Cut in the middle of the `tokens`-th `event` event of the next response that has one."""
        with self.lock:
            self.cut_after = tokens
            self.cut_event = f"event: {event}".encode()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, to_browser: bool) -> None:
        seen = b""
        dripping = False
        try:
            while data := source.recv(65536):
                if to_browser and data.startswith(b"HTTP/"):
                    # Only event streams go through the poor network: dripping the page and the widget's
                    # 100 kB script a few bytes at a time would only make the test slow.
                    dripping = b"text/event-stream" in data.split(b"\r\n\r\n", 1)[0]
                if to_browser and self.cut_after:
                    seen += data
                    with self.lock:
                        wanted = self.cut_after
                        position = _nth(seen, self.cut_event, wanted)
                        if wanted and position >= 0:
                            self.cut_after = 0
                            self.cuts += 1
                            # Forward up to the middle of that event's first line, then hang up. The
                            # events before it go first, and a moment before the cut, as over a real
                            # network: bytes that reach chromium in the same read as the failure are
                            # dropped with it, so the reader might otherwise never see them.
                            already = len(seen) - len(data)
                            if position > already:
                                target.sendall(seen[already:position])
                                time.sleep(0.2)
                            target.sendall(seen[max(already, position) : position + 9] if position + 9 > already else b"")
                            raise ConnectionAbortedError
                if to_browser and self.drip and dripping:
                    target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for start in range(0, len(data), self.drip):
                        target.sendall(data[start : start + self.drip])
                        time.sleep(0.001)
                else:
                    target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def close(self) -> None:
        self.listener.close()


def _nth(haystack: bytes, needle: bytes, n: int) -> int:
    position = -1
    for _ in range(n):
        position = haystack.find(needle, position + 1)
        if position < 0:
            return -1
    return position


@pytest.fixture(scope="session")
def widget_built() -> Path:
    """The widget bundle that installing the package builds (setup.py); its absence is a broken install."""
    assert WIDGET_JS.is_file(), f"{WIDGET_JS} is missing: `pip install -e .` should have built it with npm"
    return WIDGET_JS


@pytest.fixture(scope="module")
def browser(widget_built):
    """Chromium, for one test module at a time: Playwright's sync API runs an event loop on this thread
    while it is open, and a test after it that starts one of its own (`asyncio.run`) would fail."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "the browser tests need Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, request):
    """Pages in fresh browser contexts (each a new visitor); closed with the test."""
    contexts = []

    def make(**options):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:
    """Save the page as test-artifacts/widget/<name>.png (gitignored) for a person to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def open_demo(page, server_url: str, path: str = "/demo/"):
    page.goto(server_url + path)
    page.wait_for_function("() => window.booktutor !== undefined")
    return page


def ask(page, question: str, selected_text: str | None = None) -> dict:
    """Ask through the JavaScript API and wait (bounded) for the finished answer."""
    result = page.evaluate(
        """([q, s, ms]) => Promise.race([
            window.booktutor.ask(q, {selectedText: s}),
            new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)),
        ])""",
        [question, selected_text, TIMEOUT_MS],
    )
    assert result is not None, page.locator("booktutor-widget .turn").last.inner_text()
    return result


def record_paints(page) -> None:
    """Record, on every change of the panel, how much answer text the last turn shows and whether its
    sources are visible; `paints` reads the record."""
    page.evaluate(
        """() => {
        window.__seen = [];
        const root = document.querySelector('booktutor-widget').shadowRoot;
        new MutationObserver(() => {
          const turn = root.querySelector('.turn:last-of-type');
          if (!turn) return;
          const body = turn.querySelector('.answer-body').textContent;
          const sources = !turn.querySelector('.sources').hidden;
          window.__seen.push({body: body.length, sources});
        }).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
      }"""
    )


def paints(page) -> list[dict]:
    return page.evaluate("window.__seen")


def listen_for_answer(page) -> None:
    """Start recording the next finished answer (the widget's `answer` event); see `next_answer`."""
    page.evaluate(
        """() => {
            window.__answer = null;
            if (window.__listening) return;
            window.__listening = true;
            window.booktutor.on('answer', detail => { window.__answer = detail; });
            window.booktutor.on('error', detail => { window.__answer = {error: detail}; });
        }"""
    )


def next_answer(page) -> dict:
    answer = page.wait_for_function("() => window.__answer").json_value()
    assert "error" not in answer, answer
    return answer
