"""Who speaks: the chat model for each role, OpenAI-compatible when an endpoint is given, offline otherwise.

Roles are `answer`, `rewrite`, `translate` and `personalize`. Nothing here reads the environment: the
caller hands over an `Endpoint` (where an OpenAI-compatible server is) and the model name of the role,
both decided by the settings. With no endpoint every role falls back to the offline model.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda

from booktutor.agents.endpoint import DEFAULT_MODEL, OFFLINE, ROLES, Endpoint, Role
from booktutor.agents.offline import OFFLINE_MODEL_NAME
from booktutor.agents.prompts import PERSONALIZE_PROMPT, REWRITE_PROMPT, TRANSLATE_PROMPT, describe_reader

__all__ = [
    "DEFAULT_MODEL",
    "OFFLINE",
    "ROLES",
    "Endpoint",
    "Role",
    "answer_model",
    "chat_model",
    "model_name",
    "personalizer",
    "rewriter",
    "translator",
]

def model_name(endpoint: Endpoint = OFFLINE, model: str = DEFAULT_MODEL) -> str:
    """The model that really speaks: `model` on a configured endpoint, else the offline model's name."""
    return model if endpoint.configured else OFFLINE_MODEL_NAME


@lru_cache(maxsize=16)
def _openai_chat(model: str, endpoint: Endpoint, temperature: float) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    from booktutor.agents.streaming import chunk_dicts_client

    # Local servers (llama.cpp, vLLM, Ollama) accept any key but the client insists on one.
    api_key = endpoint.api_key or "not-needed"
    chunk_dicts = chunk_dicts_client(endpoint, api_key)
    return ChatOpenAI(
        model=model,
        base_url=endpoint.base_url,
        api_key=api_key,
        temperature=temperature,
        timeout=endpoint.timeout,
        max_retries=endpoint.retries,
        root_async_client=chunk_dicts,
        async_client=chunk_dicts.chat.completions,
        stream_usage=True,
        # langchain-openai bounds the wait for each streamed chunk with `asyncio.wait_for`, which on
        # Python 3.11 starts a task per chunk (about 8 % of the server's CPU per token); the answer node
        # keeps the same bound on the answer's stream with one rescheduled deadline instead.
        stream_chunk_timeout=None,
    )


def chat_model(role: Role, endpoint: Endpoint = OFFLINE, model: str = DEFAULT_MODEL) -> BaseChatModel | None:
    """The language model for `role` on `endpoint`, or None when there is no endpoint."""
    if not endpoint.configured:
        return None
    temperature = 0.0 if role == "rewrite" else 0.2
    return _openai_chat(model, endpoint, temperature)


def answer_model(
    offline: Callable[[], BaseChatModel], endpoint: Endpoint = OFFLINE, model: str = DEFAULT_MODEL
) -> BaseChatModel:
    """The model that writes answers: never None; with no endpoint `offline()` (the `OfflineChatModel`
    its caller builds with the book's embeddings and Markdown reader) stands in."""
    return chat_model("answer", endpoint, model) or offline()


def _rewrite_inputs(inputs: dict) -> dict:
    return {
        "question": inputs["question"],
        "history": "\n".join(inputs.get("history") or []) or "(none)",
        "reader": describe_reader(inputs.get("profile")),
    }


def rewriter(endpoint: Endpoint = OFFLINE, model: str = DEFAULT_MODEL) -> Runnable | None:
    """{question, history, profile} -> standalone query, or None offline (the rewrite tool falls back)."""
    chat = chat_model("rewrite", endpoint, model)
    return RunnableLambda(_rewrite_inputs) | REWRITE_PROMPT | chat | StrOutputParser() if chat else None


def translator(endpoint: Endpoint = OFFLINE, model: str = DEFAULT_MODEL) -> Runnable | None:
    """prompt | model for translation, or None when there is no endpoint."""
    chat = chat_model("translate", endpoint, model)
    return TRANSLATE_PROMPT | chat | StrOutputParser() if chat else None


def _personalize_inputs(inputs: dict) -> dict:
    return {"text": inputs["text"], "reader": describe_reader(inputs.get("profile"))}


def personalizer(endpoint: Endpoint = OFFLINE, model: str = DEFAULT_MODEL) -> Runnable | None:
    """{text, profile} -> the section rewritten for that reader, or None when there is no endpoint."""
    chat = chat_model("personalize", endpoint, model)
    return RunnableLambda(_personalize_inputs) | PERSONALIZE_PROMPT | chat | StrOutputParser() if chat else None
