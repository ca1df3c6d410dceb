"""The reader's door: `/widget.js` for any book site, and `/demo/`, the ingested book as plain pages with
the widget on them, so the tutor can be tried (and tested in a browser) with no book site at all."""

from __future__ import annotations

import asyncio
import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from markdown_it import MarkdownIt

from booktutor.server.errors import ApiError
from booktutor.tools.docusaurus.anchors import heading_anchor

router = APIRouter(tags=["widget"])

STATIC = Path(__file__).resolve().parent.parent / "static"
WIDGET = STATIC / "widget.js"
DEMO_PREFIX = "/demo"
BUILD_HINT = "Build it with `npm ci --prefix widget && npm run build --prefix widget`, then restart `booktutor serve`."


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> FileResponse:
    """The widget, one self-contained file (its Markdown renderer and sanitizer bundled in)."""
    if not WIDGET.is_file():
        raise ApiError("widget_not_built", f"The widget has not been built. {BUILD_HINT}")
    # Short caching: a redeployed widget reaches readers within minutes.
    return FileResponse(WIDGET, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "public, max-age=300"})


@router.get("/demo", include_in_schema=False)
async def demo_root() -> RedirectResponse:
    return RedirectResponse(f"{DEMO_PREFIX}/")


@router.get("/demo/{page:path}", include_in_schema=False)
async def demo_page(page: str, request: Request) -> HTMLResponse:
    """One page of the ingested book at `/demo/<its URL below BOOKTUTOR_BOOK_URL>`, widget included."""
    settings = request.app.state.settings
    index = request.app.state.index
    book_url = settings.book_url.rstrip("/")
    # Qdrant's local client is synchronous; keep it off the event loop.
    files = await asyncio.to_thread(index.files)
    pages = sorted(((info.url, path, info.title) for path, info in files.items() if info.url), key=lambda p: (p[0].rstrip("/") != book_url, p[1]))
    wanted = (book_url + "/" + page.strip("/")).rstrip("/") or "/"
    current = next((p for p in pages if p[0].rstrip("/") == wanted), None)
    if current is None and not page.strip("/") and pages:
        current = pages[0]
    if current is None:
        return HTMLResponse(
            _document("Page not found", "<p>This page is not in the ingested book.</p>", pages, book_url, None),
            status_code=404,
        )
    url, path, title = current
    passages = await asyncio.to_thread(index.page_passages, path)
    # Chunks are consecutive slices of the page body: a blank line between them rebuilds it.
    markdown = "\n\n".join(p["text"] for p in passages)
    return HTMLResponse(_document(title or path, render_page(markdown), pages, book_url, url))


def demo_url(page_url: str, book_url: str) -> str:
    """Where the demo serves the page the index knows at `page_url`."""
    rest = page_url[len(book_url):] if page_url.startswith(book_url) else page_url
    return DEMO_PREFIX + (rest or "/")


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")


def render_page(markdown: str) -> str:
    """A book page as HTML: raw HTML in the page is shown as text, never run, and headings get the ids
    Docusaurus gives them, so a citation's `#anchor` lands on its section."""
    tokens = _MARKDOWN.parse(markdown)
    seen: dict[str, int] = {}
    for position, token in enumerate(tokens):
        if token.type == "heading_open":
            token.attrSet("id", _unique(heading_anchor(tokens[position + 1].content), seen))
    return _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})


def _unique(slug: str, seen: dict[str, int]) -> str:
    # Docusaurus (github-slugger): the second "intro" is "intro-1".
    if slug not in seen:
        seen[slug] = 0
        return slug
    seen[slug] += 1
    return f"{slug}-{seen[slug]}"


def _document(title: str, body: str, pages: list[tuple[str, str, str]], book_url: str, current: Any) -> str:
    links = "".join(
        f'<li><a href="{html.escape(demo_url(url, book_url))}"{" aria-current=page" if url == current else ""}>'
        f"{html.escape(page_title or path)}</a></li>"
        for url, path, page_title in pages
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · booktutor demo</title>
<style>
  :root {{ color-scheme: light dark; }}
  body {{ margin: 0; font: 17px/1.6 system-ui, sans-serif; display: flex; gap: 32px; }}
  nav {{ flex: 0 0 240px; padding: 24px 16px; border-right: 1px solid #8884; font-size: 15px; }}
  nav ul {{ list-style: none; padding: 0; }} nav li {{ margin: 4px 0; }}
  nav a[aria-current] {{ font-weight: 700; }}
  main {{ flex: 1; max-width: 760px; padding: 24px 16px 120px; }}
  pre {{ background: #8882; padding: 12px; overflow: auto; border-radius: 6px; }}
  code {{ font-family: ui-monospace, monospace; font-size: 0.9em; }}
  table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #8886; padding: 4px 8px; }}
</style>
</head>
<body>
<nav aria-label="Book"><strong>The book</strong><ul>{links}</ul></nav>
<main><article><div class="markdown">
{body}
</div></article></main>
<script src="/widget.js" data-book-url="{DEMO_PREFIX}" data-source-url="{html.escape(book_url)}" defer></script>
</body>
</html>
"""
