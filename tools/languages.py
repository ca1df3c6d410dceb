"""The languages booktutor answers and translates into, and how to read a language code.

Kept apart from the translation tool (which needs LangChain) so the CLI can refuse an unsupported
language before it imports anything heavy.
"""

from __future__ import annotations

from booktutor.tools.errors import InvalidInputError

LANGUAGES = {
    "en": ("English", "ltr"),
    "ur": ("Urdu", "rtl"),
    "ar": ("Arabic", "rtl"),
    "fa": ("Persian", "rtl"),
    "he": ("Hebrew", "rtl"),
    "hi": ("Hindi", "ltr"),
    "bn": ("Bengali", "ltr"),
    "es": ("Spanish", "ltr"),
    "fr": ("French", "ltr"),
    "de": ("German", "ltr"),
    "pt": ("Portuguese", "ltr"),
    "it": ("Italian", "ltr"),
    "tr": ("Turkish", "ltr"),
    "id": ("Indonesian", "ltr"),
    "zh": ("Chinese", "ltr"),
    "ja": ("Japanese", "ltr"),
    "ko": ("Korean", "ltr"),
    "ru": ("Russian", "ltr"),
}


def language_info(code: str) -> tuple[str, str, str]:
    """(normalised code, English name, text direction) of a language code such as `ur` or `ur-PK`."""
    normalised = (code or "").strip().lower().replace("_", "-").split("-")[0]
    if normalised not in LANGUAGES:
        raise InvalidInputError(
            f"Unsupported language '{code}'. Supported: {', '.join(sorted(LANGUAGES))}.", code="unsupported_language"
        )
    name, direction = LANGUAGES[normalised]
    return normalised, name, direction
