from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.conftest import CORPUS
from tools.docusaurus import Page, PageError, find_doc_files, heading_anchor, read_page




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
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                if not line.strip().strip(fence[0]):
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
