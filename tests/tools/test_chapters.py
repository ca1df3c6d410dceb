"""`tools/chapters.py`: splitting chapters at headings, verified per-section rewrites, ordered bounded streams."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableLambda

from tests.conftest import CORPUS, SHARED
from tests.tools.test_translation import fenced_blocks
from booktutor.tools.chapters import (
    MemoryCache,
    SectionFailed,
    SectionResult,
    heading_levels,
    personalize_chapter,
    prepare_chapter,
    profile_fingerprint,
    rewrite_section,
    split_sections,
    stream_sections,
    translate_chapter,
)
from booktutor.tools.errors import ModelRequiredError
from booktutor.tools.translation import protect

URDU_CORPUS = SHARED / "corpus" / "physical-ai-book-ur"
BOOK_PAGES = sorted([*CORPUS.rglob("*.md"), *CORPUS.rglob("*.mdx")]) if CORPUS.is_dir() else []
PLACEHOLDER = re.compile(r"(⟦\d+⟧)")
INLINE_CODE = re.compile(r"`[^`\n]+`")


def fake_urdu(text: str) -> str:
    """'Translate' like a good model: every word with a letter gets `ur:`, Markdown marks and ⟦n⟧ stay."""
    parts = PLACEHOLDER.split(text)
    return "".join(
        part
        if PLACEHOLDER.fullmatch(part)
        else re.sub(r"[^\s⟦⟧]+", lambda m: f"ur:{m.group(0)}" if re.search(r"[^\W\d_]", m.group(0)) else m.group(0), part)
        for part in parts
    )


class CountingRunnable:
    """A runnable built from `reply(inputs) -> str` that records what it was sent."""

    def __init__(self, reply) -> None:
        self.calls: list[dict] = []

        async def answer(inputs: dict) -> str:
            self.calls.append(inputs)
            return reply(inputs)

        self.runnable = RunnableLambda(answer)


def outside_fences(text: str) -> str:
    for block in fenced_blocks(text):
        text = text.replace(block, "")
    return text


async def collect(stream) -> list:
    return [event async for event in stream]


# -- splitting -------------------------------------------------------------------------------------------


def test_the_book_is_there():
    assert len(BOOK_PAGES) >= 40, f"expected the physical-AI book at {CORPUS}"


@pytest.mark.parametrize("page", BOOK_PAGES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_sections_join_back_into_the_chapter_and_start_at_headings(page: Path):
    text = page.read_text(encoding="utf-8")
    chapter = prepare_chapter(text)

    assert "".join(s.text for s in chapter.sections) == text.replace("\r\n", "\n")
    assert [s.index for s in chapter.sections] == list(range(len(chapter.sections)))
    assert len(chapter.sections) > 1
    for section in chapter.sections[1:]:
        levels = heading_levels(section.text)
        assert levels and levels[0] <= 2, section.text[:120]
    # a code block never straddles two sections
    for block in fenced_blocks(text):
        assert any(block in s.text for s in chapter.sections), block[:80]


def test_headings_inside_code_do_not_split():
    text = "# Setup\n\nRun this:\n\n```bash\n# install\nsudo apt install ros-humble-desktop\n## not a heading\n```\n\n## Next\n\nMore.\n"
    assert split_sections(text) == ["# Setup\n\nRun this:\n\n```bash\n# install\nsudo apt install ros-humble-desktop\n## not a heading\n```\n\n", "## Next\n\nMore.\n"]
    assert heading_levels(text) == [1, 2]


def test_html_headings_split_and_deep_headings_stay_inside():
    text = (
        '---\ntitle: "Nodes"\n---\n\nimport X from "@site/x";\n\n<h1 className="main-heading">Nodes</h1>\n\nIntro.\n\n'
        '<h2 className="second-heading">Topics</h2>\n\nText.\n\n### Detail\n\nDeeper.\n\n#### Deepest\n'
    )
    sections = split_sections(text)
    assert len(sections) == 3
    assert sections[0].startswith("---\n") and sections[1].startswith("<h1") and sections[2].startswith("<h2")
    assert "### Detail" in sections[2] and "#### Deepest" in sections[2]
    assert heading_levels(text) == [1, 2, 3, 4]


def test_whitespace_before_the_first_heading_joins_it():
    assert split_sections("\n\n# Title\n\nBody\n") == ["\n\n# Title\n\nBody\n"]
    assert split_sections("No headings at all.\n") == ["No headings at all.\n"]
    assert split_sections("") == []


def test_chapter_hash_follows_content_and_ignores_line_endings():
    a = prepare_chapter("# A\n\nText.\n")
    assert prepare_chapter("# A\r\n\r\nText.\r\n").hash == a.hash
    assert prepare_chapter("# A\n\nText!\n").hash != a.hash


def test_profile_fingerprint_changes_with_any_field_only():
    profile = {"goals": "walk", "software_background": "Python", "experience_level": "beginner"}
    assert profile_fingerprint(profile) == profile_fingerprint(dict(reversed(profile.items())))
    assert profile_fingerprint(profile) != profile_fingerprint({**profile, "goals": "run"})


def test_frontmatter_and_mdx_imports_are_protected_whole():
    text = '---\nid: nodes\ntitle: "Nodes: the basics"\nslug: /ros2/nodes\n---\n\nimport Tabs from \'@theme/Tabs\';\n\nA node.\n'
    masked, kept = protect(text)
    assert kept[0] == '---\nid: nodes\ntitle: "Nodes: the basics"\nslug: /ros2/nodes\n---'
    assert kept[1] == "import Tabs from '@theme/Tabs';"
    assert masked == "⟦0⟧\n\n⟦1⟧\n\nA node.\n"
    # a thematic break is not frontmatter
    rule = "---\n\nSome prose.\n\n---\n"
    assert protect(rule) == (rule, [])


# -- one section -----------------------------------------------------------------------------------------

SECTION = """## Publishing

A publisher sends messages. Run `ros2 topic list` and see https://docs.ros.org/en/humble/.

```python
node = rclpy.create_node("talker")  # keep me
```

### Details

Mind $x^2$.

"""


async def test_rewrite_section_keeps_code_and_surrounding_whitespace():
    model = CountingRunnable(lambda inputs: fake_urdu(inputs["text"]))

    result = await rewrite_section(model.runnable, SECTION, {"language_name": "Urdu"})

    assert not result.flagged and result.model_calls == 1
    assert result.text.startswith("## ur:Publishing\n") and result.text.endswith("ur:Mind $x^2$.\n\n")
    for kept in ("`ros2 topic list`", "https://docs.ros.org/en/humble/", fenced_blocks(SECTION)[0], "$x^2$"):
        assert kept in result.text
    sent = model.calls[0]
    assert sent["language_name"] == "Urdu"
    assert "create_node" not in sent["text"] and "ros2 topic list" not in sent["text"]


async def test_a_lost_placeholder_is_retried_once_then_flagged_with_the_original():
    model = CountingRunnable(lambda inputs: fake_urdu(inputs["text"]).replace("⟦0⟧", ""))

    result = await rewrite_section(model.runnable, SECTION, {"language_name": "Urdu"})

    assert result.flagged and result.text == SECTION
    assert len(model.calls) == 2 and model.calls[0] == model.calls[1]


async def test_a_dropped_heading_is_retried_and_the_retry_can_succeed():
    replies = iter(
        [
            lambda text: fake_urdu(text).replace("### ", ""),  # the first answer loses "### Details"
            fake_urdu,
        ]
    )
    model = CountingRunnable(lambda inputs: next(replies)(inputs["text"]))

    result = await rewrite_section(model.runnable, SECTION, {"language_name": "Urdu"})

    assert not result.flagged and result.model_calls == 2
    assert heading_levels(result.text) == [2, 3]


async def test_a_changed_heading_level_is_flagged():
    model = CountingRunnable(lambda inputs: fake_urdu(inputs["text"]).replace("### ", "## "))
    result = await rewrite_section(model.runnable, SECTION, {"language_name": "Urdu"})
    assert result.flagged and result.model_calls == 2


async def test_a_reply_wrapped_in_a_markdown_fence_is_unwrapped():
    model = CountingRunnable(lambda inputs: "```markdown\n" + fake_urdu(inputs["text"]) + "\n```")
    result = await rewrite_section(model.runnable, SECTION, {"language_name": "Urdu"})
    assert not result.flagged and result.text.startswith("## ur:Publishing")


async def test_a_section_of_only_code_and_tags_needs_no_model_call():
    model = CountingRunnable(lambda inputs: "should not be asked")
    only_code = '---\nid: x\n---\n\nimport A from "a";\n\n<A value={1} />\n\n```bash\nls\n```\n'
    result = await rewrite_section(model.runnable, only_code, {"language_name": "Urdu"})
    assert result == SectionResult(only_code)
    assert model.calls == []


# -- every chapter of the book -----------------------------------------------------------------------------


@pytest.mark.parametrize("page", BOOK_PAGES, ids=lambda p: str(p.relative_to(CORPUS)))
async def test_every_chapter_translated_keeps_code_inline_code_and_headings(page: Path):
    text = page.read_text(encoding="utf-8")
    chapter = prepare_chapter(text)
    model = CountingRunnable(lambda inputs: fake_urdu(inputs["text"]))

    events = await collect(translate_chapter(model.runnable, chapter, "ur", cache=MemoryCache(), concurrency=4))
    translated = "".join(e.text for e in events)

    assert [e.index for e in events] == list(range(len(chapter.sections)))
    assert not any(e.flagged for e in events), [e.index for e in events if e.flagged]
    assert "ur:" in translated
    assert heading_levels(translated) == heading_levels(text)
    for block in fenced_blocks(text):
        assert translated.count(block) == text.count(block), block[:80]
    for span in INLINE_CODE.findall(outside_fences(text)):
        assert translated.count(span) >= 1, span
    if text.startswith("---\n"):
        frontmatter = text[: text.index("\n---", 3) + 4]
        assert translated.startswith(frontmatter)
    for line in re.findall(r"(?m)^import .*$", outside_fences(text)):
        assert line in translated
    # what went to the model never held the code
    sent = "\n".join(call["text"] for call in model.calls)
    for block in fenced_blocks(text):
        body = block.split("\n", 1)[1] if "\n" in block else block
        if body.strip() and len(body.strip()) > 20:
            assert body not in sent, block[:80]


async def test_a_model_answering_with_the_books_real_urdu_rebuilds_the_urdu_page():
    """Where the Urdu site's section keeps the same code, links and tags, it is what comes out, byte for byte."""
    english = (CORPUS / "01-ros2" / "02-nodes-topics.md").read_text(encoding="utf-8")
    urdu = (URDU_CORPUS / "01-ros2" / "02-nodes-topics.md").read_text(encoding="utf-8")
    en_sections, ur_sections = prepare_chapter(english).sections, prepare_chapter(urdu).sections
    assert len(en_sections) == len(ur_sections)
    answers: dict[str, str] = {}
    matching: set[int] = set()
    for en, ur in zip(en_sections, ur_sections):
        en_masked, en_kept = protect(en.text.strip())
        ur_masked, ur_kept = protect(ur.text.strip())
        has_prose = re.search(r"[^\W\d_]", PLACEHOLDER.sub("", en_masked))
        if en_kept == ur_kept and has_prose:
            answers[en_masked] = ur_masked
            matching.add(en.index)
    assert len(matching) >= len(en_sections) // 2
    model = CountingRunnable(lambda inputs: answers.get(inputs["text"], inputs["text"]))

    events = await collect(translate_chapter(model.runnable, prepare_chapter(english), "ur-PK", cache=MemoryCache()))

    assert not any(e.flagged for e in events)
    assert [e.index for e in events] == list(range(len(en_sections)))
    for index in matching:
        assert events[index].text.strip() == ur_sections[index].text.strip()
        assert re.search(r"[\u0600-\u06FF]", events[index].text), "Urdu script"
    # Urdu keeps ROS 2, Python and the code in English, like the real site
    joined = "".join(e.text for e in events)
    assert "ROS 2" in joined and "rclpy" in joined


# -- the stream ------------------------------------------------------------------------------------------


async def test_sections_run_concurrently_within_the_bound_and_come_out_in_order():
    chapter = prepare_chapter("".join(f"## Part {n}\n\nText {n}.\n\n" for n in range(12)))
    running = peak = 0

    async def rewrite(text: str) -> SectionResult:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        # later sections finish first, so ordering has to be restored
        await asyncio.sleep(0.001 * random.randint(0, 20))
        running -= 1
        return SectionResult(text.upper())

    events = await collect(stream_sections(chapter.sections, rewrite, MemoryCache(), concurrency=3))

    assert [e.index for e in events] == list(range(12))
    assert [e.text for e in events] == [s.text.upper() for s in chapter.sections]
    assert peak == 3


async def test_a_repeat_is_served_from_the_cache_and_an_edit_redoes_only_its_section():
    text = "".join(f"## Part {n}\n\nText {n}.\n\n" for n in range(5))
    cache = MemoryCache()
    model = CountingRunnable(lambda inputs: fake_urdu(inputs["text"]))

    first = await collect(translate_chapter(model.runnable, prepare_chapter(text), "ur", cache=cache))
    assert len(model.calls) == 5 and not any(e.cached for e in first)

    again = await collect(translate_chapter(model.runnable, prepare_chapter(text), "ur", cache=cache))
    assert len(model.calls) == 5
    assert all(e.cached for e in again) and [e.text for e in again] == [e.text for e in first]

    edited = text.replace("Text 3.", "Text three, rewritten.")
    third = await collect(translate_chapter(model.runnable, prepare_chapter(edited), "ur", cache=cache))
    assert len(model.calls) == 6
    assert [e.cached for e in third] == [True, True, True, False, True]
    assert "ur:three," in third[3].text


async def test_flagged_sections_are_not_cached_so_a_later_request_tries_again():
    chapter = prepare_chapter("## One\n\nFirst `code`.\n\n## Two\n\nSecond.\n")
    cache = MemoryCache()
    broken = CountingRunnable(lambda inputs: inputs["text"].replace("⟦0⟧", ""))  # loses the code in section 0

    events = await collect(translate_chapter(broken.runnable, chapter, "ur", cache=cache))

    assert [e.flagged for e in events] == [True, False]
    assert events[0].text == chapter.sections[0].text
    assert await cache.lookup(chapter.sections) == {1: events[1].text}


async def test_a_failure_mid_chapter_keeps_the_sections_before_it_and_names_the_section():
    chapter = prepare_chapter("".join(f"## Part {n}\n\nText {n}.\n\n" for n in range(8)))
    cache = MemoryCache()

    async def rewrite(text: str) -> SectionResult:
        if "Part 3" in text:
            raise TimeoutError("model timed out")
        await asyncio.sleep(0.01)
        return SectionResult(text.upper())

    delivered = []
    with pytest.raises(SectionFailed) as failure:
        async for event in stream_sections(chapter.sections, rewrite, cache, concurrency=2):
            delivered.append(event.index)

    assert delivered == [0, 1, 2]
    assert failure.value.section == 3 and failure.value.code == "model_error"
    assert failure.value.as_dict()["section"] == 3
    stored = await cache.lookup(chapter.sections)
    assert {0, 1, 2} <= set(stored) and 3 not in stored


async def test_closing_the_stream_early_cancels_the_sections_still_running():
    chapter = prepare_chapter("".join(f"## Part {n}\n\nText {n}.\n\n" for n in range(6)))
    finished: list[int] = []

    async def rewrite(text: str) -> SectionResult:
        n = int(re.search(r"Part (\d)", text).group(1))
        await asyncio.sleep(0 if n == 0 else 0.05)
        finished.append(n)
        return SectionResult(text)

    async with contextlib.aclosing(stream_sections(chapter.sections, rewrite, MemoryCache(), concurrency=2)) as stream:
        async for event in stream:
            assert event.index == 0
            break
    await asyncio.sleep(0.1)

    assert finished == [0], "the reader went away: nothing else is written for them"


async def test_english_needs_no_model_and_other_languages_do():
    chapter = prepare_chapter("## One\n\nText.\n")
    events = await collect(translate_chapter(None, chapter, "en-GB", cache=MemoryCache()))
    assert [e.text for e in events] == ["## One\n\nText.\n"]
    with pytest.raises(ModelRequiredError) as error:
        translate_chapter(None, chapter, "ur", cache=MemoryCache())
    assert "OPENAI_API_KEY" in error.value.message
    with pytest.raises(ModelRequiredError) as error:
        personalize_chapter(None, chapter, {"goals": "walk"}, cache=MemoryCache())
    assert "BOOKTUTOR_PERSONALIZE_MODEL" in error.value.message


async def test_personalize_sends_the_profile_and_keeps_headings(language_model):
    from booktutor.agents.models import personalizer
    from booktutor.graphs.settings import Settings

    settings = Settings()  # reads the scripted server's address from the environment
    language_model.respond_with(lambda body: body["messages"][-1]["content"].replace("Text", "Simply put, text"))
    chapter = prepare_chapter("## One\n\nText with `code`.\n\n## Two\n\nText.\n")

    events = await collect(
        personalize_chapter(
            personalizer(settings.model_endpoint, settings.model_for("personalize")), chapter, {"experience_level": "beginner", "goals": "build a biped"}, cache=MemoryCache()
        )
    )

    assert "".join(e.text for e in events) == "## One\n\nSimply put, text with `code`.\n\n## Two\n\nSimply put, text.\n"
    system = language_model.requests[0]["messages"][0]["content"]
    assert "beginner" in system and "build a biped" in system and "heading" in system
    assert "`code`" not in language_model.requests[0]["messages"][-1]["content"]
