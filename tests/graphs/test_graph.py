"""The tutor graph end to end: real Qdrant local index, real Postgres checkpoints, real model clients."""

from __future__ import annotations

import asyncio
import json

import pytest
from langchain_core.messages import HumanMessage

from booktutor.agents.offline import OFFLINE_LABEL, SMALL_TALK_REPLY
from booktutor.graphs.context import open_index
from booktutor.graphs.graph import builder
from booktutor.graphs.nodes import EARLY_EMBEDDING
from booktutor.graphs.turn import TurnInput
from booktutor.server.tutor import ThreadNotFoundError
from booktutor.tools.errors import InvalidInputError

TOPICS = "How do ROS 2 nodes exchange messages through topics?"


async def steps_of(tutor, message: str, **turn) -> list[str]:
    """Run a turn through the checkpointed graph and list the nodes that ran."""
    thread_id = await tutor.ensure_thread(thread_id=None, title=message)
    config = {"configurable": {"thread_id": thread_id}}
    turn_input = {"messages": [HumanMessage(message)], "selected_text": None, "page": None, "language": None, **turn}
    steps = []
    async for update in tutor.graph.astream(turn_input, config, context=tutor.settings.context(), stream_mode="updates"):
        steps.extend(update)
    return steps


async def test_question_gets_a_cited_streamed_offline_answer(tutor):
    tokens: list[str] = []

    result = await tutor.run_turn(TurnInput(TOPICS), on_token=tokens.append)

    assert "01-ros2/02-nodes-topics.md" in [c["path"] for c in result.citations]
    assert result.answer.endswith(OFFLINE_LABEL)
    assert result.model == "offline-extractive"
    assert len(tokens) > 10 and "".join(tokens) == result.answer
    for citation in result.citations:
        assert f"[{citation['n']}]" in result.answer
        assert set(citation) == {"n", "path", "title", "heading", "url"}
        assert citation["url"].startswith("/docs/")


async def test_turns_flow_through_route_rewrite_retrieve_answer(tutor):
    assert await steps_of(tutor, TOPICS) == ["route", "rewrite_query", "retrieve", "answer"]


async def test_small_talk_skips_retrieval(tutor):
    assert await steps_of(tutor, "Hello there!") == ["route", "answer"]
    result = await tutor.run_turn(TurnInput("thanks!"))
    assert result.turn == "small_talk" and result.answer == SMALL_TALK_REPLY
    assert result.sources == [] and result.citations == []


async def test_follow_up_on_the_same_thread_is_about_the_earlier_turn(tutor):
    first = await tutor.run_turn(TurnInput(TOPICS))

    second = await tutor.run_turn(TurnInput("and how is that different from a service?"), thread_id=first.thread_id)

    assert second.turn == "follow_up"
    # The follow-up's own words lead retrieval; the earlier question keeps it on ROS 2.
    assert second.sources[0]["path"] == "01-ros2/03-services-actions.md"
    assert {s["path"].split("/")[0] for s in second.sources[:3]} <= {"00-introduction", "01-ros2", "05-capstone"}
    assert "service" in second.answer.lower()
    history = await tutor.history(first.thread_id)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[1]["citations"] == first.citations


async def test_selected_passage_is_answered_about_that_passage(tutor):
    selection = (
        "Domain randomization varies simulation parameters such as lighting, textures, friction and "
        "masses during training so that a policy learns features that transfer to the real world."
    )

    result = await tutor.run_turn(TurnInput("What does this mean?", selected_text=selection))

    assert result.turn == "explain"
    assert result.answer.startswith("About the selected passage")
    assert result.sources[0]["path"] == "03-isaac/05-sim-to-real.md"
    assert result.citations[0]["n"] == 1


async def test_per_turn_inputs_do_not_leak_into_the_next_turn(tutor):
    first = await tutor.run_turn(TurnInput("Explain this", selected_text="Gazebo simulates sensors such as cameras and lidar."))
    state = (await tutor.graph.aget_state({"configurable": {"thread_id": first.thread_id}})).values
    assert state["selected_text"] is None and state["page"] is None
    assert state["messages"][0].additional_kwargs["turn"]["selected_text"].startswith("Gazebo")

    second = await tutor.run_turn(TurnInput("What is a URDF file?"), thread_id=first.thread_id)
    assert second.turn == "question"
    assert not second.answer.startswith("About the selected passage")


async def test_translation_without_a_model_keeps_the_answer_and_says_why(tutor):
    result = await tutor.run_turn(TurnInput(TOPICS, language="ur"))

    assert result.error["code"] == "model_required"
    assert "language model" in result.error["message"] and "OPENAI_API_KEY" in result.error["message"]
    assert result.answer.endswith(OFFLINE_LABEL) and result.language == "en"
    # The route step made the decision once; the tutor read it from the graph.
    state = (await tutor.graph.aget_state({"configurable": {"thread_id": result.thread_id}})).values
    assert state["translate_to"] == "ur"
    follow = await tutor.run_turn(TurnInput("What is a launch file?"), thread_id=result.thread_id)
    assert follow.error is None


async def test_bad_turns_are_refused_before_anything_is_written(tutor):
    with pytest.raises(InvalidInputError) as empty:
        await tutor.run_turn(TurnInput("   "))
    assert empty.value.code == "empty_message"
    with pytest.raises(InvalidInputError) as long:
        await tutor.run_turn(TurnInput("why? " * 2000))
    assert long.value.code == "message_too_long"
    with pytest.raises(InvalidInputError) as language:
        await tutor.run_turn(TurnInput(TOPICS, language="klingon"))
    assert language.value.code == "unsupported_language"
    with pytest.raises(InvalidInputError) as nul:
        await tutor.run_turn(TurnInput("What is a topic?\x00"))
    assert nul.value.code == "nul_character"
    with pytest.raises(ThreadNotFoundError):
        await tutor.run_turn(TurnInput(TOPICS), thread_id="no-such-thread")


async def test_language_model_answers_for_the_reader_and_translates(tutor, language_model, monkeypatch):
    language_model.reply("ROS 2 topic publish subscribe messages between nodes")  # the rewrite step
    language_model.reply("Nodes publish messages on named topics and other nodes subscribe to them [1].")
    profile = {"hardware_background": "embedded systems", "experience_level": "beginner"}

    result = await tutor.run_turn(TurnInput(TOPICS), profile=profile)

    assert result.model == "gpt-4o-mini"
    assert result.answer.startswith("Nodes publish messages")
    assert result.citations[0]["n"] == 1
    rewrite_request, answer_request = language_model.requests[-2:]
    assert "embedded systems" in json.dumps(rewrite_request["messages"])
    assert answer_request["stream"] is True
    prompt = "\n".join(m["content"] for m in answer_request["messages"])
    assert "embedded systems" in prompt and "n=\"1\" title=" in prompt and "<passage-" in prompt

    # With a model, an Urdu answer is written in Urdu in the answer call itself and streams as written.
    language_model.reply("command to list ROS 2 topics")
    language_model.reply("ur:Run `ros2 topic list` ur:to ur:see ur:the ur:topics [1].")
    # Paced like a model writing: text that arrives together comes out as one chunk (agents/streaming.py).
    monkeypatch.setattr(language_model, "token_delay", 0.01)
    before = len(language_model.requests)
    tokens: list[str] = []
    urdu = await tutor.run_turn(
        TurnInput("Which command lists topics?", language="ur"), thread_id=result.thread_id, on_token=tokens.append
    )

    assert urdu.error is None
    assert urdu.language == "ur" and urdu.direction == "rtl"
    assert urdu.answer == "ur:Run `ros2 topic list` ur:to ur:see ur:the ur:topics [1]."
    assert urdu.citations[0]["n"] == 1
    assert len(tokens) > 3 and "".join(tokens) == urdu.answer  # token by token, not one block at the end
    assert len(language_model.requests) - before == 2  # rewrite and answer: no translation call
    answer_request = language_model.requests[-1]
    assert answer_request["stream"] is True and "Write your whole reply in Urdu" in answer_request["messages"][0]["content"]


async def test_urdu_answers_reach_the_first_token_as_fast_as_english(tutor, language_model):
    """Time to first token with the same scripted model (every call takes 0.4 s): Urdu within 20 % of English."""
    import time

    language_model.respond_with(lambda body: (time.sleep(0.4), "Nodes publish on topics and others subscribe [1].")[1])

    async def first_token(language: str | None) -> float:
        started, seen = time.perf_counter(), []
        await tutor.run_turn(TurnInput(TOPICS, language=language), on_token=lambda _: seen.append(time.perf_counter()))
        return seen[0] - started

    await first_token(None)  # warm up the index and the client
    english, urdu = await first_token(None), await first_token("ur")

    print(f"time to first token: en {english:.3f} s, ur {urdu:.3f} s")
    assert urdu <= 1.2 * english, (english, urdu)


async def test_a_model_that_stops_sending_text_fails_the_turn_though_it_keeps_the_connection_alive(tutor, language_model):
    """Keep-alive comments reset an HTTP read timeout; the answer still gives up after the model timeout."""
    import time

    tutor.settings = tutor.settings.model_copy(update={"model_timeout": 1.0})
    language_model.keepalive_stall = 3
    language_model.reply("Nodes publish messages on topics [1].")

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await tutor.run_turn(TurnInput(TOPICS))
    assert time.monotonic() - started < 2.5


async def test_tools_work_for_a_tool_calling_agent(tutor, language_model, book_index):
    from langchain_openai import ChatOpenAI

    from booktutor.tools.retrieval import build_search_tool

    search_book = build_search_tool(book_index)
    language_model.reply_tool_call("search_book", {"query": "ROS 2 launch files", "k": 2})
    model = ChatOpenAI(base_url=language_model.base_url, api_key="test", model="gpt-test").bind_tools([search_book])

    call = await model.ainvoke("Find the chapter about launch files")
    # Invoking a tool with the model's tool call is what an agent loop does; it returns a ToolMessage.
    result = await search_book.ainvoke({**call.tool_calls[0], "type": "tool_call"})

    assert call.tool_calls[0]["name"] == "search_book"
    assert language_model.requests[-1]["tools"][0]["function"]["name"] == "search_book"
    assert result.tool_call_id == call.tool_calls[0]["id"]
    assert "01-ros2/06-launch-files.md" in result.content


def test_builder_compiles_without_a_checkpointer_for_studio():
    from booktutor.graphs.graph import graph

    assert graph.checkpointer is None
    assert {"route", "rewrite_query", "retrieve", "answer", "translate"} <= set(graph.get_graph().nodes)
    assert builder.compile().get_input_jsonschema()["properties"].keys() >= {"messages", "selected_text", "page", "language"}


async def test_a_failed_first_turn_leaves_no_thread_behind(tmp_path, database_url):
    from booktutor.server import crud
    from booktutor.server.settings import Settings
    from booktutor.server.tutor import open_tutor
    from booktutor.tools.errors import BookIndexError

    async with open_tutor(Settings(home=tmp_path, database_url=database_url, collection="nothing")) as empty:
        async with empty.sessions() as session:
            before = {t.id for t in await crud.list_threads(session, reader_id=None, limit=1000)}
        with pytest.raises(BookIndexError) as raised:
            await empty.run_turn(TurnInput(TOPICS))
        assert raised.value.code == "index_empty"
        async with empty.sessions() as session:
            after = {t.id for t in await crud.list_threads(session, reader_id=None, limit=1000)}
    assert after == before


async def test_a_run_can_choose_its_own_model_for_a_role(tutor, language_model):
    language_model.respond_with(lambda body: "Nodes publish messages on topics [1].")
    thread_id = await tutor.ensure_thread(thread_id=None, title=TOPICS)

    context = tutor.settings.context(answer_model="tutor-answer-2")
    values = await tutor.graph.ainvoke(
        TurnInput(TOPICS).graph_input(), {"configurable": {"thread_id": thread_id}}, context=context
    )

    # The other roles keep the process's model; the answer uses the one this run asked for.
    assert [r["model"] for r in language_model.requests][-1] == "tutor-answer-2"
    assert {r["model"] for r in language_model.requests[:-1]} <= {"gpt-4o-mini"}
    assert values["messages"][-1].additional_kwargs["model"] == "tutor-answer-2"


async def test_a_translate_request_translates_the_selection(tutor, language_model):
    language_model.respond_with(lambda body: "ur: " + body["messages"][-1]["content"])
    selection = "A node publishes messages with `create_publisher`."

    result = await tutor.run_turn(TurnInput("Translate this into Urdu please", selected_text=selection))

    assert result.turn == "translate" and result.error is None
    assert result.language == "ur" and result.direction == "rtl"
    assert result.answer.startswith("ur: ") and "`create_publisher`" in result.answer
    assert result.sources == []
    assert "Urdu" in json.dumps(language_model.requests[-1]["messages"])


async def test_a_turn_starts_embedding_its_question_as_it_begins_and_small_talk_does_not(tutor, monkeypatch):
    embeddings = open_index(tutor.settings.context()).embeddings
    runs: list[str] = []
    real = embeddings._embed
    monkeypatch.setattr(embeddings, "_embed", lambda text: runs.append(text) or real(text))
    question = "How does a humanoid keep its balance on one foot? (asked once)"

    await tutor.begin_turn(TurnInput(question))
    await tutor.begin_turn(TurnInput("Hello there!"))
    # Wait for the early-embedding thread to finish what the two turns gave it.
    await asyncio.get_running_loop().run_in_executor(EARLY_EMBEDDING, lambda: None)

    assert runs == [question]
    embeddings.embed_query(question)  # what the turn's search asks for: found, not embedded again
    assert runs == [question]
