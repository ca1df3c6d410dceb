from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.conftest import CORPUS
from booktutor.tools.docusaurus.anchors import heading_anchor
from booktutor.tools.docusaurus.categories import Category, category_items, category_page, module_label, read_categories
from booktutor.tools.docusaurus.pages import Page, PageError, find_doc_files, read_page


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def url_of(root: Path, rel: str, text: str = "# T\n", **kwargs) -> str:
    return read_page(root, write(root, rel, text), **kwargs).url


def outside_fences(body: str) -> list[str]:
    """Body lines outside fenced code; each fenced block becomes one "[code]" line."""
    kept: list[str] = []
    fence: str | None = None
    for line in body.split("\n"):
        marker = re.match(r"^\s*(`{3,}|~{3,})", line)
        if fence is None and marker:
            fence = marker.group(1)
            kept.append("[code]")
            continue
        if fence is not None:
            closes = marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence)
            if closes and not line.strip().strip(fence[0]):
                fence = None
            continue
        kept.append(line)
    return kept


def corpus_pages() -> list[Page]:
    return [read_page(CORPUS, f) for f in find_doc_files(CORPUS)]


# --------------------------------------------------------------------------- the real book


def test_every_corpus_page_reads_with_title_url_and_body():
    files = find_doc_files(CORPUS)
    assert len(files) >= 40
    paths = set()
    for page in corpus_pages():
        assert page.title.strip(), page.path
        assert page.url.startswith("/docs"), page.path
        assert page.url == "/docs" or not page.url.endswith("/"), page.path
        assert page.body.strip(), page.path
        assert not page.body.startswith("---\n"), page.path  # frontmatter removed
        paths.add(page.path)
    assert "01-ros2/02-nodes-topics.md" in paths
    assert all(not p.startswith("/") and "\\" not in p for p in paths)


def test_find_doc_files_skips_category_files_and_is_sorted():
    files = find_doc_files(CORPUS)
    rels = [f.relative_to(CORPUS).as_posix() for f in files]
    assert rels == sorted(rels, key=lambda r: r.split("/"))
    assert all(r.endswith((".md", ".mdx")) for r in rels)
    assert not any("_category_" in r for r in rels)


def test_corpus_bodies_have_no_mdx_left_outside_code():
    for page in corpus_pages():
        for line in outside_fences(page.body):
            assert not re.match(r"^(import|export)\s", line), (page.path, line)
            assert "<ReadingTime" not in line, (page.path, line)
            assert "<ViewToggle" not in line and "<PersonalizeButton" not in line, (page.path, line)
            assert "<!--" not in line and "{/*" not in line, (page.path, line)
            assert not line.lstrip().startswith(":::"), (page.path, line)
            # tags named in inline code are kept; real ones are gone
            without_code = re.sub(r"`[^`]*`", "", line)
            assert not re.search(r"</?(div|h[1-6]|details|summary|p)\b", without_code), (
                page.path,
                line,
            )


def test_corpus_html_headings_become_markdown_headings():
    page = read_page(CORPUS, CORPUS / "01-ros2" / "02-nodes-topics.md")
    lines = page.body.split("\n")
    assert lines[0] == "# Nodes and Topics: The Publish-Subscribe Pattern"
    assert "## Introduction" in lines
    assert "### Python Node" in lines
    assert "Nodes and topics form ROS 2's communication foundation." in page.body

    # headings whose text sits on its own lines between <h2> and </h2>
    vla = read_page(CORPUS, CORPUS / "04-vla" / "index.md")
    assert "## Learning Objectives" in vla.body.split("\n")

    # "# <h1 ...>Title</h1>" must not become "# # Title"
    home = read_page(CORPUS, CORPUS / "index.md")
    assert home.body.split("\n")[0] == "# Physical AI & Humanoid Robotics Textbook"
    assert "# #" not in home.body

    # an id attribute on the HTML heading is kept as an explicit heading id
    intro = read_page(CORPUS, CORPUS / "00-introduction" / "index.md")
    assert "# Introduction to Physical AI & Humanoid Robotics {#introduction}" in intro.body


def test_corpus_urls_titles_and_modules():
    nodes = read_page(CORPUS, CORPUS / "01-ros2" / "02-nodes-topics.md")
    assert nodes.url == "/docs/ros2/01-ros2-nodes-topics"
    assert nodes.module == "01-ros2"
    assert nodes.title == "Nodes and Topics: The Publish-Subscribe Pattern"
    assert nodes.path == "01-ros2/02-nodes-topics.md"

    assert read_page(CORPUS, CORPUS / "01-ros2" / "index.md").url == "/docs/ros2"
    assert read_page(CORPUS, CORPUS / "index.md").url == "/docs"
    gazebo = read_page(CORPUS, CORPUS / "02-simulation" / "01-gazebo-intro.md")
    assert gazebo.url == "/docs/simulation/gazebo-intro"

    root_doc = read_page(CORPUS, CORPUS / "personalization.md")
    assert root_doc.module == ""
    assert root_doc.url == "/docs/personalization"
    assert root_doc.title == "Chapter Personalization Feature"  # no frontmatter: first heading


def test_corpus_code_blocks_keep_mdx_lookalikes():
    # integration-pattern.md shows frontmatter and imports inside a ```md block; those are
    # example code, not the page's own frontmatter or ESM.
    page = read_page(CORPUS, CORPUS / "integration-pattern.md")
    assert page.title == "Translation Integration Pattern Documentation"
    assert "title: 'Page Title'" in page.body
    assert "import ReadingTime from '@site/src/components/ReadingTime';" in page.body
    assert '<TranslatedContent chapterId="chapter-id">' in page.body
    # inline code mentioning tags survives
    assert "Use `<TranslatedContent chapterId=\"unique-id\">` to wrap content" in page.body


def test_corpus_admonitions_become_text():
    page = read_page(CORPUS, CORPUS / "00-introduction" / "01-welcome.md")
    lines = page.body.split("\n")
    assert "Tip: Exercise 0.1.1: Physical AI Concept Mapping" in lines
    assert "Caution: Common Problems" in lines
    assert "**Objective**: Understand Physical AI concepts and applications" in lines


def test_corpus_content_hash_is_sha256_of_raw_bytes():
    file = CORPUS / "01-ros2" / "02-nodes-topics.md"
    page = read_page(CORPUS, file)
    assert page.content_hash == hashlib.sha256(file.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- MDX cleaning

MDX_SAMPLE = """\
---
title: Sample
---

import Tabs from '@theme/Tabs';
import TabItem from "@theme/TabItem";
import {
  Alpha,
  Beta,
} from '@site/src/components/Greek';
import '@site/src/css/extra.css';
export const meta = {
  level: 2,
};

<ReadingTime minutes={6} />

<h2 className="second-heading">Introduction</h2>
<div className="underline-class"></div>

Text with `<Inline code="kept" />` and a <b>bold</b> word.
{/* an MDX comment */}
<!-- an HTML
comment -->
<Tabs>
<TabItem value="py" label="Python">Python text</TabItem>
</Tabs>
<div style={{textAlign: 'center', padding: '20px'}}>Centered</div>



After many blank lines.

:::tip Remember this
Tip body.
:::

:::note
Note body.
:::

:::warning[Bracket title]
Careful.
:::

```jsx
import Foo from '@site/src/Foo';
export const x = 1;
<Foo bar={1} />
{/* kept */}
<!-- kept -->
:::tip not an admonition


```

~~~mdx
<h2 className="second-heading">Not converted</h2>
~~~
"""


def test_mdx_cleaning(tmp_path: Path):
    page = read_page(tmp_path, write(tmp_path, "sample.mdx", MDX_SAMPLE))
    body = page.body
    lines = body.split("\n")

    assert "import" not in "\n".join(outside_fences(body))
    assert "export" not in "\n".join(outside_fences(body))
    assert "Alpha" not in body and "level: 2" not in body
    assert "ReadingTime" not in body
    assert "## Introduction" in lines
    assert "underline-class" not in body
    assert "Text with `<Inline code=\"kept\" />` and a bold word." in lines
    assert "an MDX comment" not in body and "an HTML" not in body
    assert "Python text" in lines
    assert "TabItem" not in "\n".join(outside_fences(body))
    assert "Centered" in lines
    assert "\n\n\n" not in "\n".join(outside_fences(body))
    assert "Centered\n\nAfter many blank lines." in body
    assert "Tip: Remember this" in lines
    assert "Note:" in lines
    assert "Warning: Bracket title" in lines
    assert "Tip body." in lines and "Careful." in lines
    assert ":::" not in "\n".join(outside_fences(body))

    fenced = (
        "```jsx\n"
        "import Foo from '@site/src/Foo';\n"
        "export const x = 1;\n"
        "<Foo bar={1} />\n"
        "{/* kept */}\n"
        "<!-- kept -->\n"
        ":::tip not an admonition\n"
        "\n"
        "\n"
        "```\n"
    )
    assert fenced in body  # byte for byte, blank lines inside the fence included
    assert '~~~mdx\n<h2 className="second-heading">Not converted</h2>\n~~~' in body
    assert body.startswith("## Introduction\n")
    assert body.endswith("~~~\n")


def test_plain_markdown_passes_through_unchanged(tmp_path: Path):
    text = (
        "# Title\n\n"
        "Some *emphasis*, a [link](https://example.com), an autolink <https://example.com>,\n"
        "a comparison 3 < 4 and `inline <code>`.\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "- item\n  - nested\n\n"
        "    indented text\n"
    )
    page = read_page(tmp_path, write(tmp_path, "plain.md", text))
    assert page.body == text


def test_multiline_html_heading_and_heading_with_inline_tags(tmp_path: Path):
    text = (
        '<h2 className="second-heading">\n Course Overview\n</h2>\n'
        "<h3>Using <code>rclpy</code> nodes</h3>\n"
        "Inline <h4>not a heading</h4> here.\n"
    )
    body = read_page(tmp_path, write(tmp_path, "h.md", text)).body
    lines = body.split("\n")
    assert lines[0] == "## Course Overview"
    assert "### Using rclpy nodes" in lines
    assert "Inline not a heading here." in lines


# --------------------------------------------------------------------------- tabs

TABBED_PAGE = """\
import Tabs from '@theme/Tabs';
import TabItem from '@theme/TabItem';

# Eyepieces

## The club's eyepiece case

Here is what they give in the two club reflectors:

<Tabs groupId="scope">
  <TabItem value="junior" label="Orion Junior (130 mm, 650 mm)" default>

  | Eyepiece | Magnification |
  | --- | --- |
  | 25 mm | 26× |

  </TabItem>
  <TabItem label='Big Bertha (200 mm, 1200 mm)' value='bertha'>

  | Eyepiece | Magnification |
  | --- | --- |
  | 25 mm | 48× |

  </TabItem>
</Tabs>

The 6 mm eyepiece with the Barlow in Big Bertha would give 400×.

## Buying eyepieces

Text.
"""


def test_tab_labels_become_headings_under_their_section(tmp_path: Path):
    body = read_page(tmp_path, write(tmp_path, "eyepieces.mdx", TABBED_PAGE)).body
    assert body == (
        "# Eyepieces\n\n"
        "## The club's eyepiece case\n\n"
        "Here is what they give in the two club reflectors:\n\n"
        "  ### Orion Junior (130 mm, 650 mm) {#the-clubs-eyepiece-case}\n\n"
        "  | Eyepiece | Magnification |\n  | --- | --- |\n  | 25 mm | 26× |\n\n"
        "  ### Big Bertha (200 mm, 1200 mm) {#the-clubs-eyepiece-case}\n\n"
        "  | Eyepiece | Magnification |\n  | --- | --- |\n  | 25 mm | 48× |\n\n"
        # the text after the tabs is the section's again, not the last tab's
        "## The club's eyepiece case {#the-clubs-eyepiece-case}\n\n"
        "The 6 mm eyepiece with the Barlow in Big Bertha would give 400×.\n\n"
        "## Buying eyepieces\n\n"
        "Text.\n"
    )


def test_tab_labels_in_every_form(tmp_path: Path):
    text = """\
## Languages

<Tabs>
<TabItem value="py" label={'Python'}>
Python text.
</TabItem>
<TabItem
  label={"C++"}
  value="cpp">

C++ text.

</TabItem>
<TabItem value="rust">
Rust text.
</TabItem>
<TabItem value="js" label={`JavaScript`} attributes={{className: 'red'}}>
<details>
<summary>Why JavaScript</summary>

<Highlight color="#25c2a0">Browsers</Highlight> run it.

</details>
</TabItem>
<TabItem value="shell" label={translate({message: 'Shell'})}>
Shell text.
</TabItem>
</Tabs>

<Tabs values={[{label: 'Apple', value: 'apple'}, {label: "Orange", value: "orange"}]}>
<TabItem value="apple">An apple.</TabItem>
<TabItem value="orange">An orange.</TabItem>
</Tabs>
"""
    lines = read_page(tmp_path, write(tmp_path, "forms.mdx", text)).body.split("\n")
    assert [line for line in lines if line.startswith("#")] == [
        "## Languages",
        "### Python {#languages}",  # a JSX string expression
        "### C++ {#languages}",  # attributes over several lines, label first
        "### rust {#languages}",  # no label: the value, as Docusaurus shows it
        "### JavaScript {#languages}",
        "### shell {#languages}",  # a label computed at build time: the value
        "### Apple {#languages}",  # labels from the Tabs' values prop
        "### Orange {#languages}",
    ]
    for kept in ("Python text.", "C++ text.", "Rust text.", "Why JavaScript", "Browsers run it.", "An apple."):
        assert kept in lines
    assert lines.index("### JavaScript {#languages}") < lines.index("Why JavaScript") < lines.index("### shell {#languages}")


def test_nested_tabs_and_tabs_without_a_name(tmp_path: Path):
    text = """\
# Install

<Tabs>
<TabItem value="linux" label="Linux">

<Tabs>
<TabItem value="apt" label="apt">Use apt.</TabItem>
<TabItem value="dnf" label="dnf">Use dnf.</TabItem>
</Tabs>

Then log in again.

#### Checking it worked

Run the command.

</TabItem>
<TabItem>
A tab Docusaurus would refuse, for want of a value.
</TabItem>
</Tabs>
"""
    body = read_page(tmp_path, write(tmp_path, "install.mdx", text)).body
    assert body == (
        "# Install\n\n"
        "## Linux {#install}\n\n"
        "### apt {#install}\n\n"
        "Use apt.\n\n"
        "### dnf {#install}\n\n"
        "Use dnf.\n\n"
        "## Linux {#install}\n\n"  # after the inner tabs, back in the Linux tab
        "Then log in again.\n\n"
        "#### Checking it worked\n\n"
        "Run the command.\n\n"
        "# Install {#install}\n\n"  # a tab without a name is under its section
        "A tab Docusaurus would refuse, for want of a value.\n"
    )


def test_tabs_above_every_heading_get_bold_labels(tmp_path: Path):
    text = (
        "<Tabs>\n<TabItem value='a' label='First'>\n\nOne.\n\n</TabItem>\n"
        "<TabItem value='b' label='Second'>\n\nTwo.\n\n</TabItem>\n</Tabs>\n\n## After\n\nThree.\n"
    )
    body = read_page(tmp_path, write(tmp_path, "top.mdx", text)).body
    assert body == "**First**\n\nOne.\n\n**Second**\n\nTwo.\n\n## After\n\nThree.\n"


def test_mdx_without_tabs_reads_as_before(tmp_path: Path):
    text = """\
import Details from '@theme/Details';

## Setup

<details>
<summary>Why a virtual environment?</summary>

It keeps the packages apart.

</details>

<Highlight color="#25c2a0">Green</Highlight> text and a `<TabItem label="x">` in code.

```mdx
<Tabs>
<TabItem value="a" label="A">kept as code</TabItem>
</Tabs>
```
"""
    body = read_page(tmp_path, write(tmp_path, "setup.mdx", text)).body
    assert body == (
        "## Setup\n\n"
        "Why a virtual environment?\n\n"
        "It keeps the packages apart.\n\n"
        'Green text and a `<TabItem label="x">` in code.\n\n'
        '```mdx\n<Tabs>\n<TabItem value="a" label="A">kept as code</TabItem>\n</Tabs>\n```\n'
    )


def test_crlf_and_bom_are_normalised(tmp_path: Path):
    raw = "\ufeff---\r\ntitle: Windows\r\n---\r\n\r\nLine one\r\nLine two\r\n".encode()
    page = read_page(tmp_path, write(tmp_path, "win.md", raw))
    assert page.title == "Windows"
    assert page.body == "Line one\nLine two\n"
    assert page.content_hash == hashlib.sha256(raw).hexdigest()


# --------------------------------------------------------------------------- titles


def test_title_fallbacks(tmp_path: Path):
    assert read_page(tmp_path, write(tmp_path, "a.md", "---\ntitle: From FM\n---\n# H\n")).title == "From FM"
    assert read_page(tmp_path, write(tmp_path, "b.md", "Intro\n\n## First **Bold** `code`\n")).title == (
        "First Bold code"
    )
    assert read_page(tmp_path, write(tmp_path, "03-getting_started.md", "No heading.\n")).title == (
        "Getting started"
    )
    assert read_page(tmp_path, write(tmp_path, "02-setup/index.md", "Text.\n")).title == "Setup"
    # a heading inside a code block is not the page title
    code_only = "```md\n# Not a title\n```\n"
    assert read_page(tmp_path, write(tmp_path, "10-code-page.md", code_only)).title == "Code page"


# --------------------------------------------------------------------------- URLs


def test_url_number_prefixes_are_stripped_from_every_segment(tmp_path: Path):
    assert url_of(tmp_path, "01-intro/02_basics/3. first-steps.md") == "/docs/intro/basics/first-steps"
    assert url_of(tmp_path, "10-advanced/topic.mdx") == "/docs/advanced/topic"
    # date- and version-like prefixes are not number prefixes
    assert url_of(tmp_path, "2021-01-31-release.md") == "/docs/2021-01-31-release"
    assert url_of(tmp_path, "01-2021-notes.md") == "/docs/01-2021-notes"


def test_url_frontmatter_id_replaces_file_segment_unstripped(tmp_path: Path):
    text = '---\nid: "01-custom-id"\n---\n# T\n'
    assert url_of(tmp_path, "05-mod/03-file.md", text) == "/docs/mod/01-custom-id"
    assert url_of(tmp_path, "03-top.md", text) == "/docs/01-custom-id"


def test_url_category_indexes_map_to_the_folder(tmp_path: Path):
    assert url_of(tmp_path, "01-guide/index.md") == "/docs/guide"
    assert url_of(tmp_path, "02-more/README.md") == "/docs/more"
    assert url_of(tmp_path, "03-x/Index.md") == "/docs/x"
    assert url_of(tmp_path, "04-setup/04-setup.md") == "/docs/setup"
    assert url_of(tmp_path, "index.md") == "/docs"
    # an id does not stop index.md from being the folder page
    assert url_of(tmp_path, "05-y/index.md", "---\nid: other\n---\n") == "/docs/y"


def test_url_slug_absolute_and_relative(tmp_path: Path):
    assert url_of(tmp_path, "01-a/02-b.md", "---\nslug: /custom/place\n---\n") == "/docs/custom/place"
    assert url_of(tmp_path, "01-a/03-c.md", "---\nslug: renamed\n---\n") == "/docs/a/renamed"
    assert url_of(tmp_path, "01-a/04-d.md", "---\nslug: ../up\n---\n") == "/docs/up"
    assert url_of(tmp_path, "01-a/index.md", "---\nslug: /\n---\n") == "/docs"
    # a relative slug also wins over the index convention
    assert url_of(tmp_path, "02-z/index.md", "---\nslug: intro\n---\n") == "/docs/z/intro"
    # the slug beats the id
    assert url_of(tmp_path, "01-a/05-e.md", "---\nid: ident\nslug: /s\n---\n") == "/docs/s"


def test_url_base_url_forms(tmp_path: Path):
    assert url_of(tmp_path, "01-a/02-b.md", base_url="/") == "/a/b"
    assert url_of(tmp_path, "index.md", base_url="/") == "/"
    assert url_of(tmp_path, "01-a/02-b.md", base_url="/book/") == "/book/a/b"
    assert url_of(tmp_path, "01-a/02-b.md", base_url="book") == "/book/a/b"


def test_page_path_and_module(tmp_path: Path):
    page = read_page(tmp_path, write(tmp_path, "01-ros2/deep/02-x.md", "# X\n"))
    assert page.path == "01-ros2/deep/02-x.md"
    assert page.module == "01-ros2"
    assert read_page(tmp_path, write(tmp_path, "top.md", "# X\n")).module == ""


# --------------------------------------------------------------------------- errors


def test_bad_frontmatter_raises(tmp_path: Path):
    with pytest.raises(PageError) as err:
        read_page(tmp_path, write(tmp_path, "bad.md", "---\ntitle: [unclosed\n---\n# T\n"))
    assert err.value.reason.startswith("bad frontmatter: ")
    assert str(err.value) == err.value.reason

    with pytest.raises(PageError, match="bad frontmatter: .*mapping"):
        read_page(tmp_path, write(tmp_path, "list.md", "---\n- a\n- b\n---\n# T\n"))
    with pytest.raises(PageError, match="bad frontmatter: .*closing"):
        read_page(tmp_path, write(tmp_path, "open.md", "---\ntitle: x\n# T\n"))


def test_empty_frontmatter_is_fine(tmp_path: Path):
    page = read_page(tmp_path, write(tmp_path, "empty-fm.md", "---\n---\n# Heading\n"))
    assert page.title == "Heading"
    assert page.body == "# Heading\n"


def test_binary_file_raises(tmp_path: Path):
    with pytest.raises(PageError) as err:
        read_page(tmp_path, write(tmp_path, "bin.md", b"# T\n\x00\x01\x02"))
    assert "binary" in err.value.reason


def test_non_utf8_file_raises(tmp_path: Path):
    with pytest.raises(PageError) as err:
        read_page(tmp_path, write(tmp_path, "latin.md", "# Caf\u00e9\n".encode("latin-1")))
    assert err.value.reason == "not UTF-8 text"


def test_too_large_file_raises_with_sizes(tmp_path: Path):
    file = write(tmp_path, "big.md", "# Big\n" + "x" * 3_000_000)
    with pytest.raises(PageError) as err:
        read_page(tmp_path, file)
    assert err.value.reason == "file too large (3 MB > 2 MB)"
    with pytest.raises(PageError, match=r"file too large \(\d+ bytes > 10 bytes\)"):
        read_page(tmp_path, write(tmp_path, "small.md", "# a bit more than ten\n"), max_bytes=10)
    # the limit is inclusive
    exact = write(tmp_path, "exact.md", "# 1234567\n")
    assert read_page(tmp_path, exact, max_bytes=10).title == "1234567"


def test_file_outside_root_raises(tmp_path: Path):
    other = write(tmp_path, "elsewhere/x.md", "# X\n")
    with pytest.raises(PageError):
        read_page(tmp_path / "docs", other)


# --------------------------------------------------------------------------- files


def test_find_doc_files_skips_hidden_partials_and_node_modules(tmp_path: Path):
    for rel in [
        "b.md",
        "a.mdx",
        "01-sub/index.md",
        "01-sub/_partial.mdx",
        "_drafts/x.md",
        ".hidden/y.md",
        ".secret.md",
        "node_modules/pkg/readme.md",
        "notes.txt",
        "01-sub/deeper/z.md",
    ]:
        write(tmp_path, rel, "# x\n")
    found = [p.relative_to(tmp_path).as_posix() for p in find_doc_files(tmp_path)]
    assert found == ["01-sub/deeper/z.md", "01-sub/index.md", "a.mdx", "b.md"]


# --------------------------------------------------------------------------- anchors


@pytest.mark.parametrize(
    ("text", "anchor"),
    [
        ("Introduction", "introduction"),
        ("Nodes and Topics: The Publish-Subscribe Pattern", "nodes-and-topics-the-publish-subscribe-pattern"),
        ("C++ Node", "c-node"),
        ("Using `rclpy.init()` **fast**", "using-rclpyinit-fast"),
        ("snake_case stays", "snake_case-stays"),
        ("Exercise 3.2.1: Install (⭐, ~35 min)", "exercise-321-install--35-min"),
        ("A [linked](https://x.org) word", "a-linked-word"),
        ("Custom {#my-id}", "my-id"),
        ("Ünïcödé Grüße", "ünïcödé-grüße"),
        ("Q&amp;A", "qa"),
    ],
)
def test_heading_anchor(text: str, anchor: str):
    assert heading_anchor(text) == anchor


# --------------------------------------------------------------------------- categories

# Generated index URLs of the real book, worked out by hand with github-slugger's rules
# (lowercase, drop ":" and other punctuation, each space becomes "-", so " - " -> "---").
CORPUS_CATEGORIES = {
    "00-introduction": (
        "00 - Introduction",
        "Getting started with Physical AI and Humanoid Robotics",
        "/docs/category/00---introduction",
    ),
    "01-ros2": (
        "01 - ROS 2: The Robotic Nervous System",
        "Core ROS 2 concepts and architecture for humanoid robotics",
        "/docs/category/01---ros-2-the-robotic-nervous-system",
    ),
    "02-simulation": (
        "02 - Simulation: Virtual Worlds for Real Robots",
        "Gazebo, SDF, and simulation environments for humanoid robots",
        "/docs/category/02---simulation-virtual-worlds-for-real-robots",
    ),
    "03-isaac": (
        "03 - NVIDIA Isaac: AI-Powered Robotics",
        "Isaac Sim, perception, and navigation for humanoid robots",
        "/docs/category/03---nvidia-isaac-ai-powered-robotics",
    ),
    "04-vla": (
        "04 - VLA: Voice-to-Action Systems",
        "Voice interfaces and LLM integration for humanoid robots",
        "/docs/category/04---vla-voice-to-action-systems",
    ),
    "05-capstone": (
        "05 - Capstone: Integration Project",
        "Bringing it all together - Complete humanoid robot integration",
        "/docs/category/05---capstone-integration-project",
    ),
}


def category_json(label: str | None = None, **link: str) -> str:
    """A ``_category_.json`` text with a generated-index link carrying ``link`` fields."""
    data: dict[str, object] = {"link": {"type": "generated-index", **link}}
    if label is not None:
        data["label"] = label
    return json.dumps(data)


def test_corpus_categories_labels_descriptions_and_urls():
    scan = read_categories(CORPUS)
    assert scan.skipped == {}
    assert set(scan.categories) == {"", *CORPUS_CATEGORIES}
    for folder, (label, description, url) in CORPUS_CATEGORIES.items():
        category = scan.categories[folder]
        assert (category.folder, category.label, category.description, category.url) == (
            folder,
            label,
            description,
            url,
        )
        assert category.title == label  # no link.title in the book
        assert category.file == f"{folder}/_category_.json"
        raw = (CORPUS / folder / "_category_.json").read_bytes()
        assert category.content_hash == hashlib.sha256(raw).hexdigest()
    assert scan.categories["04-vla"].position == 6

    # The docs root is never a sidebar category, so its file yields a label but no page.
    root = scan.categories[""]
    assert root.label == "Physical AI & Humanoid Robotics Textbook"
    assert root.description.startswith("Comprehensive textbook covering ROS 2")
    assert root.url == ""
    assert root.file == "_category_.json"


def test_corpus_categories_under_another_base_url():
    scan = read_categories(CORPUS, base_url="/book/")
    assert scan.categories["04-vla"].url == "/book/category/04---vla-voice-to-action-systems"
    assert read_categories(CORPUS, base_url="/").categories["01-ros2"].url == (
        "/category/01---ros-2-the-robotic-nervous-system"
    )


def test_corpus_module_labels():
    categories = read_categories(CORPUS).categories
    page = read_page(CORPUS, CORPUS / "04-vla" / "01-voice-to-action.md")
    assert page.module == "04-vla"
    assert module_label(categories, page.path) == "04 - VLA: Voice-to-Action Systems"
    assert module_label(categories, "01-ros2/02-nodes-topics.md") == (
        "01 - ROS 2: The Robotic Nervous System"
    )
    # pages at the root have no module, even though the root has a category file
    assert module_label(categories, "personalization.md") == ""


def test_corpus_category_page():
    scan = read_categories(CORPUS)
    pages = corpus_pages()
    vla = scan.categories["04-vla"]
    items = category_items(scan.categories, "04-vla", pages)
    titles = [title for title, _ in items]
    assert titles[:4] == [
        "Voice-to-Action Systems",
        "Large Language Model Planning",
        "Natural Language for Robotics",
        "Multimodal Perception and Integration",
    ]
    assert set(titles) == {p.title for p in pages if p.module == "04-vla"}
    assert ("Large Language Model Planning", "/docs/vla/llm-planning") in items

    page = category_page(vla, items)
    assert isinstance(page, Page)
    assert page.path == "04-vla/_category_.json"
    assert page.url == "/docs/category/04---vla-voice-to-action-systems"
    assert page.title == "04 - VLA: Voice-to-Action Systems"
    assert page.module == "04-vla"
    lines = page.body.split("\n")
    assert lines[0] == "# 04 - VLA: Voice-to-Action Systems"
    assert "Voice interfaces and LLM integration for humanoid robots" in lines
    for title in titles:
        assert f"- {title}" in lines
    assert page.body.endswith("\n") and not page.body.endswith("\n\n")

    # the hash follows the listed titles as well as the category file
    assert category_page(vla, items).content_hash == page.content_hash
    renamed = [("Renamed", url) for _, url in items]
    assert category_page(vla, renamed).content_hash != page.content_hash
    assert page.content_hash != vla.content_hash


def test_corpus_root_category_lists_modules_by_label():
    scan = read_categories(CORPUS)
    items = category_items(scan.categories, "", corpus_pages())
    assert items[:6] == [(label, url) for label, _, url in CORPUS_CATEGORIES.values()]
    assert ("Chapter Personalization Feature", "/docs/personalization") in items


def test_category_explicit_slug_title_and_default_label(tmp_path: Path):
    write(tmp_path, "01-ros/_category_.json", category_json("ROS", slug="/ros-intro"))
    write(tmp_path, "01-ros/a.md", "# A\n")
    write(tmp_path, "02-sim/_category_.json", category_json("Sim", slug="sim-start", title="All of Sim"))
    write(tmp_path, "02-sim/a.md", "# A\n")
    write(tmp_path, "03-advanced-topics/_category_.json", category_json(description="Deep dives"))
    write(tmp_path, "03-advanced-topics/a.md", "# A\n")

    categories = read_categories(tmp_path, base_url="/docs").categories
    assert categories["01-ros"].url == "/docs/ros-intro"
    assert categories["02-sim"].url == "/docs/sim-start"  # a relative slug still hangs off base_url
    assert categories["02-sim"].title == "All of Sim"
    assert categories["02-sim"].label == "Sim"
    advanced = categories["03-advanced-topics"]
    assert advanced.label == "advanced-topics"  # folder name, number prefix stripped
    assert advanced.title == "advanced-topics"
    assert advanced.description == "Deep dives"
    assert advanced.url == "/docs/category/advanced-topics"

    other = read_categories(tmp_path, base_url="/handbook/v2/").categories
    assert other["01-ros"].url == "/handbook/v2/ros-intro"
    assert other["03-advanced-topics"].url == "/handbook/v2/category/advanced-topics"


def test_category_yaml_variants(tmp_path: Path):
    write(
        tmp_path,
        "10-hardware/_category_.yml",
        "label: 'Hardware: Jetson & Sensors'\n"
        "position: 2.5\n"
        "link:\n"
        "  type: generated-index\n"
        "  description: Boards, cameras and IMUs\n",
    )
    write(tmp_path, "10-hardware/jetson.md", "# Jetson\n")
    write(tmp_path, "11-appendix/_category_.yaml", "label: Appendix\nlink:\n  type: generated-index\n")
    write(tmp_path, "11-appendix/glossary.md", "# Glossary\n")

    scan = read_categories(tmp_path)
    assert scan.skipped == {}
    hardware = scan.categories["10-hardware"]
    assert hardware.label == "Hardware: Jetson & Sensors"
    assert hardware.description == "Boards, cameras and IMUs"
    assert hardware.url == "/docs/category/hardware-jetson--sensors"
    assert hardware.position == 2.5
    assert hardware.file == "10-hardware/_category_.yml"
    appendix = scan.categories["11-appendix"]
    assert (appendix.label, appendix.description, appendix.url) == ("Appendix", "", "/docs/category/appendix")
    assert appendix.file == "11-appendix/_category_.yaml"


def test_category_without_generated_index_has_no_url(tmp_path: Path):
    write(tmp_path, "01-doc-link/_category_.json", '{"label": "Linked", "link": {"type": "doc", "id": "intro"}}')
    write(tmp_path, "01-doc-link/intro.md", "# Intro\n")
    write(tmp_path, "02-null-link/_category_.json", '{"label": "No link", "link": null}')
    write(tmp_path, "02-null-link/a.md", "# A\n")
    write(tmp_path, "03-no-link/_category_.yml", "label: Plain\n")
    write(tmp_path, "03-no-link/a.md", "# A\n")
    write(tmp_path, "04-empty/_category_.yml", "")  # an empty YAML document means "no metadata"
    write(tmp_path, "04-empty/a.md", "# A\n")
    # a folder without docs is no sidebar category, so Docusaurus builds no index page for it
    write(tmp_path, "05-no-docs/_category_.json", category_json("Assets", description="Images"))
    write(tmp_path, "05-no-docs/img/logo.png", b"\x89PNG")

    scan = read_categories(tmp_path)
    assert scan.skipped == {}
    got = {folder: (c.label, c.description, c.url) for folder, c in scan.categories.items()}
    assert got == {
        "01-doc-link": ("Linked", "", ""),
        "02-null-link": ("No link", "", ""),
        "03-no-link": ("Plain", "", ""),
        "04-empty": ("empty", "", ""),
        "05-no-docs": ("Assets", "Images", ""),
    }
    with pytest.raises(ValueError):
        category_page(scan.categories["01-doc-link"], [("Intro", "/docs/doc-link")])


def test_bad_category_files_are_reported_not_raised(tmp_path: Path):
    write(tmp_path, "01-good/_category_.json", category_json("Good", description="Fine"))
    write(tmp_path, "01-good/a.md", "# A\n")
    bad = {
        "02-broken/_category_.json": '{"label": "Broken",, }',
        "03-list/_category_.yml": "- label: x\n",
        "04-bad-yaml/_category_.yaml": "label: [unclosed\n",
        "05-label-type/_category_.json": '{"label": 5}',
        "06-link-type/_category_.json": '{"label": "X", "link": {"type": "autogenerated"}}',
        "07-latin1/_category_.yml": "label: Caf\xe9\n".encode("latin-1"),
        "08-position/_category_.json": '{"position": "first"}',
        "09-empty-label/_category_.json": '{"label": ""}',
    }
    for rel, text in bad.items():
        write(tmp_path, rel, text)
        write(tmp_path, rel.split("/")[0] + "/a.md", "# A\n")

    scan = read_categories(tmp_path)  # must not raise
    assert set(scan.categories) == {"01-good"}
    assert scan.categories["01-good"].url == "/docs/category/good"
    assert set(scan.skipped) == set(bad)
    assert scan.skipped["02-broken/_category_.json"].startswith("invalid JSON: ")
    assert "line 1" in scan.skipped["02-broken/_category_.json"]
    assert scan.skipped["03-list/_category_.yml"] == "expected a mapping, got a list"
    assert scan.skipped["04-bad-yaml/_category_.yaml"].startswith("invalid YAML: ")
    assert scan.skipped["05-label-type/_category_.json"] == '"label" must be a non-empty string, got a number'
    assert "unknown link type 'autogenerated'" in scan.skipped["06-link-type/_category_.json"]
    assert scan.skipped["07-latin1/_category_.yml"] == "not UTF-8 text"
    assert scan.skipped["08-position/_category_.json"] == '"position" must be a number, got a string'
    assert "empty string" in scan.skipped["09-empty-label/_category_.json"]
    # a folder whose file was skipped still gets the default label
    assert module_label(scan.categories, "02-broken/a.md") == "broken"


def test_two_category_files_in_one_folder(tmp_path: Path):
    write(tmp_path, "guide/_category_.json", category_json("From JSON"))
    write(tmp_path, "guide/_category_.yml", "label: From YAML\n")
    write(tmp_path, "guide/a.md", "# A\n")
    write(tmp_path, "more/_category_.json", "{oops")
    write(tmp_path, "more/_category_.yaml", "label: Fallback\n")
    write(tmp_path, "more/a.md", "# A\n")

    scan = read_categories(tmp_path)
    assert scan.categories["guide"].label == "From JSON"
    assert scan.skipped["guide/_category_.yml"] == "ignored: guide/_category_.json is used for this folder"
    # a broken file does not hide a valid sibling
    assert scan.categories["more"].label == "Fallback"
    assert scan.categories["more"].file == "more/_category_.yaml"
    assert scan.skipped["more/_category_.json"].startswith("invalid JSON")


def test_repeated_labels_get_numbered_slugs_in_sidebar_order(tmp_path: Path):
    # "b-part" comes first in the sidebar by position, so it gets the plain slug
    write(tmp_path, "a-part/_category_.json", '{"label": "Overview", "position": 2, "link": {"type": "generated-index"}}')
    write(tmp_path, "a-part/x.md", "# X\n")
    write(tmp_path, "b-part/_category_.json", '{"label": "Overview", "position": 1, "link": {"type": "generated-index"}}')
    write(tmp_path, "b-part/x.md", "# X\n")
    # nested categories are visited right after their parent
    write(tmp_path, "b-part/inner/_category_.json", category_json("Overview", description="Nested"))
    write(tmp_path, "b-part/inner/y.md", "# Y\n")
    write(tmp_path, "c-part/_category_.json", category_json("Overview"))
    write(tmp_path, "c-part/z.md", "# Z\n")

    urls = {folder: c.url for folder, c in read_categories(tmp_path).categories.items()}
    assert urls == {
        "b-part": "/docs/category/overview",
        "b-part/inner": "/docs/category/overview-1",
        "a-part": "/docs/category/overview-2",
        "c-part": "/docs/category/overview-3",
    }


def test_category_folders_are_walked_like_doc_files(tmp_path: Path):
    for folder in ("_drafts", ".hidden", "node_modules/pkg", "ok/_partials"):
        write(tmp_path, f"{folder}/_category_.json", category_json("Skipped"))
        write(tmp_path, f"{folder}/a.md", "# A\n")
    write(tmp_path, "ok/_category_.json", category_json("Kept"))
    write(tmp_path, "ok/a.md", "# A\n")
    scan = read_categories(tmp_path)
    assert set(scan.categories) == {"ok"}
    assert scan.skipped == {}
    assert read_categories(tmp_path / "missing").categories == {}


def test_category_items_and_page_for_nested_folders(tmp_path: Path):
    write(tmp_path, "01-ros/_category_.json", category_json("ROS 2 Basics", description="Start here"))
    write(tmp_path, "01-ros/02-topics.md", "# Topics\n")
    write(tmp_path, "01-ros/01-nodes.md", "# Nodes\n")
    # a sub-folder with its own generated index
    write(tmp_path, "01-ros/03-deep/_category_.json", category_json("Going Deeper"))
    write(tmp_path, "01-ros/03-deep/01-qos.md", "# QoS\n")
    # a sub-folder without category file: default label, links to its index doc
    write(tmp_path, "01-ros/04-tools/01-rviz.md", "# RViz\n")
    write(tmp_path, "01-ros/04-tools/index.md", "# Tools overview\n")

    scan = read_categories(tmp_path)
    pages = [read_page(tmp_path, f) for f in find_doc_files(tmp_path)]
    items = category_items(scan.categories, "01-ros", pages)
    assert items == [
        ("Nodes", "/docs/ros/nodes"),
        ("Topics", "/docs/ros/topics"),
        ("Going Deeper", "/docs/category/going-deeper"),
        ("tools", "/docs/ros/tools"),
    ]
    assert category_items(scan.categories, "01-ros/03-deep", pages) == [("QoS", "/docs/ros/deep/qos")]

    page = category_page(scan.categories["01-ros"], items)
    assert page.body == (
        "# ROS 2 Basics\n\nStart here\n\n- Nodes\n- Topics\n- Going Deeper\n- tools\n"
    )
    deep = category_page(scan.categories["01-ros/03-deep"], [("QoS", "/docs/ros/deep/qos")])
    assert (deep.path, deep.module, deep.url) == (
        "01-ros/03-deep/_category_.json",
        "01-ros",
        "/docs/category/going-deeper",
    )
    assert deep.body == "# Going Deeper\n\n- QoS\n"
    assert module_label(scan.categories, "01-ros/03-deep/01-qos.md") == "ROS 2 Basics"


def test_category_is_a_frozen_value():
    category = Category(
        folder="x", label="X", description="", url="", title="X", position=None, file="x/_category_.json", content_hash=""
    )
    with pytest.raises(AttributeError):
        category.label = "Y"  # type: ignore[misc]
