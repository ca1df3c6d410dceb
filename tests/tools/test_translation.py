"""`tools/translation.py`: protected Markdown, language codes, and translation through a real model client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import CORPUS
from booktutor.tools.errors import BooktutorError, InvalidInputError, ModelRequiredError
from booktutor.tools.translation import (
    TranslationError,
    build_translate_tool,
    language_info,
    protect,
    restore,
    translate,
)

PLACEHOLDER = re.compile(r"⟦\d+⟧")

FENCED_PYTHON = """```python
import rclpy
from std_msgs.msg import String

node = rclpy.create_node('talker')
publisher = node.create_publisher(String, 'chatter', 10)
```"""

FENCED_TILDE = """~~~bash
ros2 topic echo /chatter  # prints every message
~~~"""

DISPLAY_MATH = """$$
E = \\frac{1}{2} m v^2
$$"""

PAGE = f"""---
title: Publishing with rclpy
---

# Publishing with rclpy

See the [rclpy documentation](https://docs.ros.org/en/humble/p/rclpy/ "rclpy API") or read
https://design.ros2.org/articles/topic_and_service_names.html before you name your topics.

<Tabs groupId="language">
<TabItem value="py" label="Python">

{FENCED_PYTHON}

</TabItem>
</Tabs>

Call `rclpy.spin(node)` to process callbacks, and ``ros2 topic list`` to see them. The joint torque is
$\\tau = J^T F$ and the kinetic energy of the link is:

{DISPLAY_MATH}

{FENCED_TILDE}

<img src="/img/ros-graph.png" alt="The ROS graph" width="400" />
![The ROS graph](../img/ros-graph.png)
"""

MUST_KEEP = [
    FENCED_PYTHON,
    FENCED_TILDE,
    DISPLAY_MATH,
    "`rclpy.spin(node)`",
    "``ros2 topic list``",
    "$\\tau = J^T F$",
    '](https://docs.ros.org/en/humble/p/rclpy/ "rclpy API")',
    "https://design.ros2.org/articles/topic_and_service_names.html",
    '<Tabs groupId="language">',
    '<TabItem value="py" label="Python">',
    "</TabItem>",
    "</Tabs>",
    '<img src="/img/ros-graph.png" alt="The ROS graph" width="400" />',
    "](../img/ros-graph.png)",
]


# -- protect / restore -------------------------------------------------------------------------------


def test_protect_replaces_code_math_urls_links_and_tags_with_placeholders():
    masked, kept = protect(PAGE)

    for original in MUST_KEEP:
        assert original in kept, f"not protected as one piece: {original!r}"
        assert original not in masked
    # the prose the model should translate is still there, and nothing else got swallowed
    assert "before you name your topics." in masked
    assert "to process callbacks, and" in masked
    assert "The joint torque is" in masked
    assert "[rclpy documentation" in masked  # the link text is translatable, only its target is kept
    # one numbered placeholder per protected piece, in order
    assert PLACEHOLDER.findall(masked) == [f"⟦{n}⟧" for n in range(len(kept))]


def test_restore_of_protect_is_byte_identical():
    masked, kept = protect(PAGE)
    assert restore(masked, kept) == PAGE


def test_restore_accepts_placeholders_moved_by_the_translation():
    masked, kept = protect("Run `colcon build` and then `source install/setup.bash`.")
    assert kept == ["`colcon build`", "`source install/setup.bash`"]
    # a translation may reorder the sentence, so the placeholders change places
    assert restore("پہلے ⟦1⟧ نہیں، بلکہ ⟦0⟧ چلائیں۔", kept) == (
        "پہلے `source install/setup.bash` نہیں، بلکہ `colcon build` چلائیں۔"
    )


def test_restore_refuses_a_lost_placeholder():
    masked, kept = protect(PAGE)
    lost = masked.replace("⟦1⟧", "", 1)
    with pytest.raises(TranslationError) as error:
        restore(lost, kept)
    assert error.value.code == "translation_failed"
    assert isinstance(error.value, BooktutorError)


def test_restore_refuses_a_duplicated_placeholder():
    masked, kept = protect(PAGE)
    with pytest.raises(TranslationError):
        restore(masked + " ⟦0⟧", kept)


def test_restore_refuses_an_invented_placeholder():
    masked, kept = protect("Use `ros2 run` here.")
    with pytest.raises(TranslationError):
        restore(masked + " ⟦7⟧", kept)


def test_fenced_code_inside_a_list_item_is_protected():
    """Indented fences (the usual way to put a command in a numbered step) are code too."""
    block = "```bash\n   source /opt/ros/humble/setup.bash\n   ros2 run demo_nodes_cpp talker\n   ```"
    text = f"1. **Start the talker** in a new terminal:\n   {block}\n\n2. Open another terminal.\n"
    masked, kept = protect(text)
    assert restore(masked, kept) == text
    assert any(block in piece for piece in kept), kept
    assert "ros2 run demo_nodes_cpp talker" not in masked, "the command would be sent to the model to translate"


# -- the real book -----------------------------------------------------------------------------------

_BOOK_PAGES = sorted([*CORPUS.rglob("*.md"), *CORPUS.rglob("*.mdx")]) if CORPUS.is_dir() else []
_OPENING = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_CLOSING = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*$")


def fenced_blocks(text: str) -> list[str]:
    """Every closed fenced code block, from its opening fence marker to its closing one (indentation allowed)."""
    blocks: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = _OPENING.match(lines[i])
        if not opening or (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            i += 1
            continue
        marker = opening.group(1)
        for j in range(i + 1, len(lines)):
            closing = _CLOSING.match(lines[j])
            if closing and closing.group(1)[0] == marker[0] and len(closing.group(1)) >= len(marker):
                blocks.append("\n".join(lines[i : j + 1]).lstrip(" \t").rstrip())
                i = j + 1
                break
        else:
            break
    return blocks


def test_the_book_is_there():
    assert len(_BOOK_PAGES) >= 40, f"expected the physical-AI book at {CORPUS}"
    assert sum(len(fenced_blocks(p.read_text(encoding="utf-8"))) for p in _BOOK_PAGES) > 100


@pytest.mark.parametrize("page", _BOOK_PAGES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_protect_round_trips_every_page_of_the_book_and_keeps_its_code(page: Path):
    text = page.read_text(encoding="utf-8")
    masked, kept = protect(text)

    assert restore(masked, kept) == text

    unprotected = [block for block in fenced_blocks(text) if not any(block in piece for piece in kept)]
    assert not unprotected, (
        f"{len(unprotected)} fenced code block(s) would be sent to the model for translation, "
        f"the first: {unprotected[0][:200]!r}"
    )


# -- language codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["ur", "ur-PK", "UR_pk", " ur "])
def test_language_info_normalises_urdu(code):
    assert language_info(code) == ("ur", "Urdu", "rtl")


def test_language_info_knows_left_to_right_languages():
    assert language_info("es-MX") == ("es", "Spanish", "ltr")
    assert language_info("en") == ("en", "English", "ltr")
    assert language_info("ar") == ("ar", "Arabic", "rtl")


@pytest.mark.parametrize("code", ["xx", "", "klingon"])
def test_language_info_refuses_unknown_languages(code):
    with pytest.raises(InvalidInputError) as error:
        language_info(code)
    assert error.value.code == "unsupported_language"
    assert "ur" in error.value.message  # the message lists what is supported


# -- translate without a model ------------------------------------------------------------------------


async def test_translate_without_a_model_says_how_to_configure_one():
    with pytest.raises(ModelRequiredError) as error:
        await translate(None, "A topic is a named bus.", "ur")
    assert error.value.code == "model_required"
    assert "OPENAI_API_KEY" in error.value.message
    assert "OPENAI_BASE_URL" in error.value.message
    assert "BOOKTUTOR_TRANSLATE_MODEL" in error.value.message


async def test_translate_checks_the_language_before_asking_for_a_model():
    with pytest.raises(InvalidInputError) as error:
        await translate(None, "A topic is a named bus.", "xx")
    assert error.value.code == "unsupported_language"


async def test_translate_to_english_needs_no_model():
    result = await translate(None, PAGE, "en-US")
    assert (result.text, result.language, result.direction) == (PAGE, "en", "ltr")


# -- translate with the scripted model ----------------------------------------------------------------


def fake_translation(body: dict) -> str:
    """A 'model' that translates by upper-casing every word and keeps the ⟦n⟧ tokens, like a good model."""
    text = body["messages"][-1]["content"]
    parts = re.split(r"(⟦\d+⟧)", text)
    return "\n" + "".join(p if PLACEHOLDER.fullmatch(p) else p.upper() for p in parts) + "\n"


def dropping_translation(body: dict) -> str:
    """A 'model' that loses the first protected piece."""
    return fake_translation(body).replace("⟦0⟧", "")


@pytest.fixture
def translator(language_model):
    from booktutor.agents import models
    from booktutor.graphs.settings import Settings

    language_model.respond_with(fake_translation)
    settings = Settings()  # reads the scripted server's address from the environment
    built = models.translator(settings.model_endpoint, settings.model_for("translate"))
    assert built is not None
    return built


async def test_translate_restores_code_and_reports_direction(translator, language_model):
    result = await translate(translator, PAGE, "ur-PK")

    assert result.language == "ur"
    assert result.direction == "rtl"
    for original in MUST_KEEP:
        assert original in result.text, f"changed by the translation: {original!r}"
    assert "BEFORE YOU NAME YOUR TOPICS." in result.text  # the prose went through the model
    assert "before you name your topics." not in result.text
    assert len(language_model.requests) == 1


async def test_translate_never_sends_protected_code_to_the_model(translator, language_model):
    await translate(translator, PAGE, "ur")
    sent = language_model.requests[0]["messages"][-1]["content"]
    assert "create_publisher" not in sent
    assert "https://design.ros2.org" not in sent
    assert "\\frac" not in sent
    assert PLACEHOLDER.search(sent)


async def test_translate_system_prompt_names_the_target_language(translator, language_model):
    await translate(translator, "A service is a request and response between two nodes.", "ur")
    await translate(translator, "A service is a request and response between two nodes.", "fr")

    urdu, french = language_model.requests
    assert urdu["messages"][0]["role"] == "system"
    assert "Urdu" in urdu["messages"][0]["content"]
    assert "French" in french["messages"][0]["content"]
    assert "Urdu" not in french["messages"][0]["content"]
    assert urdu["messages"][-1]["content"] == "A service is a request and response between two nodes."


async def test_translate_retries_once_when_a_placeholder_is_lost_then_refuses(translator, language_model):
    language_model.respond_with(dropping_translation)

    with pytest.raises(TranslationError) as error:
        await translate(translator, PAGE, "ur")

    assert error.value.code == "translation_failed"
    assert len(language_model.requests) == 2
    assert language_model.requests[0]["messages"] == language_model.requests[1]["messages"]


async def test_translate_succeeds_when_the_retry_keeps_the_placeholders(translator, language_model):
    masked, _ = protect(PAGE)
    language_model.reply(masked.replace("⟦2⟧", "⟦2⟧ ⟦2⟧"))  # first reply duplicates a placeholder

    result = await translate(translator, PAGE, "ur")

    assert len(language_model.requests) == 2
    assert FENCED_PYTHON in result.text
    assert result.text.count(FENCED_PYTHON) == 1


async def test_translate_to_english_makes_no_model_call(translator, language_model):
    result = await translate(translator, PAGE, "en")
    assert result.text == PAGE
    assert language_model.requests == []


async def test_translate_of_blank_text_makes_no_model_call(translator, language_model):
    result = await translate(translator, "  \n", "ur")
    assert result.text == "  \n"
    assert result.direction == "rtl"
    assert language_model.requests == []


async def test_translate_text_tool_returns_text_language_and_direction(translator, language_model):
    tool = build_translate_tool(translator)
    result = await tool.ainvoke({"text": "Call `rclpy.spin(node)` to process callbacks.", "language": "ar"})
    assert result == {"text": "CALL `rclpy.spin(node)` TO PROCESS CALLBACKS.", "language": "ar", "direction": "rtl"}


async def test_translate_text_tool_without_a_model_raises_model_required():
    tool = build_translate_tool(None)
    with pytest.raises(ModelRequiredError):
        await tool.ainvoke({"text": "Hello", "language": "ur"})
