"""Checks a broadcast's Telegram HTML before anything is sent, so a malformed text fails once, for the author."""

from __future__ import annotations

import html
import re

MAX_TEXT = 4096  # Telegram's limit for a message's text (after entities are parsed)
MAX_CAPTION = 1024  # ... and for a photo's caption

# The subset of Telegram's HTML the composer allows, with the attributes each tag may carry.
ALLOWED: dict[str, frozenset[str]] = {
    "b": frozenset(),
    "i": frozenset(),
    "u": frozenset(),
    "s": frozenset(),
    "a": frozenset({"href"}),
    "code": frozenset({"class"}),
    "pre": frozenset(),
    "blockquote": frozenset({"expandable"}),
    "tg-spoiler": frozenset(),
}
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*?)?)\s*(/?)>")
_ATTR = re.compile(r"""\s*([A-Za-z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_URL = re.compile(r"^(https?://[^\s<>\"]+|tg://[^\s<>\"]+|mailto:[^\s<>\"]+)$", re.IGNORECASE)
_CODE_CLASS = re.compile(r"^language-[A-Za-z0-9_+-]+$")


class HtmlError(ValueError):
    """The text is not valid for Telegram; `key` names the content text that explains it, `values` fill it."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def _attributes(raw: str, tag: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    pos = 0
    raw = raw.rstrip()
    while pos < len(raw):
        m = _ATTR.match(raw, pos)
        if m is None or m.end() == pos:
            raise HtmlError("news.html_bad_attr", tag=tag)
        name = m.group(1).lower()
        value = next((g for g in m.group(2, 3, 4) if g is not None), "")
        if name not in ALLOWED[tag]:
            raise HtmlError("news.html_bad_attr", tag=tag)
        attrs[name] = html.unescape(value)
        pos = m.end()
    return attrs


def visible_text(text: str) -> str:
    """What the citizen reads: tags removed, entities decoded."""
    return html.unescape(_TAG.sub("", text))


def check_html(text: str, *, caption: bool = False) -> str:
    """Validate `text` as Telegram HTML with the allowed tags; returns it stripped, or raises HtmlError."""
    text = text.strip()
    if not text:
        raise HtmlError("news.html_empty")
    stack: list[str] = []
    pos = 0
    while True:
        lt = text.find("<", pos)
        if lt < 0:
            break
        m = _TAG.match(text, lt)
        if m is None:
            raise HtmlError("news.html_stray_lt")
        closing, name, raw_attrs, self_closing = m.group(1) == "/", m.group(2).lower(), m.group(3), m.group(4)
        if name not in ALLOWED:
            raise HtmlError("news.html_bad_tag", tag=name)
        if self_closing:
            raise HtmlError("news.html_unclosed", tag=name)
        if closing:
            if raw_attrs.strip():
                raise HtmlError("news.html_bad_attr", tag=name)
            if not stack:
                raise HtmlError("news.html_unexpected_end", tag=name)
            if stack[-1] != name:
                raise HtmlError("news.html_mismatch", tag=name, expected=stack[-1])
            stack.pop()
        else:
            attrs = _attributes(raw_attrs, name)
            if stack and stack[-1] in ("pre", "code") and not (stack[-1] == "pre" and name == "code"):
                raise HtmlError("news.html_nested", tag=name, outer=stack[-1])
            if name == "a":
                if "a" in stack:
                    raise HtmlError("news.html_nested", tag=name, outer="a")
                if not _URL.match(attrs.get("href", "")):
                    raise HtmlError("news.html_bad_link")
            if name == "code" and "class" in attrs and not ("pre" in stack and _CODE_CLASS.match(attrs["class"])):
                raise HtmlError("news.html_bad_attr", tag=name)
            stack.append(name)
        pos = m.end()
    if stack:
        raise HtmlError("news.html_unclosed", tag=stack[-1])
    length = len(visible_text(text))
    limit = MAX_CAPTION if caption else MAX_TEXT
    if not visible_text(text).strip():
        raise HtmlError("news.html_empty")
    if length > limit:
        raise HtmlError("news.html_too_long", length=length, limit=limit)
    return text
