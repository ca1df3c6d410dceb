"""`tools/markdown.py`: where code fences and headings are, as every tool reads them."""

from __future__ import annotations

from booktutor.tools import markdown


def test_a_fence_right_under_a_jsx_line_is_code():
    text = '<div className="underline-class"></div>\n```python\n# not a heading\nx = 1\n```\nAfter.\n'
    tokens = markdown.parse(text)
    assert [(f.line, f.end_line, f.info, f.closed) for f in markdown.fences(tokens)] == [(1, 5, "python", True)]
    assert markdown.headings(tokens) == []
    assert markdown.prose(text) == '<div className="underline-class"></div>\n\nAfter.\n'


def test_fences_in_lists_and_quotes_and_tildes_are_code():
    text = "- step\n\n  ```bash\n  ls\n  ```\n\n> ~~~\n> quoted\n> ~~~\n"
    assert markdown.code_lines(markdown.parse(text)) == {2, 3, 4, 6, 7, 8}
    spans = [text[a:b] for a, b in markdown.fence_spans(text)]
    assert spans == ["  ```bash\n  ls\n  ```", "> ~~~\n> quoted\n> ~~~"]


def test_an_unclosed_fence_runs_to_the_end_and_says_so():
    (fence,) = markdown.fences(markdown.parse("Text.\n\n```js\nlet a;\n"))
    assert (fence.line, fence.end_line, fence.closed, fence.content) == (2, 4, False, "let a;\n")


def test_prose_leaves_out_code_headings_and_tables():
    text = "# Title\n\nA sentence.\n\n- step\n\n  ```bash\n  ls\n  ```\n\n| a | b |\n| - | - |\n| 1 | 2 |\n\nEnd.\n"
    assert markdown.prose(text) == "\n\nA sentence.\n\n- step\n\n\n\n\n\nEnd.\n"


def test_inline_code_with_three_backticks_is_no_fence():
    assert markdown.fences(markdown.parse("```code``` in a line\n")) == []


def test_headings_say_their_level_nesting_and_style():
    text = "# One {#first}\n\nTwo\n---\n\n> ## Quoted\n\n```\n# code\n```\n"
    found = [(h.line, h.level, h.source, h.nested, h.underlined) for h in markdown.headings(markdown.parse(text))]
    assert found == [(0, 1, "One {#first}", False, False), (2, 2, "Two", False, True), (5, 2, "Quoted", True, False)]


def test_a_lone_carriage_return_does_not_shift_line_numbers():
    text = "a\rb\n```\ncode\n```\n"
    assert markdown.code_lines(markdown.parse(text)) == {1, 2, 3}


def test_unwrap_fence_only_takes_a_whole_closed_markdown_block():
    assert markdown.unwrap_fence("```markdown\n# Title\n\nText.\n```") == "# Title\n\nText.\n"
    assert markdown.unwrap_fence("```MD\nText.\n```\n") == "Text.\n"
    assert markdown.unwrap_fence("```python\nx = 1\n```") is None
    assert markdown.unwrap_fence("```markdown\nText.\n") is None
    assert markdown.unwrap_fence("Intro.\n\n```markdown\nText.\n```") is None
