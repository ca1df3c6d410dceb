"""One place that runs a turn: validates input, finds the thread, streams the graph, reads the result.

The CLI and the HTTP server use the same object, so both doors behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import asdict, dataclass
from typing import Any, AsyncIterator, Callable

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph.state import CompiledStateGraph

from booktutor.agents.models import model_name
from booktutor.graphs.context import Context
from booktutor.graphs.graph import builder
from booktutor.graphs.nodes import embed_question_soon
from booktutor.graphs.turn import TurnInput
from booktutor.server import crud
from booktutor.server.db import checkpointer, create_engine, database_url, run_migrations, session_factory
from booktutor.server.settings import Settings
from booktutor.server.threads import ThreadNotFoundError, open_owned_thread, owned_thread
from booktutor.tools.errors import BooktutorError

__all__ = ["MessageNotFoundError", "ThreadNotFoundError", "Tutor", "TurnInput", "TurnResult", "open_tutor"]


class MessageNotFoundError(BooktutorError):
    code = "message_not_found"


STEP_LABELS = {
    "small_talk": "Replying",
    "translate": "Translating",
    "explain": "Reading the selected passage",
}


def _source(passage: dict[str, Any], n: int) -> dict[str, Any]:
    return {"n": n, **{k: passage[k] for k in ("path", "title", "heading", "url", "score")}}


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tutor:
    """The compiled graph with its Postgres checkpointer, plus the app's thread records."""

    def __init__(self, settings: Settings, graph: CompiledStateGraph, sessions, database_url: str = "") -> None:
        self.settings = settings
        self.graph = graph
        self.sessions = sessions
        self.database_url = database_url

    async def ensure_thread(self, *, thread_id: str | None, title: str, reader_id: str | None = None) -> str:
        """The id of an existing thread, or of a new one when `thread_id` is None."""
        async with self.sessions() as session:
            if thread_id is None:
                thread_id = str(uuid.uuid4())
                await crud.create_thread(session, thread_id=thread_id, title=title, reader_id=reader_id)
                return thread_id
            thread = await owned_thread(session, thread_id=thread_id, reader_id=reader_id)
            await crud.touch_thread(session, thread=thread)
            return thread_id

    async def begin_turn(
        self, turn: TurnInput, *, thread_id: str | None = None, reader_id: str | None = None
    ) -> tuple[str, bool, dict[str, Any] | None]:
        """Validate a turn and make sure its thread exists: (thread id, whether it is new, the reader's
        stored profile as the graph's context takes it, None without one)."""
        turn.validate(self.settings)
        # Its search will embed the question: that starts now, beside the round trips below.
        embed_question_soon(turn.message, self.settings.context(), selected_text=turn.selected_text)
        async with self.sessions() as session:
            opened, profile = await open_owned_thread(session, thread_id=thread_id, title=turn.title, reader_id=reader_id)
        return opened, thread_id is None, profile.as_context() if profile is not None else None

    async def save_question(self, turn: TurnInput, *, thread_id: str) -> None:
        """Checkpoint the turn's input (the reader's question) as the graph would, and wait until it is stored.

        A graph run saves its input checkpoint in the background while its first step runs, so a crash
        at the wrong moment lost the question. Saved first, the question survives any crash after this
        returns; `stream_turn(..., question_saved=True)` then runs the graph from this checkpoint.
        """
        config = {"configurable": {"thread_id": thread_id}}
        # The graph takes the input and stops before its first step; leaving the run waits for the save.
        # One checkpoint, written on leaving, holds the question: the input checkpoint and its pending
        # writes that the default durability stores first would be two more round trips for nothing.
        async for _ in self.graph.astream(
            turn.graph_input(), config, interrupt_before=["route"], stream_mode="updates", durability="exit"
        ):
            pass

    async def stream_turn(
        self,
        turn: TurnInput,
        *,
        thread_id: str,
        is_new: bool = False,
        profile: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        question_saved: bool = False,
    ) -> AsyncIterator[tuple[str, Any]]:
        """Run a turn begun with `begin_turn`, yielding ("step" | "sources" | "token", data) as it goes
        and ("done", TurnResult) at the end."""
        config = {"configurable": {"thread_id": thread_id}}
        # LangSmith (when its variables are set) files each turn under a readable name with our ids.
        traced = {**config, "run_name": "booktutor turn", "metadata": {"thread_id": thread_id, **(metadata or {})}}
        context = self.settings.context(profile=profile)
        # The route step decides whether the reply is translated; until it has, nothing is.
        translating = False
        # The state after the last step, as the graph streams it: no read of the checkpoint just written.
        values: dict[str, Any] | None = None
        try:
            # A turn whose question was saved already (`save_question`) resumes where that stopped.
            async for mode, payload in self.graph.astream(
                None if question_saved else turn.graph_input(),
                traced,
                context=context,
                stream_mode=["updates", "custom", "values"],
                # With the question saved, the steps in between need no checkpoint of their own: a turn
                # that dies is asked again, never resumed mid-way, so its state is written once, at the
                # end (a Postgres commit per step was most of a turn's database time).
                durability="exit" if question_saved else "async",
            ):
                if mode == "values":
                    values = payload
                    continue
                if mode == "custom":
                    # Only the answer step writes here (see `graphs.nodes.answer`).
                    if not translating:
                        yield "token", {"text": payload["token"]}
                    continue
                for node, update in payload.items():
                    if node == "route":
                        kind = update.get("turn")
                        translating = bool(update.get("translate_to"))
                        label = STEP_LABELS.get(kind, "Searching the book")
                        yield "step", {"step": "route", "turn": kind, "label": label}
                    elif node == "rewrite_query":
                        yield "step", {"step": "rewrite_query", "query": update.get("query"), "label": "Searching the book"}
                    elif node == "retrieve":
                        yield "sources", {"sources": [_source(p, n) for n, p in enumerate(update.get("passages") or [], 1)]}
                    elif node == "answer" and translating:
                        yield "step", {"step": "answer", "label": "Translating"}
        except BaseException:
            if is_new:
                # A first turn that failed leaves no empty thread behind to be listed.
                await self.delete_thread(thread_id)
            raise
        if values is None:
            values = (await self.graph.aget_state(config)).values
        result = self._result(thread_id, values, context)
        if translating and result.answer:
            # The answer streams only once its final language is known (the English one if translation failed).
            yield "token", {"text": result.answer}
        yield "done", result

    async def run_turn(
        self,
        turn: TurnInput,
        *,
        thread_id: str | None = None,
        reader_id: str | None = None,
        profile: dict[str, Any] | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> TurnResult:
        """Run one turn to the end, calling `on_token` with answer text as it streams."""
        thread_id, is_new, stored = await self.begin_turn(turn, thread_id=thread_id, reader_id=reader_id)
        profile = profile if profile is not None else stored
        result = None
        async for kind, data in self.stream_turn(turn, thread_id=thread_id, is_new=is_new, profile=profile):
            if kind == "token" and on_token:
                on_token(data["text"])
            elif kind == "done":
                result = data
        return result

    async def delete_thread(self, thread_id: str) -> None:
        """Remove a thread's checkpoints, then its row and feedback.

        Checkpoints go first: if that fails the row is still there, so the delete can simply be retried.
        """
        await self.graph.checkpointer.adelete_thread(thread_id)
        async with self.sessions() as session:
            await crud.delete_thread(session, thread_id=thread_id)

    @staticmethod
    def _result(thread_id: str, values: dict[str, Any], context: Context) -> TurnResult:
        last = values["messages"][-1]
        reply = last if isinstance(last, AIMessage) else None
        extra = reply.additional_kwargs if reply else {}
        return TurnResult(
            thread_id=thread_id,
            answer=reply.text if reply else "",
            citations=values.get("citations") or [],
            sources=[_source(p, n) for n, p in enumerate(values.get("passages") or [], 1)],
            model=extra.get("model") or model_name(context.endpoint, context.answer_model),
            turn=values.get("turn", "question"),
            language=extra.get("language", "en"),
            direction=extra.get("direction", "ltr"),
            message_id=reply.id if reply else None,
            error=values.get("error"),
        )

    async def messages(self, thread_id: str) -> list[HumanMessage | AIMessage]:
        """The thread's human and AI messages from its latest checkpoint (empty if it has none yet)."""
        state = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        return [m for m in (state.values or {}).get("messages", []) if isinstance(m, (HumanMessage, AIMessage))]

    async def answer_message(self, thread_id: str, message_id: str) -> AIMessage:
        """An answer of the thread by id (questions cannot be rated or translated)."""
        for message in await self.messages(thread_id):
            if isinstance(message, AIMessage) and message.id == message_id:
                return message
        raise MessageNotFoundError(f"No answer '{message_id[:128]}' in this thread.")

    async def history(self, thread_id: str) -> list[dict[str, Any]]:
        """The thread's messages as {role, content, citations}."""
        return [
            {
                "role": "user" if isinstance(m, HumanMessage) else "assistant",
                "content": m.text,
                "citations": m.additional_kwargs.get("citations", []),
            }
            for m in await self.messages(thread_id)
        ]


@contextlib.asynccontextmanager
async def open_tutor(settings: Settings) -> AsyncIterator[Tutor]:
    """Start or reach Postgres, migrate the app tables, open the checkpointer, compile the graph."""
    url = await asyncio.to_thread(database_url, settings)
    await asyncio.to_thread(run_migrations, url)
    engine = create_engine(url)
    try:
        async with checkpointer(url) as saver:
            yield Tutor(settings, builder.compile(checkpointer=saver, name="booktutor"), session_factory(engine), url)
    finally:
        await engine.dispose()
