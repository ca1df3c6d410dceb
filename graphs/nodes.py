"""The steps of a turn. Each is a thin call into a tool from `tools/` or a model from `agents/`."""

from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Any, Callable, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Overwrite
from wordfreq import zipf_frequency

from booktutor.agents.models import answer_model, model_name, rewriter, translator
from booktutor.agents.offline import OfflineChatModel
from booktutor.agents.prompts import answer_messages
from booktutor.graphs.context import Context, open_index
from booktutor.graphs.state import State, TurnKind
from booktutor.tools.embeddings import MiniLMEmbeddings, offline_embeddings, vocabulary_words
from booktutor.tools.errors import BooktutorError
from booktutor.tools.index import BookIndex
from booktutor.tools.markdown import blocks
from booktutor.tools.personalization import build_rewrite_tool, looks_like_follow_up
from booktutor.tools.retrieval import build_search_tool
from booktutor.tools.sparse import stopword_slips, terms
from booktutor.tools.translation import LANGUAGES, build_translate_tool, language_info

TURN_INPUTS = ("selected_text", "page", "language")

_SMALL_TALK = re.compile(
    r"^\s*(hi|hello|hey|hiya|yo|salam|assalam[ou] ?alaikum|good (morning|afternoon|evening)|thanks|thank you|"
    r"thx|ok(ay)?|cool|great|nice|bye|goodbye|see you|who are you|what can you do|how are you)\b[\s\w,!.?']*$",
    re.I,
)
_TRANSLATE = re.compile(r"^\s*(please\s+)?translate\b", re.I)
_LANGUAGE_NAMES = {name.lower(): code for code, (name, _) in LANGUAGES.items()}
_CITATION = re.compile(r"\[(\d{1,2})\]")
# How long the answer step may parse a burst of streamed text before it lets the event loop run.
YIELD_SECONDS = 0.001


def _context(runtime: Runtime[Context] | None) -> Context:
    return (runtime.context if runtime is not None else None) or Context()


def _last_human(messages: list[AnyMessage]) -> HumanMessage:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message
    raise BooktutorError("A turn needs a message from the reader.", code="empty_message")


def turn_inputs(state: State) -> dict[str, Any]:
    """selected_text, page and language of the current turn, as the route step stored them."""
    return _last_human(state["messages"]).additional_kwargs.get("turn", {})


def _history(messages: list[AnyMessage], limit: int) -> list[AnyMessage]:
    """Earlier human/AI messages (not the current question), newest `limit`."""
    earlier = [m for m in messages[:-1] if isinstance(m, (HumanMessage, AIMessage)) and m.text]
    return earlier[-limit:] if limit else []


def classify_turn(question: str, *, selected_text: str | None, has_history: bool) -> TurnKind:
    """Small talk, translate, explain-a-selection, follow-up or a fresh question."""
    if _TRANSLATE.match(question):
        return "translate"
    if selected_text:
        return "explain"
    if _SMALL_TALK.match(question) and len(question.split()) <= 8:
        return "small_talk"
    if has_history and looks_like_follow_up(question):
        return "follow_up"
    return "question"


def translate_to(turn: TurnKind, inputs: dict[str, Any], question: str, profile: dict[str, Any] | None) -> str | None:
    """The language this turn's reply is translated into, or None when it is read in English as written.

    The turn's own language comes first, then the reader's preferred one; a translate request may name
    its language in words ("translate this into Urdu") and is translated into English otherwise.
    """
    language = inputs.get("language") or (profile or {}).get("preferred_language")
    if turn == "translate":
        asked = None if inputs.get("language") else re.search(r"\b(?:in|into|to)\s+([a-z]+)", question, re.I)
        if asked:
            language = _LANGUAGE_NAMES.get(asked.group(1).lower(), language)
        return language or "en"
    return None if not language or language.split("-")[0].lower() == "en" else language


def written_in(turn: TurnKind, language: str | None, context: Context) -> str | None:
    """The language a configured model writes this turn's answer in directly, or None.

    An answer in another language streams token by token when the model writes it in that language in one
    call; translating afterwards would make the reader wait for two calls in silence. The offline model
    only quotes the English book, so its answers are still translated, and a translate turn translates.
    """
    if turn == "translate" or not language or not context.endpoint.configured:
        return None
    return language


def search_tool(context: Context) -> BaseTool:
    """The `search_book` tool over the index this run's context points at."""
    return build_search_tool(open_index(context))


# A thread of its own: on the loop's default executor, the searches of a burst of turns would queue
# behind every question the burst started embedding. A search that comes first embeds its question
# itself, and the early job then finds the vector there; a job that waited longer than
# `EARLY_EMBEDDING_STALE_SECONDS` to start is dropped (its turn's search is under way by then).
EARLY_EMBEDDING = ThreadPoolExecutor(1, thread_name_prefix="early-embedding")
EARLY_EMBEDDING_STALE_SECONDS = 1.0


def embed_question_soon(message: str, context: Context, *, selected_text: str | None = None) -> None:
    """Start embedding a turn's message on a worker thread now, while the turn's first database round
    trips are awaited, so its search finds the vector ready (or waits for this one, never computes
    it twice: see `MiniLMEmbeddings.embed_query`).

    Every turn that searches embeds the reader's message as written: as its query, or beside a rewrite
    (see `tools.retrieval.search`); turns that do not search (small talk, translation) start nothing.
    Only the offline embeddings share a vector being computed; a remote embedding model would be
    called twice, so it is left to the search.
    """
    turn = classify_turn(message, selected_text=selected_text, has_history=False)
    if route_turn({"turn": turn}) != "rewrite_query":
        return
    text = message.strip()
    submitted = time.monotonic()

    def embed() -> None:
        if time.monotonic() - submitted > EARLY_EMBEDDING_STALE_SECONDS:
            return
        embeddings = open_index(context).embeddings
        if isinstance(embeddings, MiniLMEmbeddings):
            embeddings.embed_query(text)

    started = asyncio.get_running_loop().run_in_executor(EARLY_EMBEDDING, embed)
    # A failure here (no index yet, say) is the search's to report, with its own error code.
    started.add_done_callback(lambda done: done.cancelled() or done.exception())


_BUILT: set[tuple] = set()


async def _built_off_loop(build: Callable[..., Any], *args: Any) -> Any:
    """`build(*args)` on a worker thread the first time, on the loop after that.

    Building a model client loads certificates from disk (tens of ms), so the first build stays off the
    event loop; the builders cache what they build, so later calls only look it up, and a thread hop
    each turn cost more than the lookup (and waits for the GIL behind every other stream).
    """
    key = (build, *args)
    if key in _BUILT:
        return build(*args)
    built = await asyncio.to_thread(build, *args)
    if len(_BUILT) >= 64:  # per-run model overrides (Studio) must not grow it without bound
        _BUILT.clear()
    _BUILT.add(key)
    return built


@lru_cache(maxsize=8)
def offline_answer_model(index: BookIndex | None = None) -> OfflineChatModel:
    """The model that answers when none is configured, reading with the book's embeddings, analyzer and
    Markdown reader, and, given the book's index, knowing which words the book never uses and which it
    uses spelt otherwise."""
    if index is None:
        return OfflineChatModel(embeddings=offline_embeddings(), terms=terms, blocks=blocks)
    return OfflineChatModel(
        embeddings=offline_embeddings(),
        terms=terms,
        blocks=blocks,
        unused=index.unused_terms,
        spellings=index.spellings,
        is_word=vocabulary_words().__contains__,
        zipf=partial(zipf_frequency, lang="en"),
        word_vectors=offline_embeddings().word_vectors,
        common_slips=stopword_slips,
    )


@lru_cache(maxsize=8)
def _offline_model_of(index: BookIndex) -> Callable[[], OfflineChatModel]:
    """`offline_answer_model` of one book as the builder `answer_model` takes, the same one every turn (so
    `_built_off_loop` knows it is built)."""
    return partial(offline_answer_model, index)


def evaluation_answerer(context: Context, index: BookIndex | None = None):
    """(evaluation question, passages) -> answer text, written as the answer step writes it with this
    context's model, reading `index`'s book; `booktutor eval` scores answers with it (see
    `tools.evaluation.Answerer`)."""
    offline = _offline_model_of(index) if index is not None else offline_answer_model
    model = answer_model(offline, context.endpoint, context.answer_model)

    async def answer_question(item: dict[str, Any], passages: list[dict[str, Any]]) -> str:
        history = [
            HumanMessage(turn["content"]) if turn.get("role") in ("user", "human") else AIMessage(turn["content"])
            for turn in item.get("history") or []
            if isinstance(turn, dict)
        ]
        messages = answer_messages(
            question=item["question"],
            passages=passages,
            history=history[-context.history_turns :],
            selected_text=item.get("selected_text"),
            profile=item.get("profile") or context.profile,
        )
        return (await model.ainvoke(messages)).text

    return answer_question


# -- nodes -------------------------------------------------------------------------------------------


async def route(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Decide the kind of turn and file this turn's inputs with the reader's message.

    The per-turn inputs move onto the human message (so the thread's history shows what was selected)
    and their channels are cleared, so nothing leaks into the next turn. Whether the reply is translated
    is decided here, once, so a caller knows before the answer streams.
    """
    human = _last_human(state["messages"])
    inputs = {key: state.get(key) for key in TURN_INPUTS if state.get(key)}
    filed = human.model_copy(update={"additional_kwargs": {**human.additional_kwargs, "turn": inputs}})
    turn = classify_turn(human.text, selected_text=inputs.get("selected_text"), has_history=len(state["messages"]) > 1)
    context = _context(runtime)
    language = translate_to(turn, inputs, human.text, context.profile)
    direct = written_in(turn, language, context)
    return {
        "messages": [filed],
        "turn": turn,
        "translate_to": None if direct else language,
        "answer_language": direct,
        "query": human.text,
        "passages": Overwrite([]),
        "citations": [],
        "error": None,
        **{key: None for key in TURN_INPUTS},
    }


async def rewrite_query(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Personalization-aware rewriting: a standalone query adapted to the reader."""
    context = _context(runtime)
    question = _last_human(state["messages"]).text
    history = [
        f"{'user' if isinstance(m, HumanMessage) else 'assistant'}: {m.text}"
        for m in _history(state["messages"], context.history_turns)
    ]
    tool = build_rewrite_tool(await _built_off_loop(rewriter, context.endpoint, context.rewrite_model))
    # Only an explain turn reaches this step with a selection (a translate turn skips it).
    selected = turn_inputs(state).get("selected_text")
    query = await tool.ainvoke(
        {"question": question, "history": history, "profile": context.profile, "selected_text": selected}
    )
    return {"query": query}


def _cited_before(state: State) -> list[str] | None:
    """The pages the previous answer cited: what a follow-up's "it" most likely points at."""
    earlier = next((m for m in reversed(state["messages"][:-1]) if isinstance(m, AIMessage)), None)
    paths = [c["path"] for c in (earlier.additional_kwargs.get("citations") or [])] if earlier is not None else []
    return paths or None


async def retrieve(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Hybrid search of the book; a selection's own section comes first."""
    context = _context(runtime)
    inputs = turn_inputs(state)
    asked = _last_human(state["messages"]).text
    request = {
        "query": state.get("query") or asked,
        "asked": asked,
        "k": context.k,
        "page": inputs.get("page"),
        "selected_text": inputs.get("selected_text"),
        "cited_before": _cited_before(state) if state.get("turn") == "follow_up" else None,
    }
    # Opening the index (the first time), embedding the query and searching all take CPU for
    # milliseconds: one worker thread does all three, keeping the event loop free for other streams.
    passages = await asyncio.to_thread(lambda: search_tool(context).invoke(request))
    return {"passages": passages}


def cited(text: str, passages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The passages an answer cites with [n] markers, in order of first mention."""
    numbers = dict.fromkeys(int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= len(passages))
    return [
        {"n": n, **{key: passages[n - 1][key] for key in ("path", "title", "heading", "url")}} for n in numbers
    ]


async def _stream_answer(
    model: BaseChatModel, messages: list[BaseMessage], *, silence_seconds: float, write: Callable[[Any], None]
) -> BaseMessage:
    """The model's whole answer, each piece of text handed to `write` as `{"token": text}` as it arrives.

    The caller reads tokens from LangGraph's `custom` stream: the `messages` stream would do the same
    through a callback handler and a message chunk per token, several times the CPU (Studio, which asks
    for `messages`, still gets those). A model that stops sending text for `silence_seconds` fails the
    turn, even if its server keeps the connection alive with keep-alive comments (which reset an HTTP
    read timeout but carry no text).
    """
    loop = asyncio.get_running_loop()
    # Moving the deadline replaces a timer, so it moves only once it is less than `silence_seconds`
    # away, and then `slack` further: the turn fails between `silence_seconds` and `silence_seconds +
    # slack` after the last text, at the cost of a timer every `slack` seconds rather than per token.
    slack = min(1.0, silence_seconds / 10)
    chunks = []
    yielded = 0.0
    async with asyncio.timeout(silence_seconds) as silence:
        async for chunk in model.astream(messages):
            if (now := loop.time()) + silence_seconds > silence.when():
                silence.reschedule(now + silence_seconds + slack)
            chunks.append(chunk)
            if text := chunk.text:
                write({"token": text})
            # Chunks that arrived together would otherwise be parsed back to back without the loop
            # running anything else: the reader's first token waited for the whole burst (13 ms for
            # 100 tokens), and every other stream of the process with it. Letting the loop run once per
            # `YIELD_SECONDS` of parsing (and after the first token) bounds that wait without a loop
            # turn per token.
            if now - yielded >= YIELD_SECONDS:
                await asyncio.sleep(0)
                yielded = loop.time()
    if not chunks:
        return AIMessage(content="")
    return chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]


async def answer(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Write the grounded answer for this reader, citing passages as [1], [2]; its text streams out as
    `{"token": text}` on the `custom` stream."""
    context = _context(runtime)
    human = _last_human(state["messages"])
    passages = state.get("passages") or []
    language = state.get("answer_language")
    code, language_name, direction = language_info(language) if language else ("en", None, "ltr")
    messages = answer_messages(
        question=human.text,
        passages=passages,
        history=_history(state["messages"], context.history_turns),
        selected_text=turn_inputs(state).get("selected_text"),
        small_talk=state.get("turn") == "small_talk",
        profile=context.profile,
        language=language_name,
    )
    # Passages come from the context's index; small talk has none and opens no index.
    offline = _offline_model_of(open_index(context)) if passages else offline_answer_model
    model = await _built_off_loop(answer_model, offline, context.endpoint, context.answer_model)
    response = await _stream_answer(
        model, messages, silence_seconds=context.endpoint.timeout, write=runtime.stream_writer
    )
    citations = cited(response.text, passages)
    message = AIMessage(
        content=response.text,
        id=response.id,
        additional_kwargs={
            "citations": citations,
            "model": model_name(context.endpoint, context.answer_model),
            **({"language": code, "direction": direction} if language else {}),
        },
        response_metadata=response.response_metadata,
        usage_metadata=response.usage_metadata,
    )
    return {"messages": [message], "citations": citations}


async def translate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Translate the answer (or, on a translate turn, the selection or last answer) into the reader's language."""
    context = _context(runtime)
    language = state.get("translate_to") or "en"
    messages = state["messages"]
    if state.get("turn") == "translate":
        source = turn_inputs(state).get("selected_text") or next(
            (m.text for m in reversed(messages) if isinstance(m, AIMessage)), ""
        )
        target = None
    else:
        target = messages[-1]
        source = target.text
    if not source.strip():
        return {"error": {"code": "nothing_to_translate", "message": "There is no text to translate yet."}}
    try:
        tool = build_translate_tool(await _built_off_loop(translator, context.endpoint, context.translate_model))
        result = await tool.ainvoke({"text": source, "language": language})
    except BooktutorError as exc:
        return {"error": exc.as_dict()}
    extra = {"language": result["language"], "direction": result["direction"]}
    if target is None:
        return {"messages": [AIMessage(result["text"], additional_kwargs={**extra, "model": model_name(context.endpoint, context.translate_model)})]}
    translated = target.model_copy(
        update={
            "content": result["text"],
            "additional_kwargs": {**target.additional_kwargs, **extra, "original": source},
        }
    )
    return {"messages": [translated]}


# -- routers -----------------------------------------------------------------------------------------


def route_turn(state: State) -> Literal["rewrite_query", "answer", "translate"]:
    """Small talk skips retrieval; a translate request goes straight to translation."""
    turn = state.get("turn")
    if turn == "small_talk":
        return "answer"
    if turn == "translate":
        return "translate"
    return "rewrite_query"


def route_after_answer(state: State) -> Literal["translate", "__end__"]:
    """Translate the answer when the route step decided the reader reads another language."""
    return "translate" if state.get("translate_to") else END
