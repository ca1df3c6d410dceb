"""The FastAPI app: lifespan opens Postgres, the checkpointer and the book index once per process."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from booktutor.graphs.context import open_index
from booktutor.server.auth import Authenticator
from booktutor.server.errors import install_error_handlers
from booktutor.server.limits import BodySizeLimit, RateLimiter
from booktutor.server.observability import Metrics, RequestContext
from booktutor.server.routes import chapters, chat, feedback, health, ingest, profile, threads, translate, widget
from booktutor.server.run_store import RunStore
from booktutor.server.runs import RunManager
from booktutor.server.settings import Settings, get_settings
from booktutor.server.tutor import open_tutor
from booktutor.server.workers import drop_worker_copy, take_worker_copy


def release_freed_memory() -> None:
    """Hand the heap that start-up freed back to the system (glibc keeps it otherwise).

    Loading the embedding model parses the 23 MB model and expands its int8 weights to float32; glibc
    keeps the ~60 MB freed afterwards mapped in the process for good unless asked to trim, once, when
    the worker is ready. Elsewhere than glibc this does nothing.
    """
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A worker of `serve --workers N` on the local index searches a copy of its own (server/workers.py).
        copy = await asyncio.to_thread(take_worker_copy, settings)
        async with open_tutor(settings) as tutor:
            # Opening the index here loads the embedding model once, before the first reader waits for it.
            app.state.index = await asyncio.to_thread(open_index, settings.context())
            await asyncio.to_thread(app.state.index.embeddings.embed_query, "warm up")
            # Open the index (a local folder's Edge shard) and check its embedding size now, not on the
            # first question.
            await asyncio.to_thread(app.state.index.warm)
            release_freed_memory()
            app.state.tutor = tutor
            store = RunStore(
                tutor.database_url,
                owner=RunManager.owner_name(),
                lease_seconds=settings.run_lease_seconds,
                retention_seconds=settings.run_retention_seconds,
            )
            await store.open()
            app.state.runs = RunManager(tutor, store, max_concurrent=settings.max_concurrent_runs, metrics=metrics)
            try:
                yield
            finally:
                await app.state.runs.shutdown()
                await store.close()
                if copy is not None:
                    drop_worker_copy(app.state.index, copy)

    # Swagger UI and ReDoc load their scripts and styles from the installed package, not from a CDN, so
    # /docs and /redoc work on a machine without internet access.
    app = FastAPIOffline(
        title="booktutor",
        summary="A tutor for your online textbook: chat, explain a selection, translate, with citations.",
        version="0.1.0",
        lifespan=lifespan,
        # Swagger UI would otherwise ask swagger.io's online validator about the schema.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.auth = Authenticator(settings)
    app.state.rate_limiter = RateLimiter(settings)

    install_error_handlers(app)
    for router in (health.router, chat.router, threads.router, profile.router, feedback.router, translate.router, chapters.router, ingest.router, widget.router):
        app.include_router(router)

    # Outermost last: the body limit runs before anything reads the body.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Visitor-Id", "X-Request-Id"],
            expose_headers=["Content-Location", "X-Visitor-Id", "X-Request-Id", "Retry-After"],
        )
    app.add_middleware(RequestContext, metrics=metrics)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
