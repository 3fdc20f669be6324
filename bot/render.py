"""Turn the assistant's channel-agnostic replies into Telegram message parameters."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from kernel.types import Reply

MAX_TEXT = 4096  # Telegram's limit for one message


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(b.label, url=b.url)
                if b.url
                else InlineKeyboardButton(b.label, callback_data=b.data)
                for b in row
            ]
            for row in reply.buttons
        ]
    )


def split_text(text: str) -> list[str]:
    """Split an over-long text on paragraph or line boundaries (never inside an HTML tag written by us)."""
    if len(text) <= MAX_TEXT:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest) > MAX_TEXT:
        cut = rest.rfind("\n\n", 0, MAX_TEXT)
        if cut <= 0:
            cut = rest.rfind("\n", 0, MAX_TEXT)
        if cut <= 0:
            cut = MAX_TEXT
        parts.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    parts.append(rest)
    return parts
