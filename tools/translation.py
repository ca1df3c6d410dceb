"""The `translate_text` tool: Markdown translation that keeps code, URLs and math byte-identical.

Everything that must not change is swapped for a numbered placeholder before the model sees the text
and swapped back after; a reply that lost or duplicated a placeholder is retried once and otherwise
refused, so a translation never silently corrupts code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from booktutor.tools import markdown
from booktutor.tools.errors import BooktutorError, ModelRequiredError
from booktutor.tools.languages import LANGUAGES, language_info  # noqa: F401  (part of this module's API)

# A leading YAML frontmatter block is kept whole: Docusaurus reads its keys (id, slug, sidebar_position)
# and a translated key or slug would break the build or the page's URL.
_FRONTMATTER = re.compile(r"(?ms)\A---[ \t]*\n[A-Za-z_][\w-]*[ \t]*:.*?^---[ \t]*$")
# Outside frontmatter and fenced code (found by `tools.markdown`). Order matters: display math before
# inline math.
_PROTECTED = re.compile(
    # MDX import/export statements are JavaScript, not prose.
    r"(?ms)^(?:import|export)[ \t][^\n]*$"
    r"|\$\$.+?\$\$"  # display math
    r"|`+[^`\n]+?`+"  # inline code
    r"|(?<![\\\w])\$[^\s$][^$\n]*?(?<!\s)\$(?!\w)"  # inline math
    r"|<[A-Za-z/][^>\n]*>"  # HTML / JSX tags
    r"|\]\([^)\s]+(?:\s+\"[^\"]*\")?\)"  # the target part of a Markdown link
    r"|https?://[^\s)>\]]+"  # bare URLs
)
_PLACEHOLDER = re.compile(r"⟦(\d+)⟧")


class TranslationError(BooktutorError):
    code = "translation_failed"


@dataclass(frozen=True)
class Translation:
    text: str
    language: str
    direction: str


def protect(text: str) -> tuple[str, list[str]]:
    """Replace frontmatter, code, MDX imports, math, tags and URLs with ⟦n⟧ placeholders; returns the
    text and the originals."""
    kept: list[str] = []

    def keep(original: str) -> str:
        kept.append(original)
        return f"⟦{len(kept) - 1}⟧"

    def prose(piece: str) -> str:
        return _PROTECTED.sub(lambda match: keep(match.group(0)), piece)

    pieces: list[str] = []
    frontmatter = _FRONTMATTER.match(text)
    start = frontmatter.end() if frontmatter else 0
    if frontmatter:
        pieces.append(keep(frontmatter.group(0)))
    # The Markdown after the frontmatter is read on its own: YAML is not Markdown.
    pos = start
    for begin, end in markdown.fence_spans(text[start:]):
        pieces += [prose(text[pos : start + begin]), keep(text[start + begin : start + end])]
        pos = start + end
    pieces.append(prose(text[pos:]))
    return "".join(pieces), kept


def restore(text: str, kept: list[str]) -> str:
    """Put the originals back; raises TranslationError if any placeholder was lost or repeated."""
    found = [int(n) for n in _PLACEHOLDER.findall(text)]
    if sorted(found) != list(range(len(kept))):
        raise TranslationError("The model changed protected code, URLs or formulas.")
    return _PLACEHOLDER.sub(lambda m: kept[int(m.group(1))], text)


async def translate(translator: Runnable | None, text: str, language: str) -> Translation:
    """Translate Markdown `text` into `language`, protected parts unchanged."""
    code, name, direction = language_info(language)
    if code == "en" or not text.strip():
        return Translation(text, code, direction)
    if translator is None:
        raise ModelRequiredError(
            "Translation needs a language model. Set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
            "local or other OpenAI-compatible server); BOOKTUTOR_TRANSLATE_MODEL picks the model."
        )
    masked, kept = protect(text)
    last_error: TranslationError | None = None
    for _ in range(2):
        reply = await translator.ainvoke({"text": masked, "language_name": name})
        try:
            return Translation(restore(reply.strip(), kept), code, direction)
        except TranslationError as exc:
            last_error = exc
    raise last_error  # type: ignore[misc]


class TranslateTextInput(BaseModel):
    text: str = Field(description="Markdown text to translate.")
    language: str = Field(description="Target language code, e.g. 'ur' for Urdu.")


def build_translate_tool(translator: Runnable | None) -> BaseTool:
    """`translate_text` bound to a translator (prompt | model), or to None when there is no model."""

    async def translate_text(text: str, language: str) -> dict:
        result = await translate(translator, text, language)
        return {"text": result.text, "language": result.language, "direction": result.direction}

    return StructuredTool.from_function(
        coroutine=translate_text,
        name="translate_text",
        description="Translate Markdown into another language, keeping code, URLs and formulas unchanged.",
        args_schema=TranslateTextInput,
    )
