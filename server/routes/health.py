"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from booktutor.server.errors import envelope, status_for

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request):
    """Postgres and Qdrant are reachable."""
    checks: dict[str, str] = {}
    try:
        async with request.app.state.tutor.sessions() as session:
            await asyncio.wait_for(session.execute(text("SELECT 1")), timeout=3)
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason goes to the body
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
    try:
        index = request.app.state.index
        await asyncio.wait_for(asyncio.to_thread(index.client.collection_names), timeout=3)
        checks["qdrant"] = "ok"
    except Exception as exc:
        checks["qdrant"] = f"unreachable: {type(exc).__name__}"
    if all(value == "ok" for value in checks.values()):
        return {"status": "ready", "checks": checks}
    body = envelope("not_ready", "; ".join(f"{k} {v}" for k, v in checks.items() if v != "ok"))
    return JSONResponse({**body, "checks": checks}, status_code=status_for("not_ready"))


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, time to first token, run duration, retrieval latency, errors by code."""
    return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4")
