from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.conftest import ASTRONOMY_BOOK, CORPUS
from booktutor.tools.chunking import Chunk, chunk_markdown
from booktutor.tools.docusaurus.anchors import heading_anchor
from booktutor.tools.docusaurus.pages import find_doc_files, read_page
from booktutor.tools.ingest import page_records



_MD = MarkdownIt("commonmark").enable("table").disable("code")


def raw_fenced_blocks(raw: str) -> list[str]:
    """Every closed fenced code block of a raw file, opening and closing lines included."""
    blocks: list[str] = []
    lines = raw.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        opening = re.match(r"^\s*(`{3,}|~{3,})(.*)$", lines[i])
        if not opening or (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            i += 1
            continue
        marker = opening.group(1)
        for j in range(i + 1, len(lines)):
            closing = re.match(r"^\s*(`{3,}|~{3,})\s*$", lines[j])
            if closing and closing.group(1)[0] == marker[0] and len(closing.group(1)) >= len(marker):
                blocks.append("\n".join(lines[i : j + 1]).rstrip())
                i = j + 1
                break
        else:
            break
    return blocks


def only_headings_and_one_big_block(text: str) -> bool:
    """True when the chunk is one code block or table, possibly led in by headings."""
    blocks = [t for t in _MD.parse(text) if t.level == 0 and t.nesting in (0, 1)]
    body = [t for t in blocks if t.type != "heading_open"]
    return len(body) == 1 and body[0].type in ("fence", "table_open")


def is_heading_only(text: str) -> bool:
    blocks = [t for t in _MD.parse(text) if t.level == 0 and t.nesting in (0, 1)]
    return all(t.type == "heading_open" for t in blocks)


def squash(text: str) -> str:
    """Text without whitespace or heading {#id} markers, to compare content across cuts."""
    text = re.sub(r"[ \t]*\{#[^{}\s]+\}[ \t]*$", "", text, flags=re.M)
    return "".join(text.split())


def corpus_bodies() -> list[tuple[Path, str]]:
    return [(f, read_page(CORPUS, f).body) for f in find_doc_files(CORPUS)]


# --------------------------------------------------------------------------- the real book


@pytest.mark.parametrize(("max_chars", "min_chars"), [(1500, 200), (400, 80)])
def test_corpus_code_blocks_survive_byte_identical(max_chars: int, min_chars: int):
    checked = 0
    for file, body in corpus_bodies():
        chunks = chunk_markdown(body, max_chars=max_chars, min_chars=min_chars)
        for block in raw_fenced_blocks(file.read_text(encoding="utf-8")):
            holders = [c for c in chunks if block in c.text]
            assert holders, (file.name, block[:80])
            # the block sits whole in one chunk per occurrence, never straddling a cut
            assert sum(c.text.count(block) for c in chunks) == body.count(block), file.name
            checked += 1
    assert checked > 300


@pytest.mark.parametrize(("max_chars", "min_chars"), [(1500, 200), (400, 80)])
def test_corpus_chunk_sizes_and_coverage(max_chars: int, min_chars: int):
    oversized = []
    for file, body in corpus_bodies():
        chunks = chunk_markdown(body, max_chars=max_chars, min_chars=min_chars)
        assert chunks, file.name
        assert [c.index for c in chunks] == list(range(len(chunks)))
        for chunk in chunks:
            assert chunk.text.strip(), file.name
            assert chunk.text == chunk.text.strip("\n").rstrip()
        oversized += [(file.name, c.text) for c in chunks if len(c.text) > max_chars]
        # nothing lost, nothing repeated, order kept
        assert squash("".join(c.text for c in chunks)) == squash(body), file.name
    # The corpus has code blocks longer than either limit; a chunk may exceed it only to keep one whole.
    assert oversized
    for name, text in oversized:
        assert only_headings_and_one_big_block(text), (name, text[:200])


def test_corpus_headings_never_stranded():
    for file, body in corpus_bodies():
        chunks = chunk_markdown(body)
        for chunk in chunks[:-1]:
            assert not is_heading_only(chunk.text), (file.name, chunk.text)


def test_corpus_trails_and_anchors():
    page = read_page(CORPUS, CORPUS / "01-ros2" / "02-nodes-topics.md")
    chunks = chunk_markdown(page.body)
    title = "Nodes and Topics: The Publish-Subscribe Pattern"
    assert chunks[0].headings == (title,)
    assert chunks[0].anchor == "nodes-and-topics-the-publish-subscribe-pattern"

    python_node = next(c for c in chunks if c.text.startswith("### Python Node"))
    assert python_node.headings == (title, "Nodes", "Python Node")
    assert python_node.anchor == "python-node"
    assert "rclpy.spin(node)" in python_node.text

    assert all(chunk.headings[0] == title for chunk in chunks)
    # a chunk that opens with a heading has it (or a deeper one) in its trail
    opening_with_a_heading = [c for c in chunks if c.text.startswith("#")]
    assert len(opening_with_a_heading) > 1
    for chunk in opening_with_a_heading:
        assert chunk.text.split("\n", 1)[0].lstrip("#").strip() in chunk.headings


def test_corpus_explicit_heading_ids_become_anchors():
    page = read_page(CORPUS, CORPUS / "00-introduction" / "index.md")
    chunks = chunk_markdown(page.body)
    assert chunks[0].anchor == "introduction"
    assert chunks[0].text.startswith("# Introduction to Physical AI & Humanoid Robotics\n")
    assert all("{#" not in c.text for c in chunks)
    assert any(c.anchor == "learning-objectives" for c in chunks)


# --------------------------------------------------------------------------- crafted examples

TRAIL_DOC = """\
# Nodes and Topics

Intro text.

## Publishers

Pub text.

### QoS

QoS text.

##### Minor heading

Still QoS.

## Subscribers {#subs}

Sub text.

# Appendix

## Empty

### Deeper

Deep text.
"""


def test_heading_trails_nest_and_pop():
    chunks = chunk_markdown(TRAIL_DOC)
    assert [(c.headings, c.anchor) for c in chunks] == [
        (("Nodes and Topics",), "nodes-and-topics"),
        (("Nodes and Topics", "Publishers"), "publishers"),
        (("Nodes and Topics", "Publishers", "QoS"), "qos"),
        (("Nodes and Topics", "Subscribers"), "subs"),
        (("Appendix", "Empty", "Deeper"), "deeper"),
    ]
    assert chunks[0].text == "# Nodes and Topics\n\nIntro text."
    # h5 does not start a chunk
    assert chunks[2].text == "### QoS\n\nQoS text.\n\n##### Minor heading\n\nStill QoS."
    # the {#id} marker is gone from the text but drives the anchor
    assert chunks[3].text == "## Subscribers\n\nSub text."
    # headings without a body travel forward with the next section
    assert chunks[4].text == "# Appendix\n\n## Empty\n\n### Deeper\n\nDeep text."
    assert [c.index for c in chunks] == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- tabs

PLANETS = """\
import Tabs from '@theme/Tabs';
import TabItem from '@theme/TabItem';

# The Planets

Five planets are easy to see.

## Planet by planet

<Tabs>
<TabItem value="mars" label="Mars" default>

Mars is small even at its best: a white polar cap at 150× on a steady night.

</TabItem>
<TabItem value="saturn" label="Saturn">

Any telescope at 50× or more shows the rings.

</TabItem>
</Tabs>

:::tip Wait for the planet to climb
Observe a planet when it is highest.
:::

## Mars

Mars again, under a heading of its own.
"""


def test_chunks_under_a_tab_carry_its_label(tmp_path: Path):
    (tmp_path / "planets.mdx").write_text(PLANETS, encoding="utf-8")
    page = read_page(tmp_path, tmp_path / "planets.mdx", base_url="/docs")
    records = page_records(page, file_hash="x", module="")
    assert [(r.text, r.headings, r.url) for r in records[1:]] == [
        (
            "## Planet by planet\n\n### Mars\n\nMars is small even at its best: a white polar cap at 150× on a steady night.",
            ("The Planets", "Planet by planet", "Mars"),
            "/docs/planets#planet-by-planet",  # a tab has no anchor of its own: its section's
        ),
        (
            "### Saturn\n\nAny telescope at 50× or more shows the rings.",
            ("The Planets", "Planet by planet", "Saturn"),
            "/docs/planets#planet-by-planet",
        ),
        (
            "## Planet by planet\n\nTip: Wait for the planet to climb\nObserve a planet when it is highest.",
            ("The Planets", "Planet by planet"),  # after the tabs, not under the last one
            "/docs/planets#planet-by-planet",
        ),
        (
            "## Mars\n\nMars again, under a heading of its own.",
            ("The Planets", "Mars"),
            "/docs/planets#mars",  # the tab named Mars took no id from it
        ),
    ]
    assert records[2].embedding_text().startswith("The Planets › Planet by planet › Saturn\n\n")


def test_every_tab_of_the_astronomy_book_names_its_chunks():
    book = ASTRONOMY_BOOK
    tabbed = [f for f in find_doc_files(book) if "<TabItem" in f.read_text(encoding="utf-8")]
    assert len(tabbed) == 3
    for file in tabbed:
        labels = re.findall(r'<TabItem value="[^"]*" label="([^"]*)"', file.read_text(encoding="utf-8"))
        chunks = chunk_markdown(read_page(book, file).body)
        for label in labels:
            under = [c for c in chunks if c.headings[-1] == label]
            assert len(under) == 1 and f"### {label}\n\n" in under[0].text, (file.name, label)
            assert under[0].anchor == heading_anchor(under[0].headings[-2])  # the section the tabs are in
    eyepieces = chunk_markdown(read_page(book, book / "02-telescopes" / "03-eyepieces-and-magnification.mdx").body)
    bertha = next(c for c in eyepieces if c.headings[-1] == "Big Bertha (200 mm, 1200 mm)")
    assert "| 25 mm | 48× | 4.2 mm | 1.1° |" in bertha.text and "26×" not in bertha.text


def test_text_before_first_heading_has_empty_trail():
    chunks = chunk_markdown("Preface words.\n\n# Title\n\nBody.\n")
    assert chunks[0] == Chunk("Preface words.", (), "", 0)
    assert chunks[1] == Chunk("# Title\n\nBody.", ("Title",), "title", 1)


def test_sibling_heading_only_section_merges_forward():
    chunks = chunk_markdown("## Chapter Summary\n\n## Key Concepts\n\n- one\n- two\n")
    assert len(chunks) == 1
    assert chunks[0].text == "## Chapter Summary\n\n## Key Concepts\n\n- one\n- two"
    assert chunks[0].headings == ("Key Concepts",)


def test_trailing_heading_only_section_is_still_emitted():
    chunks = chunk_markdown("# A\n\ntext\n\n## The End\n")
    assert [c.text for c in chunks] == ["# A\n\ntext", "## The End"]
    assert chunks[1].headings == ("A", "The End")


def test_duplicate_headings_get_docusaurus_style_anchors():
    chunks = chunk_markdown("## Intro\n\nx\n\n## Intro\n\ny\n\n## Intro\n\nz\n")
    assert [c.anchor for c in chunks] == ["intro", "intro-1", "intro-2"]
    assert heading_anchor("Intro") == "intro"


def test_headings_inside_code_fences_are_not_headings():
    doc = "# Setup\n\n```bash\n# Install\n\napt install ros\n\n## not a heading\n```\n"
    chunks = chunk_markdown(doc)
    assert len(chunks) == 1
    assert chunks[0].headings == ("Setup",)
    assert "```bash\n# Install\n\napt install ros\n\n## not a heading\n```" in chunks[0].text


def paragraph(n: int, word: str) -> str:
    words = (f"{word}{i}" for i in range(10_000))
    text = ""
    for w in words:
        if len(text) + len(w) + 1 > n:
            break
        text += w + " "
    return text.strip() + "."


def test_long_section_splits_at_block_boundaries():
    paras = [paragraph(600, w) for w in ("alpha", "beta", "gamma", "delta", "eps")]
    doc = "## Long\n\n" + "\n\n".join(paras) + "\n"
    chunks = chunk_markdown(doc, max_chars=1500, min_chars=200)
    assert len(chunks) > 1
    assert all(len(c.text) <= 1500 for c in chunks)
    assert all(c.headings == ("Long",) and c.anchor == "long" for c in chunks)
    assert chunks[0].text.startswith("## Long\n\n")
    # cuts fall between paragraphs, so each paragraph is whole in exactly one chunk
    for p in paras:
        assert sum(p in c.text for c in chunks) == 1


def test_tiny_trailing_piece_is_not_left_alone():
    p1, p2, p3 = paragraph(900, "a"), paragraph(500, "b"), paragraph(150, "c")
    doc = f"## S\n\n{p1}\n\n{p2}\n\n{p3}\n"
    chunks = chunk_markdown(doc, max_chars=1500, min_chars=200)
    assert len(chunks) == 2
    assert all(200 <= len(c.text) <= 1500 for c in chunks)
    assert chunks[-1].text.endswith(p3)


def test_long_paragraph_and_long_list_are_split():
    sentences = " ".join(f"Sentence number {i} is here." for i in range(200))
    items = "\n".join(f"- item {i} " + "word " * 20 for i in range(40))
    for doc in (f"# T\n\n{sentences}\n", f"# L\n\n{items}\n"):
        chunks = chunk_markdown(doc, max_chars=400, min_chars=50)
        assert len(chunks) > 3
        assert all(len(c.text) <= 400 for c in chunks)
        assert squash("".join(c.text for c in chunks)) == squash(doc)
    # list chunks break between items, not inside them
    for chunk in chunk_markdown(f"# L\n\n{items}\n", max_chars=400, min_chars=50)[1:]:
        assert chunk.text.startswith("- item ")


def test_oversized_code_block_is_kept_whole_as_its_own_chunk():
    code = "```python\n" + "\n".join(f"value_{i} = {i}  # a line of code" for i in range(60)) + "\n\n\n```"
    doc = f"## Big\n\nLead paragraph before the code.\n\n{code}\n\nTail.\n"
    chunks = chunk_markdown(doc, max_chars=500, min_chars=50)
    holders = [c for c in chunks if "```python" in c.text]
    assert len(holders) == 1
    assert holders[0].text == code
    assert [c.text for c in chunks] == [
        "## Big\n\nLead paragraph before the code.",
        code,
        "Tail.",
    ]
    assert all(c.headings == ("Big",) for c in chunks)


def test_heading_stays_with_an_oversized_code_block():
    code = "```\n" + "x = 1\n" * 200 + "```"
    chunks = chunk_markdown(f"### Layered\n\n{code}\n\n## Next\n\nMore text.\n", max_chars=300)
    assert chunks[0].text == f"### Layered\n\n{code}"
    assert chunks[0].headings == ("Layered",)
    assert chunks[1].text == "## Next\n\nMore text."


def test_oversized_table_is_kept_whole():
    table = "| a | b |\n|---|---|\n" + "\n".join(f"| {i} | {'x' * 30} |" for i in range(60))
    doc = f"# Tab\n\nLead paragraph.\n\n{table}\n\nAfter text.\n"
    chunks = chunk_markdown(doc, max_chars=500, min_chars=100)
    holders = [c for c in chunks if "| 0 |" in c.text]
    assert len(holders) == 1 and table in holders[0].text
    assert holders[0].text == table
    assert all(len(c.text) <= 500 for c in chunks if c is not holders[0])


def test_code_block_with_blank_lines_is_never_cut():
    code = "```\n" + "\n\n".join(f"line {i}" for i in range(30)) + "\n```"
    doc = "# C\n\n" + paragraph(250, "p") + f"\n\n{code}\n\n" + paragraph(250, "q") + "\n"
    for max_chars in (100, 200, 300, 1000):
        chunks = chunk_markdown(doc, max_chars=max_chars, min_chars=20)
        assert sum(code in c.text for c in chunks) == 1, max_chars


def test_unclosed_code_fence_does_not_crash():
    doc = "# T\n\nText.\n\n```python\nx = 1\n\n## not a heading\n"
    chunks = chunk_markdown(doc)
    assert [c.headings for c in chunks] == [("T",)]
    assert chunks[0].text == "# T\n\nText.\n\n```python\nx = 1\n\n## not a heading"
    # and with a tiny budget it is still one indivisible block
    small = chunk_markdown("# T\n\n```\n" + "y\n" * 100, max_chars=50, min_chars=10)
    assert len(small) == 1


def test_empty_and_whitespace_bodies_give_no_chunks():
    assert chunk_markdown("") == []
    assert chunk_markdown("  \n\n\t\n") == []


def test_explicit_ids_removed_from_setext_and_closed_atx_headings():
    chunks = chunk_markdown("Title {#top}\n=====\n\ntext\n\n## Closed {#cl} ##\n\nmore\n")
    assert chunks[0].text == "Title\n=====\n\ntext"
    assert chunks[0].anchor == "top"
    assert chunks[1].text == "## Closed ##\n\nmore"
    assert chunks[1].anchor == "cl"


def test_chunking_is_deterministic():
    doc = TRAIL_DOC + "\n" + "\n\n".join(paragraph(400, w) for w in ("u", "v", "w", "x"))
    assert chunk_markdown(doc, max_chars=600) == chunk_markdown(doc, max_chars=600)
