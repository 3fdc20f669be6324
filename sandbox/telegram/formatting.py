"""Telegram's HTML parse mode: Bot API HTML to plain text plus MessageEntity dicts, rejecting what Telegram rejects.

The rules and error texts follow Telegram's server (tdlib's `parse_html`): only the documented tags, the four
named entities `&lt; &gt; &amp; &quot;` plus numeric ones (an unknown `&name;` stays literal text), strict
nesting, offsets and lengths in UTF-16 code units. Error texts are what follows
"Bad Request: can't parse entities: " in Telegram's answer.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["EntityParseError", "parse_html", "utf16_len"]

_SIMPLE_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_ALL_TAGS = frozenset({*_SIMPLE_TAGS, "a", "tg-emoji"})
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACES = frozenset(" \t\r\n\v\f")
_SPECIAL = re.compile(r"[<&]")
_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]{2,4}));")
_NAME_TOKEN = re.compile(r"[A-Za-z0-9.\-]*")
_URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; `str(exc)` is Telegram's explanation."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets (emoji outside the BMP count 2)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    return len(src[:index].encode("utf-8"))


def _decode_entity(src: str, index: int) -> tuple[str, int] | None:
    """Decode the HTML entity at `src[index] == "&"`: (character, index after it) or None if it is not one."""
    m = _ENTITY.match(src, index)
    if m is None:
        return None
    dec, hexa, name = m.groups()
    if name is not None:
        char = _NAMED_ENTITIES.get(name)
        if char is None:
            return None
        return char, m.end()
    code = int(dec) if dec is not None else int(hexa, 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), m.end()


def _normalize_url(url: str) -> str | None:
    url = url.strip()
    if not url or any(c in _SPACES for c in url):
        return None
    if _URL_SCHEME.match(url):
        return url
    if url.startswith("tg:"):
        return url
    # Telegram accepts a bare host ("example.com/x") and prefixes http://
    if "." in url.split("/", 1)[0]:
        return "http://" + url
    return None


class _Open:
    __slots__ = ("arg", "offset", "tag")

    def __init__(self, tag: str, arg: str, offset: int) -> None:
        self.tag = tag
        self.arg = arg
        self.offset = offset


def parse_html(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML. Returns (plain text, entities sorted by offset); raises EntityParseError."""
    if "<" not in src and "&" not in src:
        return src, []
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[_Open] = []
    pos16 = 0
    i = 0
    n = len(src)
    while i < n:
        m = _SPECIAL.search(src, i)
        if m is None:
            out.append(src[i:])
            break
        j = m.start()
        if j > i:
            chunk = src[i:j]
            out.append(chunk)
            pos16 += utf16_len(chunk)
        if src[j] == "&":
            decoded = _decode_entity(src, j)
            if decoded is None:
                out.append("&")
                pos16 += 1
                i = j + 1
            else:
                out.append(decoded[0])
                pos16 += 2 if ord(decoded[0]) > 0xFFFF else 1
                i = decoded[1]
            continue
        if j + 1 < n and src[j + 1] == "/":
            i = _close_tag(src, j, stack, entities, pos16)
        else:
            i = _open_tag(src, j, stack, pos16)
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for e in entities:
        # a language survives only on a <pre><code class="language-x"> pair
        if e["type"] == "code":
            e.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _open_tag(src: str, begin: int, stack: list[_Open], pos16: int) -> int:
    n = len(src)
    k = begin + 1
    while k < n and src[k] not in _SPACES and src[k] != ">":
        k += 1
    if k >= n:
        raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
    tag = src[begin + 1 : k].lower()
    if tag not in _ALL_TAGS:
        raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, begin)}')
    arg = ""
    while True:
        while k < n and src[k] in _SPACES:
            k += 1
        if k >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
        if src[k] == ">":
            break
        name_begin = k
        while k < n and src[k] not in _SPACES and src[k] not in "=>":
            k += 1
        attr = src[name_begin:k].lower()
        if not attr:
            raise EntityParseError(f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(src, begin)}')
        while k < n and src[k] in _SPACES:
            k += 1
        if k >= n or src[k] != "=":
            if tag == "blockquote" and attr == "expandable":
                arg = "expandable"
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(src, begin)}"
            )
        k += 1
        while k < n and src[k] in _SPACES:
            k += 1
        if k >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
        if src[k] in "'\"":
            quote = src[k]
            k += 1
            value_chars: list[str] = []
            while k < n and src[k] != quote:
                if src[k] == "&":
                    decoded = _decode_entity(src, k)
                    if decoded is not None:
                        value_chars.append(decoded[0])
                        k = decoded[1]
                        continue
                value_chars.append(src[k])
                k += 1
            if k < n:
                k += 1
            value = "".join(value_chars)
        else:
            token = _NAME_TOKEN.match(src, k)
            end = token.end() if token else k
            if end < n and src[end] not in _SPACES and src[end] != ">":
                raise EntityParseError(f"Unexpected end of name token at byte offset {_byte_offset(src, k)}")
            value = src[k:end].lower()
            k = end
        if k >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
        if tag == "a" and attr == "href":
            arg = value
        elif tag == "code" and attr == "class" and value.startswith("language-"):
            arg = value[len("language-") :]
        elif tag == "span" and attr == "class" and value.startswith("tg-"):
            arg = value[len("tg-") :]
        elif tag == "tg-emoji" and attr == "emoji-id":
            arg = value
    if tag == "span" and arg != "spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, begin)}')
    if tag == "tg-emoji" and not (arg.isdigit() and int(arg) > 0):
        raise EntityParseError("Invalid custom emoji identifier specified")
    stack.append(_Open(tag, arg, pos16))
    return k + 1


def _close_tag(src: str, begin: int, stack: list[_Open], entities: list[dict[str, Any]], pos16: int) -> int:
    n = len(src)
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(src, begin)}")
    k = begin + 2
    while k < n and src[k] not in _SPACES and src[k] != ">":
        k += 1
    end_name = src[begin + 2 : k].lower()
    while k < n and src[k] in _SPACES:
        k += 1
    if k >= n or src[k] != ">":
        raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(src, begin)}")
    opened = stack[-1]
    if end_name and end_name != opened.tag:
        raise EntityParseError(
            f'Unmatched end tag at byte offset {_byte_offset(src, begin)}, expected "</{opened.tag}>", '
            f'found "</{end_name}>"'
        )
    stack.pop()
    length = pos16 - opened.offset
    if length > 0:
        entity = _make_entity(opened, length)
        if entity is not None:
            if opened.tag == "pre" and entities:
                last = entities[-1]
                # <pre><code class="language-x">...</code></pre> is one pre entity with a language
                if (
                    last["type"] == "code"
                    and last["offset"] == opened.offset
                    and last["length"] == length
                    and "language" in last
                ):
                    entities.pop()
                    entity["language"] = last["language"]
            entities.append(entity)
    return k + 1


def _make_entity(opened: _Open, length: int) -> dict[str, Any] | None:
    tag = opened.tag
    entity: dict[str, Any]
    if tag == "a":
        url = _normalize_url(opened.arg)
        if url is None:
            return None
        return {"type": "text_link", "offset": opened.offset, "length": length, "url": url}
    if tag == "tg-emoji":
        return {
            "type": "custom_emoji",
            "offset": opened.offset,
            "length": length,
            "custom_emoji_id": opened.arg,
        }
    kind = _SIMPLE_TAGS[tag]
    if tag == "blockquote" and opened.arg == "expandable":
        kind = "expandable_blockquote"
    entity = {"type": kind, "offset": opened.offset, "length": length}
    if tag == "code" and opened.arg:
        # kept only while it may merge into an enclosing <pre>; parse_html drops it otherwise
        entity["language"] = opened.arg
    return entity
