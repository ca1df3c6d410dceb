"""One place that runs a turn: validates input, owns threads, streams the graph, reads the result.

The CLI uses it today; the HTTP server uses the same object, so both doors behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator, Callable

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langgraph.graph.state import CompiledStateGraph

from agents.models import model_name
from graphs.graph import builder
from server import crud
from server.db import checkpointer, create_engine, database_url, run_migrations, session_factory
from server.settings import Settings
from tools.errors import BooktutorError, InvalidInputError
from tools.translation import language_info


class ThreadNotFoundError(BooktutorError):
    code = "thread_not_found"


@dataclass
class TurnResult:
    """What a finished turn gives back to a caller."""

    thread_id: str
    answer: str
    citations: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    model: str
    turn: str
    language: str = "en"
    direction: str = "ltr"
    message_id: str | None = None
    error: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data


def validate_turn(
    settings: Settings,
    *,
    message: str,
    selected_text: str | None = None,
    language: str | None = None,
) -> None:
    """Refuse input that cannot make a useful turn, before anything is written."""
    if not message or not message.strip():
        raise InvalidInputError("The message is empty. Ask a question about the book.", code="empty_message")
    if len(message) > settings.max_message_chars:
        raise InvalidInputError(
            f"The message is {len(message)} characters; the limit is {settings.max_message_chars}. "
            "Shorten it, or select the passage and ask about it.",
            code="message_too_long",
        )
    if selected_text is not None and len(selected_text) > settings.max_selection_chars:
        raise InvalidInputError(
            f"The selected text is {len(selected_text)} characters; the limit is {settings.max_selection_chars}.",
            code="selection_too_long",
        )
    if language:
        language_info(language)


class Tutor:
    """The compiled graph with its Postgres checkpointer, plus the app's thread records."""

    def __init__(self, settings: Settings, graph: CompiledStateGraph, sessions) -> None:
        self.settings = settings
        self.graph = graph
        self.sessions = sessions

    async def ensure_thread(self, *, thread_id: str | None, title: str, reader_id: str | None = None) -> str:
        """The id of an existing thread, or of a new one when `thread_id` is None."""
        async with self.sessions() as session:
            if thread_id is None:
                thread_id = str(uuid.uuid4())
                await crud.create_thread(session, thread_id=thread_id, title=title, reader_id=reader_id)
                return thread_id
            thread = await crud.get_thread(session, thread_id=thread_id)
            if thread is None or thread.reader_id != reader_id:
                raise ThreadNotFoundError(
                    f"No thread '{thread_id}'. Leave out --thread to start a new conversation."
                )
            await crud.touch_thread(session, thread=thread)
            return thread_id

    async def run_turn(
        self,
        message: str,
        *,
        thread_id: str | None = None,
        selected_text: str | None = None,
        page: str | None = None,
        language: str | None = None,
        reader_id: str | None = None,
        profile: dict[str, Any] | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> TurnResult:
        """Run one turn to the end, calling `on_token` with answer tokens as they stream."""
        validate_turn(self.settings, message=message, selected_text=selected_text, language=language)
        is_new = thread_id is None
        thread_id = await self.ensure_thread(thread_id=thread_id, title=message.strip(), reader_id=reader_id)
        config = {"configurable": {"thread_id": thread_id}}
        # Every per-turn field is sent, even when empty, so the turn never inherits the last one's.
        turn_input = {
            "messages": [HumanMessage(message.strip())],
            "selected_text": selected_text or None,
            "page": page or None,
            "language": language or None,
        }
        context = self.settings.context(profile=profile)
        try:
            async for chunk, metadata in self.graph.astream(
                turn_input, config, context=context, stream_mode="messages"
            ):
                if on_token and metadata.get("langgraph_node") == "answer" and isinstance(chunk, AIMessageChunk):
                    if chunk.text:
                        on_token(chunk.text)
        except BaseException:
            if is_new:
                # A first turn that failed leaves no empty thread behind to be listed.
                await self._forget_thread(thread_id)
            raise
        values = (await self.graph.aget_state(config)).values
        return self._result(thread_id, values)

    async def _forget_thread(self, thread_id: str) -> None:
        async with self.sessions() as session:
            await crud.delete_thread(session, thread_id=thread_id)
        await self.graph.checkpointer.adelete_thread(thread_id)

    @staticmethod
    def _result(thread_id: str, values: dict[str, Any]) -> TurnResult:
        last = values["messages"][-1]
        reply = last if isinstance(last, AIMessage) else None
        extra = reply.additional_kwargs if reply else {}
        return TurnResult(
            thread_id=thread_id,
            answer=reply.text if reply else "",
            citations=values.get("citations") or [],
            sources=[
                {k: p[k] for k in ("path", "title", "heading", "url", "score")} for p in values.get("passages") or []
            ],
            model=extra.get("model") or model_name("answer"),
            turn=values.get("turn", "question"),
            language=extra.get("language", "en"),
            direction=extra.get("direction", "ltr"),
            message_id=reply.id if reply else None,
            error=values.get("error"),
        )

    async def history(self, thread_id: str) -> list[dict[str, Any]]:
        """The thread's messages as {role, content, citations}."""
        values = (await self.graph.aget_state({"configurable": {"thread_id": thread_id}})).values
        return [
            {
                "role": "user" if isinstance(m, HumanMessage) else "assistant",
                "content": m.text,
                "citations": m.additional_kwargs.get("citations", []),
            }
            for m in values.get("messages", [])
            if isinstance(m, (HumanMessage, AIMessage))
        ]


@contextlib.asynccontextmanager
async def open_tutor(settings: Settings) -> AsyncIterator[Tutor]:
    """Start or reach Postgres, migrate the app tables, open the checkpointer, compile the graph."""
    url = await asyncio.to_thread(database_url, settings)
    await asyncio.to_thread(run_migrations, url)
    engine = create_engine(url)
    try:
        async with checkpointer(url) as saver:
            yield Tutor(settings, builder.compile(checkpointer=saver, name="booktutor"), session_factory(engine))
    finally:
        await engine.dispose()
