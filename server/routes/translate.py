"""Translate Markdown, or a past answer, keeping code, URLs and formulas byte-identical."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from booktutor.agents.models import translator
from booktutor.server.deps import CurrentReader, SessionDep, TutorDep
from booktutor.server.errors import ApiError
from booktutor.server.routes.threads import assistant_message, owned_thread
from booktutor.tools.errors import InvalidInputError
from booktutor.tools.translation import LANGUAGES, Translation, language_info, translate

router = APIRouter(prefix="/v1", tags=["translate"])

_LANGUAGE = Field(
    max_length=16,
    description=f"Target language code: one of {', '.join(sorted(LANGUAGES))} (`ur-PK` works too).",
)


class TranslateBody(BaseModel):
    text: str = Field(min_length=1, max_length=20_000, description="Markdown to translate.")
    language: str = _LANGUAGE


class TranslateMessageBody(BaseModel):
    language: str = _LANGUAGE


class TranslationOut(BaseModel):
    text: str
    language: str
    direction: Literal["ltr", "rtl"]


ERRORS = {
    422: {"description": "Invalid body (`invalid_request`) or an unsupported language (`unsupported_language`)."},
    502: {"description": "The model's translation changed protected code or URLs (`translation_failed`)."},
    503: {"description": "No language model is configured (`model_required`)."},
}


def _check_language(language: str) -> None:
    # Checked before any model call, and answered 422 like the profile's language field.
    try:
        language_info(language)
    except InvalidInputError as error:
        raise ApiError(422, error.code, error.message) from None


async def _translate(text: str, language: str) -> TranslationOut:
    # Building the client reads certificates from disk; keep that off the event loop.
    result: Translation = await translate(await asyncio.to_thread(translator), text, language)
    return TranslationOut(text=result.text, language=result.language, direction=result.direction)


@router.post("/translate", response_model=TranslationOut, responses=ERRORS)
async def translate_text(body: TranslateBody, reader: CurrentReader) -> TranslationOut:
    """Translate Markdown into `language`; code blocks, inline code, URLs and math come back unchanged."""
    _check_language(body.language)
    return await _translate(body.text, body.language)


@router.post(
    "/threads/{thread_id}/messages/{message_id}/translate",
    response_model=TranslationOut,
    responses={**ERRORS, 404: {"description": "No such thread for this reader, or no such answer in it."}},
)
async def translate_message(
    thread_id: str,
    message_id: str,
    body: TranslateMessageBody,
    reader: CurrentReader,
    session: SessionDep,
    tutor: TutorDep,
) -> TranslationOut:
    """Translate one past answer of the reader's thread. The stored thread is not changed."""
    await owned_thread(session, thread_id=thread_id, reader=reader)
    # The database is not needed while the model works; free the connection for other readers.
    await session.close()
    _check_language(body.language)
    message = await assistant_message(tutor, thread_id=thread_id, message_id=message_id)
    # An answer that was already translated keeps its English original: translate from that, not
    # from a translation, so nothing is lost twice.
    source = message.additional_kwargs.get("original") or message.text
    return await _translate(source, body.language)
