"""Markdown of model cards and descriptions, rendered to sanitized HTML.

Cards are CommonMark with GitHub tables and strikethrough, and they often hold raw HTML
(centred logos, `<details>` blocks), so markdown-it passes HTML through and nh3 then keeps
only an allow-list: no scripts, styles, frames, forms, SVG or event handlers; URLs only
http, https, mailto or relative; links get rel="noopener noreferrer nofollow".

This is for markdown only. Names, paths and other plain text go into pages through the
template layer's autoescaping (MarkupSafe), or `html.escape(text, quote=True)` where a string
is built by hand; the output of this module is the one thing a template marks safe.

Relative URLs are passed through unchanged; resolving them against a repository's files is
the page's concern.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

from hver.core.cards import strip_front_matter

_md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

_TAGS = frozenset({
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote",
    "ul", "ol", "li", "dl", "dt", "dd",
    "pre", "code", "kbd", "samp",
    "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption",
    "a", "img", "details", "summary",
    "em", "strong", "b", "i", "u", "del", "s", "ins", "mark", "sup", "sub", "small",
    "span", "div",
})

# script and style vanish with their content; other tags off the list are dropped but
# their text stays.
_DROP_WITH_CONTENT = frozenset({"script", "style"})

_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "th": {"style", "colspan", "rowspan"},
    "td": {"style", "colspan", "rowspan"},
    "code": {"class"},
    "details": {"open"},
}

_ALIGN = {"align": {"left", "center", "right"}}
_ATTRIBUTE_VALUES = {tag: _ALIGN for tag in ("p", "div", "img", "h1", "h2", "h3", "th", "td")}

_TEXT_ALIGN = re.compile(r"\s*text-align\s*:\s*(left|center|right)\s*;?\s*", re.I)
_LANGUAGE_CLASS = re.compile(r"language-[\w+#.-]+")


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Table cells keep only markdown's column alignment; code keeps only its language."""
    if attribute == "style":
        m = _TEXT_ALIGN.fullmatch(value)
        return f"text-align:{m.group(1).lower()}" if m else None
    if attribute == "class":
        return value if _LANGUAGE_CLASS.fullmatch(value) else None
    return value


_cleaner = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_DROP_WITH_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_filter_attribute,
    tag_attribute_values=_ATTRIBUTE_VALUES,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def render_markdown(text: str) -> str:
    """Markdown (with raw HTML) to HTML that is safe to insert into a page as is."""
    return _cleaner.clean(_md.render(text))


def render_card(readme: str) -> str:
    """A README.md rendered for its card page, without the YAML metadata block."""
    return render_markdown(strip_front_matter(readme))
