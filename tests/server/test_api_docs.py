"""The API's own documentation pages work on a machine without internet access."""

from __future__ import annotations

import re

import httpx
import pytest

from booktutor.server.app import create_app
from booktutor.server.settings import Settings

# What each kind of asset must be served as, or a browser refuses to run or apply it.
CONTENT_TYPES = {
    ".css": "text/css",
    ".js": "javascript",
    ".png": "image/png",
    ".json": "application/json",
}
# Every way the two pages name a resource they load: tags, ReDoc's spec attribute, Swagger UI's config.
ASSET_REFERENCE = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|\burl:\s*'([^']+)'""")


@pytest.fixture
async def client(tmp_path, database_url):
    # The documentation pages need no database or index, so the app's lifespan is not started.
    app = create_app(Settings(home=tmp_path, database_url=database_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://booktutor.test") as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_docs_load_every_asset_from_the_server_itself(client, page):
    html = await client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")

    assets = [a or b for a, b in ASSET_REFERENCE.findall(html.text)]
    assert any(a.endswith(".js") for a in assets), assets
    assert "http://" not in html.text and "https://" not in html.text and "//cdn" not in html.text
    for asset in assets:
        # Same origin: a path on this server, not a protocol-relative URL to another host.
        assert asset.startswith("/") and not asset.startswith("//"), asset
        response = await client.get(asset)
        assert response.status_code == 200, asset
        expected = CONTENT_TYPES[re.search(r"\.\w+$", asset).group()]
        assert expected in response.headers["content-type"], (asset, response.headers["content-type"])
        assert response.content


async def test_swagger_ui_does_not_call_the_online_validator(client):
    # Swagger UI's default is to send the schema to swagger.io's validator and show its badge.
    html = await client.get("/docs")

    assert '"validatorUrl": null' in html.text
