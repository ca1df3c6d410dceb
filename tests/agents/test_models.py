"""`agents/models.py`: which model speaks for each role, offline by default and OpenAI-compatible when configured.

The environment is read by `Settings` (the one place that reads it); the models take its endpoint and
the model name of each role as arguments.
"""

from __future__ import annotations

import asyncio
import gc
import re
import time
import warnings
import pytest
from langchain_openai import ChatOpenAI

from booktutor.agents import models, streaming
from booktutor.agents.offline import OFFLINE_LABEL, OfflineChatModel
from booktutor.agents.prompts import answer_messages
from booktutor.graphs.nodes import offline_answer_model
from booktutor.graphs.settings import Settings

ROLES = ("answer", "rewrite", "translate")
PASSAGES = [
    {
        "title": "ROS 2 Communication",
        "heading": "Topics",
        "path": "02-ros2/02-topics.md",
        "text": "A topic is a named bus over which nodes exchange messages. Publishers send messages to a topic.",
    }
]


def configure(monkeypatch, **variables: str) -> Settings:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    models._openai_chat.cache_clear()
    return Settings()


def chat_model(settings: Settings, role: str):
    return models.chat_model(role, settings.model_endpoint, settings.model_for(role))


def model_name(settings: Settings, role: str) -> str:
    return models.model_name(settings.model_endpoint, settings.model_for(role))


def role_model(factory, settings: Settings, role: str):
    if factory is models.answer_model:
        # The answer model is never None: its caller hands it the offline model to fall back on.
        return factory(offline_answer_model, settings.model_endpoint, settings.model_for(role))
    return factory(settings.model_endpoint, settings.model_for(role))


# -- offline -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_no_environment_means_no_language_model(role):
    settings = Settings()
    assert not settings.model_endpoint.configured
    assert chat_model(settings, role) is None
    assert model_name(settings, role) == "offline-extractive"
    # Called with no arguments, every role is offline too.
    assert models.chat_model(role) is None and models.model_name() == "offline-extractive"


def test_offline_roles():
    assert isinstance(models.answer_model(offline_answer_model), OfflineChatModel)
    assert models.translator() is None
    assert models.rewriter() is None


def test_model_names_alone_do_not_configure_a_model(monkeypatch):
    settings = configure(monkeypatch, BOOKTUTOR_MODEL="llama3", BOOKTUTOR_ANSWER_MODEL="qwen2.5")
    assert chat_model(settings, "answer") is None
    assert model_name(settings, "answer") == "offline-extractive"
    assert isinstance(role_model(models.answer_model, settings, "answer"), OfflineChatModel)


def test_offline_answer_model_answers_from_the_passages():
    answer = models.answer_model(offline_answer_model).invoke(
        answer_messages(question="How do nodes exchange messages?", passages=PASSAGES)
    )
    assert "[1]" in answer.content
    assert answer.content.endswith(OFFLINE_LABEL)


# -- configured --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_base_url_configures_every_role_with_the_default_model(monkeypatch, role):
    settings = configure(monkeypatch, OPENAI_BASE_URL="http://127.0.0.1:9/v1")

    model = chat_model(settings, role)

    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "gpt-4o-mini" == model_name(settings, role)
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.temperature == (0.0 if role == "rewrite" else 0.2)


def test_api_key_alone_configures_a_model(monkeypatch):
    settings = configure(monkeypatch, OPENAI_API_KEY="sk-test")
    model = chat_model(settings, "answer")
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_key.get_secret_value() == "sk-test"
    assert role_model(models.translator, settings, "translate") is not None
    assert role_model(models.rewriter, settings, "rewrite") is not None


def test_base_url_without_a_key_uses_a_placeholder_key(monkeypatch):
    settings = configure(monkeypatch, OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    assert chat_model(settings, "answer").openai_api_key.get_secret_value()


def test_timeout_and_retries_come_from_the_settings(monkeypatch):
    settings = configure(
        monkeypatch, OPENAI_BASE_URL="http://127.0.0.1:9/v1", BOOKTUTOR_MODEL_TIMEOUT="7", BOOKTUTOR_MODEL_RETRIES="0"
    )
    model = chat_model(settings, "answer")
    assert (model.request_timeout, model.max_retries) == (7.0, 0)


def test_booktutor_model_is_the_default_for_every_role(monkeypatch):
    settings = configure(monkeypatch, OPENAI_BASE_URL="http://127.0.0.1:9/v1", BOOKTUTOR_MODEL="qwen2.5:7b")
    for role in ROLES:
        assert model_name(settings, role) == "qwen2.5:7b"
        assert chat_model(settings, role).model_name == "qwen2.5:7b"


def test_each_role_can_have_its_own_model(monkeypatch):
    settings = configure(
        monkeypatch,
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        BOOKTUTOR_MODEL="default-model",
        BOOKTUTOR_ANSWER_MODEL="answer-model",
        BOOKTUTOR_REWRITE_MODEL="rewrite-model",
        BOOKTUTOR_TRANSLATE_MODEL="translate-model",
    )
    assert {role: chat_model(settings, role).model_name for role in ROLES} == {
        "answer": "answer-model",
        "rewrite": "rewrite-model",
        "translate": "translate-model",
    }
    assert role_model(models.answer_model, settings, "answer").model_name == "answer-model"


def test_roles_without_their_own_model_fall_back_to_booktutor_model(monkeypatch):
    settings = configure(
        monkeypatch,
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        BOOKTUTOR_MODEL="default-model",
        BOOKTUTOR_TRANSLATE_MODEL="translate-model",
    )
    assert model_name(settings, "answer") == "default-model"
    assert model_name(settings, "rewrite") == "default-model"
    assert model_name(settings, "translate") == "translate-model"


def test_role_models_without_booktutor_model_fall_back_to_gpt_4o_mini(monkeypatch):
    settings = configure(monkeypatch, OPENAI_API_KEY="sk-test", BOOKTUTOR_REWRITE_MODEL="rewrite-model")
    assert model_name(settings, "rewrite") == "rewrite-model"
    assert model_name(settings, "answer") == "gpt-4o-mini"
    assert model_name(settings, "translate") == "gpt-4o-mini"


def test_the_same_configuration_reuses_one_client(monkeypatch):
    settings = configure(monkeypatch, OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    assert chat_model(settings, "answer") is chat_model(Settings(), "answer")


# -- against the scripted server ---------------------------------------------------------------------


def test_answer_model_streams_from_the_configured_server(language_model, monkeypatch):
    settings = configure(monkeypatch, BOOKTUTOR_ANSWER_MODEL="tutor-answer-1")
    reply = "A topic is a named bus over which nodes exchange messages [1]."
    language_model.reply(reply)

    chunks = [chunk.content for chunk in role_model(models.answer_model, settings, "answer").stream(
        answer_messages(question="How do nodes exchange messages?", passages=PASSAGES)
    )]

    assert "".join(chunks) == reply
    assert len([c for c in chunks if c]) >= 5
    assert len(language_model.requests) == 1
    request = language_model.requests[0]
    assert request["stream"] is True
    assert request["model"] == "tutor-answer-1"
    assert request["messages"][0]["role"] == "system"
    assert re.search(r"<question-[0-9a-f]+>\nHow do nodes exchange messages\?\n</question-", request["messages"][-1]["content"])


async def test_answer_model_astreams_with_the_default_model(language_model, monkeypatch):
    reply = "Publishers send messages to a topic, and subscribers receive them [1]."
    language_model.reply(reply)
    # Paced like a model writing: text that arrives together comes out as one chunk (see streaming.py).
    monkeypatch.setattr(language_model, "token_delay", 0.01)

    chunks = [
        chunk.content
        async for chunk in role_model(models.answer_model, Settings(), "answer").astream(
            answer_messages(question="How do nodes exchange messages?", passages=PASSAGES)
        )
    ]

    assert "".join(chunks) == reply
    assert len([c for c in chunks if c]) >= 5
    request = language_model.requests[0]
    assert request["stream"] is True
    assert request["model"] == "gpt-4o-mini"


async def test_a_busy_process_reads_each_model_stream_less_often_and_loses_no_text(language_model, monkeypatch):
    reply = " ".join(f"word{n}" for n in range(40)) + " [1]."
    model = role_model(models.answer_model, Settings(), "answer")
    messages = answer_messages(question="How do nodes exchange messages?", passages=PASSAGES)
    monkeypatch.setattr(language_model, "token_delay", 0.01)

    async def chunks() -> list[str]:
        language_model.reply(reply)
        return [chunk.content async for chunk in model.astream(messages) if chunk.content]

    quiet = await chunks()
    # As if more than PACE_ABOVE streams were open: each read waits 50 ms after the one before.
    monkeypatch.setattr(streaming, "PACE_ABOVE", 0)
    monkeypatch.setattr(streaming, "PACE_SECONDS", 0.05)
    busy = await chunks()

    assert "".join(quiet) == "".join(busy) == reply
    assert len(quiet) >= 30, "a quiet process reads each token as it comes"
    assert len(busy) <= len(quiet) / 3, "a busy one gets the tokens of 50 ms in one read, as one chunk"


async def test_translator_and_rewriter_use_their_role_models(language_model, monkeypatch):
    settings = configure(monkeypatch, BOOKTUTOR_TRANSLATE_MODEL="tutor-translate-1", BOOKTUTOR_REWRITE_MODEL="tutor-rewrite-1")
    language_model.reply("ترجمہ")
    language_model.reply("ROS 2 topics")

    translated = await role_model(models.translator, settings, "translate").ainvoke({"text": "A topic", "language_name": "Urdu"})
    rewritten = await role_model(models.rewriter, settings, "rewrite").ainvoke(
        {"question": "And topics?", "history": ["user: What is a node?"], "profile": None}
    )

    assert (translated, rewritten) == ("ترجمہ", "ROS 2 topics")
    translate_request, rewrite_request = language_model.requests
    assert translate_request["model"] == "tutor-translate-1"
    assert rewrite_request["model"] == "tutor-rewrite-1"
    assert rewrite_request["temperature"] == 0.0


def test_one_answer_model_serves_one_event_loop_after_another_and_closes_each_loops_connections(language_model):
    # The CLI and the tests run several loops in turn while a chat model is built once per
    # configuration; the model client's aiohttp sessions each belong to one loop.
    replies = ["Topics carry messages [1].", "Subscribers receive them [1]."]
    model = role_model(models.answer_model, Settings(), "answer")
    messages = answer_messages(question="How do nodes exchange messages?", passages=PASSAGES)

    async def answer() -> str:
        return "".join([chunk.content async for chunk in model.astream(messages)])

    already_open = language_model.open_connections()
    heard = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for reply in replies:
            language_model.reply(reply)
            heard.append(asyncio.run(answer()))
        gc.collect()
    deadline = time.monotonic() + 5
    while language_model.open_connections() - already_open and time.monotonic() < deadline:
        time.sleep(0.05)

    assert heard == replies
    assert language_model.open_connections() - already_open == set()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
