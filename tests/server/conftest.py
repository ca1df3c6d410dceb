"""The HTTP app under test: real lifespan (Postgres, checkpointer, Qdrant local index), real ASGI."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"


def token_for(subject: str, **claims) -> str:
    """A signed bearer token like an auth provider would issue."""
    payload = {"sub": subject, "exp": int(time.time()) + 3600, **claims}
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def auth(subject: str, **claims) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(subject, **claims)}"}


async def new_visitor(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers of a fresh anonymous visitor, carrying an id the server issued and signed."""
    response = await client.get("/v1/profile")
    return {"X-Visitor-Id": response.headers["X-Visitor-Id"]}


@pytest.fixture
def server_settings(settings):
    """The test book and database, HS256 tokens, anonymous visitors allowed, generous limits."""
    return settings.model_copy(
        update={
            "jwt_secret": JWT_SECRET,
            "allow_anonymous": True,
            "rate_limit": "1000/minute",
            "anonymous_rate_limit": "1000/minute",
            "heartbeat_seconds": 1.0,
        }
    )


@pytest.fixture
async def app(server_settings):
    from booktutor.server.app import create_app

    app = create_app(server_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://booktutor.test") as client:
        yield client


@pytest.fixture
def reader() -> dict[str, str]:
    """Headers of a fresh signed-in reader."""
    return auth(f"reader-{uuid.uuid4().hex[:8]}")
