"""Plain data exchanged between the channel adapter (bot/) and the capabilities (actions/)."""

from __future__ import annotations

from dataclasses import dataclass

LANGS = ("vi", "en")


@dataclass(frozen=True, slots=True)
class Button:
    """An inline button. `data` is a callback payload built by `kernel.callbacks.encode` (<= 64 bytes)."""

    label: str
    data: str = ""
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One message to show the user.

    `text` is Telegram HTML: anything that came from a user or a remote service must already be escaped
    (`html.escape`). `edit=True` replaces the message whose button was pressed instead of sending a new one.
    """

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    edit: bool = False
    photo: str | None = None  # a Telegram file_id or an https URL; `text` is then the caption (<= 1024 chars)
    reply_to: int | None = None  # thread the message under this one (staff group posts)


@dataclass(frozen=True, slots=True)
class Entity:
    entity: str
    value: str
    start: int = 0
    end: int = 0


@dataclass(frozen=True, slots=True)
class Understanding:
    """What the NLU server made of a free-text message."""

    intent: str | None
    confidence: float
    entities: tuple[Entity, ...] = ()
    ranking: tuple[tuple[str, float], ...] = ()

    def entity(self, name: str) -> str | None:
        for e in self.entities:
            if e.entity == name:
                return e.value
        return None


@dataclass(frozen=True, slots=True)
class Incoming:
    """One thing the user did: a text message or a button press (`callback`, already validated)."""

    user_id: int
    chat_id: int
    lang: str
    display_name: str = ""
    text: str | None = None
    callback: tuple[str, tuple[str, ...]] | None = None
    nlu: Understanding | None = None
    update_id: int | None = None
    chat_type: str = "private"  # private | group | supergroup | channel
    message_id: int | None = None
    reply_to: int | None = None  # id of the message this one replies to (staff replying to a ticket post)
    photo: str | None = None  # file_id of the largest size, when the message is a photo
    kind: str = "text"  # text | command | callback | photo | sticker | voice | location | contact | other
    spoken: str | None = None  # the language the router detected in `text` (actions/lang.py): "vi", "en" or None
