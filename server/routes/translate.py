"""Translate Markdown, or a past answer, keeping code, URLs and formulas byte-identical."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from booktutor.agents.models import translator
from booktutor.server.bodies import StoredBody
from booktutor.server.deps import CurrentReader, OwnedThread, SessionDep, SettingsDep, TutorDep
from booktutor.server.settings import Settings
from booktutor.tools.translation import LANGUAGES, Translation, language_info, translate

router = APIRouter(prefix="/v1", tags=["translate"])

_LANGUAGE = Field(
    max_length=16,
    description=f"Target language code: one of {', '.join(sorted(LANGUAGES))} (`ur-PK` works too).",
)


class TranslateBody(StoredBody):
    text: str = Field(min_length=1, max_length=20_000, description="Markdown to translate.")
    language: str = _LANGUAGE


class TranslateMessageBody(StoredBody):
    language: str = _LANGUAGE


class TranslationOut(BaseModel):
    text: str
    language: str
    direction: Literal["ltr", "rtl"]


ERRORS = {
    400: {"description": "An unsupported language (`unsupported_language`)."},
    422: {"description": "Invalid body (`invalid_request`)."},
    502: {"description": "The model's translation changed protected code or URLs (`translation_failed`)."},
    503: {"description": "No language model is configured (`model_required`)."},
}


async def _translate(settings: Settings, text: str, language: str) -> TranslationOut:
    context = settings.context()
    # Building the client reads certificates from disk; keep that off the event loop.
    model = await asyncio.to_thread(translator, context.endpoint, context.translate_model)
    result: Translation = await translate(model, text, language)
    return TranslationOut(text=result.text, language=result.language, direction=result.direction)


@router.post("/translate", response_model=TranslationOut, responses=ERRORS)
async def translate_text(body: TranslateBody, reader: CurrentReader, settings: SettingsDep) -> TranslationOut:
    """Translate Markdown into `language`; code blocks, inline code, URLs and math come back unchanged."""
    # Checked before any model call.
    language_info(body.language)
    return await _translate(settings, body.text, body.language)


@router.post(
    "/threads/{thread_id}/messages/{message_id}/translate",
    response_model=TranslationOut,
    responses={**ERRORS, 404: {"description": "No such thread for this reader, or no such answer in it."}},
)
async def translate_message(
    thread_id: str,
    message_id: str,
    body: TranslateMessageBody,
    thread: OwnedThread,
    reader: CurrentReader,
    session: SessionDep,
    tutor: TutorDep,
    settings: SettingsDep,
) -> TranslationOut:
    """Translate one past answer of the reader's thread. The stored thread is not changed."""
    # The database is not needed while the model works; free the connection for other readers.
    await session.close()
    language_info(body.language)
    message = await tutor.answer_message(thread_id, message_id)
    # An answer that was already translated keeps its English original: translate from that, not
    # from a translation, so nothing is lost twice.
    source = message.additional_kwargs.get("original") or message.text
    return await _translate(settings, source, body.language)
