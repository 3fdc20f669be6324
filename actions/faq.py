"""Short factual questions answered in the first reply: the words of the message, over what the NLU understood.

The NLU says what a message is about (VNeID, a procedure); the answer to "how many characters must the password
have?" is in the words. data/content/faq.yml lists such questions as keyword groups; a matching entry either answers
with the fact and its source (then offers the related guide as a button) or hands the message on as it should have
been understood (the passcode branch rather than "password or passcode?", the interlinked birth group rather than
plain birth registration).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from actions.base import Context
from actions.guides import START
from actions.procedures import SHOW
from actions.renewal import START as RENEWAL_START
from core.text import fold
from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Entity, Incoming, Reply, Understanding
from nlu.client import clean_text

log = structlog.get_logger(__name__)

# Intents whose request has consequences or state of its own: when the model is sure of one of them, the words
# of the message are about that request ("remind me to call the hotline"), not a question to answer.
ACTION_INTENTS = frozenset(
    {
        "set_reminder",
        "list_reminders",
        "cancel_reminder",
        "check_status",
        "delete_my_data",
        "human_handover",
        "subscribe_news",
        "unsubscribe_news",
        "change_language",
    }
)
SURE = 0.8  # an action intent at least this sure keeps the message


def normalise(text: str) -> str:
    """Lower case, without diacritics (đ → d), words separated by single spaces, padded with a space each side."""
    return " " + " ".join(re.findall(r"[a-z0-9]+", fold(text))) + " "


def _phrase(p: str) -> str:
    return normalise(p)


@dataclass(frozen=True)
class Entry:
    id: str
    all: tuple[tuple[str, ...], ...]
    none: tuple[str, ...] = ()
    answer: tuple[str, ...] = ()
    then: str | None = None
    guide: str | None = None
    procedure: str | None = None
    aspect: str | None = None
    unless: frozenset[str] = field(default_factory=frozenset)
    intents: tuple[str, ...] = ()  # intent prefixes: the entry applies only when one is among the NLU's top three

    def heard(self, nlu: Understanding) -> bool:
        if not self.intents:
            return True
        top = [nlu.intent or "", *(i for i, _ in nlu.ranking[:3])]
        return any(i.startswith(p) for i in top for p in self.intents)

    def matches(self, norm: str) -> bool:
        if any(p in norm for p in self.none):
            return False
        return all(any(p in norm for p in group) for group in self.all)


def load_entries(content: Content) -> list[Entry]:
    raw = content.raw.get("faq", {}).get("entries", [])
    entries = []
    for e in raw:
        entries.append(
            Entry(
                id=str(e["id"]),
                all=tuple(tuple(_phrase(str(p)) for p in group) for group in e["all"]),
                none=tuple(_phrase(str(p)) for p in e.get("none", ())),
                answer=tuple(e.get("answer", ())),
                then=e.get("then"),
                guide=e.get("guide"),
                procedure=e.get("procedure"),
                aspect=e.get("aspect"),
                unless=frozenset(e.get("unless", ())) | ACTION_INTENTS,
                intents=tuple(e.get("intents", ())),
            )
        )
    for entry in entries:
        for key in entry.answer:
            content.entry(key)  # a missing text fails at start-up, not in front of a citizen
        if not entry.answer and not entry.guide and not entry.procedure:
            raise ValueError(f"faq entry {entry.id!r} neither answers nor routes")
    return entries


@dataclass(frozen=True)
class Hit:
    """What a message matched: replies to send, or the understanding to dispatch instead of the NLU's."""

    entry: str
    replies: list[Reply] | None = None
    understanding: Understanding | None = None


class Faq:
    """Matches a typed message against data/content/faq.yml. Used by the router before it dispatches an intent."""

    def __init__(self, content: Content, guide_buttons: dict[str, str]) -> None:
        self.entries = load_entries(content)
        # Every word the assistant says, in both languages: a message none of whose words is among them is nonsense
        # ("asdkjh qwe zxc"), however sure the model is that it is out of scope.
        keys = content.keys()
        self.vocabulary = {w for key in keys for lang in ("vi", "en") for w in words(content, key, lang)}
        aspects = content.raw.get("faq", {}).get("aspects", {})
        self.aspects = {a: tuple(_phrase(str(p)) for p in words) for a, words in aspects.items()}
        self.guide_buttons = guide_buttons  # guide id -> its title key, for the "see the guide" button

    def is_nonsense(self, text: str) -> bool:
        """Letters, but not one word the assistant knows (two letters or more): keyboard mashing, "blah blah"."""
        tokens = [t for t in normalise(clean_text(text)).split() if len(t) >= 2 and not t.isdigit()]
        return bool(tokens) and not any(t in self.vocabulary for t in tokens)

    def match(self, inc: Incoming, ctx: Context) -> Hit | None:
        text = inc.text or ""
        nlu = inc.nlu
        if not text.strip() or nlu is None:
            return None
        norm = normalise(clean_text(text))  # as the NLU read it: composed, without zero-width characters
        for entry in self.entries:
            if not entry.matches(norm) or not entry.heard(nlu):
                continue
            if nlu.intent in entry.unless and nlu.confidence >= SURE and not _bare_lookup(nlu):
                return None
            log.info("faq.matched", entry=entry.id, intent=nlu.intent)
            if entry.guide:
                # The VNeID capability opens the guide the `guide` entity names, under the NLU's own eid intent.
                intent = nlu.intent if nlu.intent and nlu.intent.startswith("eid_") else "eid_info"
                return Hit(entry.id, understanding=_routed(nlu, intent, guide=entry.guide))
            if entry.procedure:
                return Hit(
                    entry.id,
                    understanding=_routed(nlu, "procedure_info", procedure=entry.procedure, aspect=entry.aspect),
                )
            return Hit(entry.id, replies=[self._answer(ctx, entry)])
        if nlu.intent == "procedure_info" and nlu.entity("procedure") and not nlu.entity("aspect"):
            for aspect, words in self.aspects.items():
                if any(p in norm for p in words):
                    return Hit(f"aspect:{aspect}", understanding=_routed(nlu, "procedure_info", aspect=aspect))
        return None

    def _answer(self, ctx: Context, entry: Entry) -> Reply:
        parts: list[str] = []
        for key in entry.answer:
            parts.append(ctx.t(key))
            line = source_line(ctx, key)
            if line:
                parts.append(line)
        rows: tuple[tuple[Button, ...], ...] = ()
        button = self._then(ctx, entry.then)
        if button is not None:
            rows = ((button,),)
        return Reply("\n\n".join(parts), rows)

    def _then(self, ctx: Context, then: str | None) -> Button | None:
        if not then:
            return None
        kind, _sep, rest = then.partition(":")
        if kind == "guide" and rest in self.guide_buttons:
            title = ctx.t(self.guide_buttons[rest])
            return Button(ctx.t("faq.btn_more", title=title), callbacks.encode(START, rest))
        if kind == "renewal":
            return Button(ctx.t("faq.btn_renewal"), callbacks.encode(RENEWAL_START))
        if kind == "proc":
            pid, _sep, aspect = rest.partition(":")
            label = ctx.t(
                "faq.btn_procedure",
                name=ctx.t(f"procedures.{pid}.name"),
                aspect=ctx.t(f"procedures.aspect.{aspect}") if aspect else "",
            )
            return Button(label, callbacks.encode(SHOW, pid, aspect))
        return None


def words(content: Content, key: str, lang: str) -> list[str]:
    text = re.sub(r"<[^>]+>|\{[a-z_]+\}", " ", content.text(key, lang))
    return normalise(text).split()


def source_line(ctx: Context, key: str) -> str | None:
    """The fact's source: "checked on …" when someone verified it, else a line asking to check on the portal."""
    entry = ctx.content.entry(key)
    if not entry.source:
        return None
    if entry.checked is not None:
        return ctx.t("procedures.checked_line", date=entry.checked.strftime("%d/%m/%Y"), source=entry.source)
    return ctx.t("faq.unchecked_line", source=entry.source)


def _bare_lookup(nlu: Understanding) -> bool:
    """A "check my dossier" reading with no dossier code: the words of a real question say more than it does."""
    return nlu.intent == "check_status" and nlu.entity("dossier_code") is None


def _routed(nlu: Understanding, intent: str, **values: str | None) -> Understanding:
    """The NLU's understanding with the intent and entities the words of the message settle."""
    kept: Sequence[Entity] = [e for e in nlu.entities if e.entity not in values]
    added = [Entity(name, value) for name, value in values.items() if value]
    return Understanding(intent, 1.0, (*kept, *added), nlu.ranking)
