"""The message a citizen receives for a broadcast, built the same way for the staff preview and for delivery."""

from __future__ import annotations

from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Reply

UNSUBSCRIBE = "n_unsub"  # handled by actions.news; every broadcast message carries it
callbacks.register(UNSUBSCRIBE)


def citizen_reply(content: Content, text: str, photo: str | None, lang: str) -> Reply:
    """The broadcast as the citizen sees it, with the [Unsubscribe] button in their language."""
    button = Button(content.text("news.btn_unsubscribe", lang), callbacks.encode(UNSUBSCRIBE))
    return Reply(text, ((button,),), photo=photo)
