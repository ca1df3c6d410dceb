"""Who speaks: the chat model for each role, OpenAI-compatible when configured, offline otherwise.

Roles are `answer`, `rewrite`, `translate` and `personalize`. An OpenAI-compatible endpoint is used when
OPENAI_API_KEY or OPENAI_BASE_URL is set; BOOKTUTOR_<ROLE>_MODEL picks the model of a role and
BOOKTUTOR_MODEL the default for all of them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Callable, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda

from booktutor.agents.offline import OFFLINE_MODEL_NAME
from booktutor.agents.prompts import PERSONALIZE_PROMPT, REWRITE_PROMPT, TRANSLATE_PROMPT, describe_reader

Role = Literal["answer", "rewrite", "translate", "personalize"]
DEFAULT_MODEL = "gpt-4o-mini"


def model_configured() -> bool:
    """True when an OpenAI-compatible endpoint is configured."""
    return bool(os.getenv("OPENAI_API_KEY") or os.getenv("OPENAI_BASE_URL"))


def model_name(role: Role) -> str:
    """The model a role uses, or the offline model's name when none is configured."""
    if not model_configured():
        return OFFLINE_MODEL_NAME
    return os.getenv(f"BOOKTUTOR_{role.upper()}_MODEL") or os.getenv("BOOKTUTOR_MODEL") or DEFAULT_MODEL


@lru_cache(maxsize=16)
def _openai_chat(model: str, base_url: str | None, api_key: str | None, temperature: float) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        base_url=base_url,
        # Local servers (llama.cpp, vLLM, Ollama) accept any key but the client insists on one.
        api_key=api_key or "not-needed",
        temperature=temperature,
        timeout=float(os.getenv("BOOKTUTOR_MODEL_TIMEOUT", "60")),
        max_retries=int(os.getenv("BOOKTUTOR_MODEL_RETRIES", "2")),
        stream_usage=True,
    )


def chat_model(role: Role) -> BaseChatModel | None:
    """The configured language model for `role`, or None when there is none."""
    if not model_configured():
        return None
    temperature = 0.0 if role == "rewrite" else 0.2
    return _openai_chat(model_name(role), os.getenv("OPENAI_BASE_URL"), os.getenv("OPENAI_API_KEY"), temperature)


def answer_model(offline: Callable[[], BaseChatModel]) -> BaseChatModel:
    """The model that writes answers: never None, `offline()` (the `OfflineChatModel` its caller builds
    with the book's tools) stands in."""
    return chat_model("answer") or offline()


def _rewrite_inputs(inputs: dict) -> dict:
    return {
        "question": inputs["question"],
        "history": "\n".join(inputs.get("history") or []) or "(none)",
        "reader": describe_reader(inputs.get("profile")),
    }


def rewriter() -> Runnable | None:
    """{question, history, profile} -> standalone query, or None offline (the rewrite tool falls back)."""
    model = chat_model("rewrite")
    return RunnableLambda(_rewrite_inputs) | REWRITE_PROMPT | model | StrOutputParser() if model else None


def translator() -> Runnable | None:
    """prompt | model for translation, or None when no language model is configured."""
    model = chat_model("translate")
    return TRANSLATE_PROMPT | model | StrOutputParser() if model else None


def _personalize_inputs(inputs: dict) -> dict:
    return {"text": inputs["text"], "reader": describe_reader(inputs.get("profile"))}


def personalizer() -> Runnable | None:
    """{text, profile} -> the section rewritten for that reader, or None when no language model is configured."""
    model = chat_model("personalize")
    return RunnableLambda(_personalize_inputs) | PERSONALIZE_PROMPT | model | StrOutputParser() if model else None
