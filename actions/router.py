"""The conversation core: understands free text, routes to the capability that answers, owns small talk and menus."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import BigInteger, CompoundSelect, bindparam, literal_column, select, union_all

from actions.base import Capability, Context, Hook, Services
from actions.faq import Faq
from actions.lang import detect
from actions.staff import role_of
from actions.stats import begins_conversation, count_conversation
from core.pii import redact
from kernel import callbacks
from kernel.types import Button, Incoming, Reply, Understanding
from store.models import NluReview
from store.models_handover import RecentMessage

log = structlog.get_logger(__name__)

callbacks.register("c_menu", "c_lang", "c_intent", "c_pick")

SMALL_TALK = ("greet", "goodbye", "thank", "affirm", "deny", "help", "out_of_scope", "change_language")
PROBE_USER = "probe_user_id"  # the bound parameter of the text-wait probe
# Intents whose action has consequences outside the chat (a ticket puts a citizen in front of staff): started at
# once only when the model is sure, else confirmed with a button first. Erasing data asks on its own (privacy.py).
CONFIRM_FIRST = frozenset({"human_handover"})
CONFIRM_SURE = 0.9
PICK_WITHIN = dt.timedelta(hours=1)  # a "did you mean…?" pressed later than this starts afresh
NEW_USER_S = 0.001  # the adapter writes a new citizen's created_at as the update's own time (ctx.now)
FALLBACK_INTENT = "nlu_fallback"  # what Rasa's FallbackClassifier predicts below its threshold

# Main-menu entries, in order: (intent that the button triggers, label key). An entry is shown only when a
# capability answers its intent, so the menu never offers what the assistant cannot do.
MENU = (
    ("eid_info", "common.btn_eid"),
    ("procedure_info", "common.btn_procedures"),
    ("check_status", "common.btn_status"),
    ("id_card_renewal", "common.btn_renewal"),
    ("list_reminders", "common.btn_reminders"),
    ("subscribe_news", "common.btn_news"),
    ("human_handover", "common.btn_staff"),
)


class Nlu(Protocol):
    async def parse(self, text: str) -> Understanding: ...


class NluDown(Exception):
    """Raised by an Nlu implementation when the server cannot answer; mapped to a friendly reply."""


class Assistant:
    def __init__(
        self,
        nlu: Nlu,
        capabilities: Sequence[Capability],
        unavailable: tuple[type[Exception], ...] = (NluDown,),
        faq: Faq | None = None,
    ) -> None:
        self.nlu = nlu
        self.faq = faq  # short factual questions answered from the message's words (actions/faq.py)
        self.capabilities = list(capabilities)
        self._unavailable = unavailable
        self.by_intent: dict[str, Capability] = {}
        self.by_callback: dict[str, Capability] = {}
        self.by_command: dict[str, Capability] = {}
        for cap in self.capabilities:
            _check_answers(cap)
            for intent in cap.intents:
                if intent in self.by_intent or intent in SMALL_TALK:
                    raise ValueError(f"intent {intent!r} is answered twice")
                self.by_intent[intent] = cap
            for action in cap.callbacks:
                if action in self.by_callback:
                    raise ValueError(f"callback action {action!r} is owned twice")
                self.by_callback[action] = cap
            for command in cap.commands:
                self.by_command.setdefault(command, cap)  # declared twice: the first in the list answers
        # Each hook's capabilities, in order, found once: the defaults do nothing, so the others are not asked.
        self._deep_links = self._defining("on_deep_link")
        self._text_releases = self._defining("release_text")
        self._menu_extras = self._defining("menu_buttons")
        self._prefetches = self._defining("prefetch")
        self._media_takers = self._defining("wants_media")
        relays = self._defining("on_staff_group")
        self._staff_group = relays[0] if relays else None
        self._observers = self._defining("observe")
        user = bindparam(PROBE_USER, type_=BigInteger)
        probes = [(i, cond) for i, cap in enumerate(self.capabilities) if (cond := cap.text_wait(user)) is not None]
        self._probed = {i for i, _ in probes}
        self._probe: CompoundSelect | None = (
            union_all(*(select(literal_column(str(i))).where(cond) for i, cond in probes)) if probes else None
        )
        self._text_takers = [(i, cap) for i, cap in enumerate(self.capabilities) if "wants_text" in cap.overridden]

    def _defining(self, hook: Hook) -> list[Capability]:
        return [cap for cap in self.capabilities if hook in cap.overridden]

    # ---- menus ---------------------------------------------------------------------------------------

    async def menu_rows(self, ctx: Context) -> tuple[tuple[Button, ...], ...]:
        buttons: list[Button] = []
        for cap in self._menu_extras:
            buttons.extend(await cap.menu_buttons(ctx))
        for intent, label in MENU:
            if intent in self.by_intent:
                buttons.append(Button(ctx.t(label), callbacks.encode("c_intent", intent)))
        other = "en" if ctx.lang == "vi" else "vi"
        buttons.append(Button(ctx.t("common.btn_lang"), callbacks.encode("c_lang", other)))
        return tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))

    async def menu(self, ctx: Context, key: str = "common.menu_title", **values: object) -> Reply:
        return Reply(ctx.t(key, **values), await self.menu_rows(ctx))

    # ---- entry points ----------------------------------------------------------------------------------

    # Each is the citizen's update: does it begin a conversation (decided before the handler runs, counted after it,
    # so the day's one counter row is written, and locked, only from then to the commit)?

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        begins = await self._begins_conversation(inc, ctx)
        return await self._counted(begins, ctx, await self._command(name, args, inc, ctx))

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        begins = await self._begins_conversation(inc, ctx)
        return await self._counted(begins, ctx, await self._text(inc, ctx))

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        begins = await self._begins_conversation(inc, ctx)
        return await self._counted(begins, ctx, await self._callback(inc, ctx))

    async def on_media(self, inc: Incoming, ctx: Context) -> list[Reply]:
        """A photo, sticker, voice note, location or contact. A capability waiting for a photo (a broadcast being
        composed) or relaying messages (an open handover ticket) takes it; otherwise the citizen is told."""
        begins = await self._begins_conversation(inc, ctx)
        return await self._counted(begins, ctx, await self._media(inc, ctx))

    async def _command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        if name in ("start", "menu", "help"):  # the citizen starts over: nothing waits for their next message
            for cap in self._text_releases:
                await cap.release_text(ctx)
        if name == "start":
            if args:
                for cap in self._deep_links:
                    replies = await cap.on_deep_link(args, inc, ctx)
                    if replies and _is_new(ctx):  # arriving by a link is still a first visit: who we are
                        hello = ctx.t("common.welcome", name=inc.display_name)
                        return [Reply(f"{hello}\n\n{ctx.t('common.privacy_short')}"), *replies]
                    if replies:
                        return replies
            return [
                Reply(ctx.t("common.welcome", name=inc.display_name)),
                await self.menu(ctx, "common.privacy_short"),
            ]
        if name in ("help",):
            return [await self.menu(ctx, "common.help")]
        if name == "menu":
            return [await self.menu(ctx)]
        if name == "lang":
            return [self._lang_choice(ctx)]
        owner = self.by_command.get(name)
        if owner is not None:
            return list(await owner.on_command(name, args, inc, ctx))
        return [Reply(ctx.t("common.unknown_command"))]

    async def understand(self, text: str | None) -> Understanding | None:
        """What the NLU makes of a typed message, asked by the channel before the update's transaction opens;
        None for no text, or when the server cannot answer (`on_text` then gives the "use the menu" reply)."""
        if not text or not text.strip() or text.lstrip().startswith("/"):
            return None
        try:
            return await self.nlu.parse(text.strip())
        except self._unavailable:
            return None

    async def prefetch(
        self,
        text: str | None,
        callback: tuple[str, tuple[str, ...]] | None,
        nlu: Understanding | None,
        services: Services,
        user_id: int | None = None,
    ) -> dict[str, object]:
        """Network reads the update may need (a dossier lookup), done by the channel before the update's
        transaction opens, like `understand`; a capability's `prefetch` hook decides from the update and the
        citizen it comes from (`user_id`: a hook may read their rows, e.g. a lookup quota), and its handlers find
        the results in `ctx.fetched`. A hook that fails is logged: its handler fetches then."""
        fetched: dict[str, object] = {}
        for cap in self._prefetches:
            try:
                fetched.update(await cap.prefetch(text, callback, nlu, services, user_id=user_id))
            except Exception as exc:  # never lose the update over a read it may not even need
                log.warning("prefetch.failed", capability=type(cap).__name__, error=type(exc).__name__)
        return fetched

    async def _waiting_for_text(self, ctx: Context) -> list[Capability]:
        """The capabilities that may be waiting for this citizen's typed answer, in order.

        A capability with a `text_wait(user_id)` probe (an EXISTS on its dialogue table: true whenever its
        `wants_text` could be) is asked in one statement together with the others, and its `wants_text` runs only
        when the probe holds; six probes cost one round trip instead of six on every typed message. The statement
        is built once, with the user id as a bound parameter: building and keying a six-way UNION on every
        message was a visible part of the bot's CPU."""
        hits: set[int] = set()
        if self._probe is not None:
            rows = await ctx.session.scalars(self._probe, {PROBE_USER: ctx.user.id})
            hits = {int(i) for i in rows.all()}
        return [cap for i, cap in self._text_takers if i in hits or i not in self._probed]

    async def _text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        text = (inc.text or "").strip()
        if not text:
            return [await self.menu(ctx, "common.empty")]
        spoken = detect(text)
        if spoken and spoken != ctx.user.lang:
            ctx.user.lang = spoken
        # A capability waiting for a typed answer (a dossier code, a date) gets the text first. One that lets the
        # text through and stops waiting (it was clearly something else) has its question put aside: we say so.
        put_aside = False
        for cap in await self._waiting_for_text(ctx):
            if await cap.wants_text(ctx):
                replies = await cap.on_text(inc, ctx)
                if replies:
                    return replies
                put_aside = put_aside or not await cap.wants_text(ctx)
        nlu = inc.nlu
        if nlu is None:
            try:
                nlu = await self.nlu.parse(text)
            except self._unavailable:
                return [await self.menu(ctx, "common.nlu_down")]
        answered = await self.on_understood(replace(inc, nlu=nlu, spoken=spoken), ctx)
        if put_aside and answered:
            first = answered[0]
            answered[0] = replace(first, text=f"<i>{ctx.t('conversation.put_aside')}</i>\n\n{first.text}")
        return answered

    async def on_understood(self, inc: Incoming, ctx: Context) -> list[Reply]:
        nlu = inc.nlu
        assert nlu is not None
        hit = self.faq.match(inc, ctx) if self.faq is not None else None
        if hit is not None:  # the words settle what the model hesitated about, or hold a fact to answer now
            ctx.user.fallbacks_in_row = 0
            if hit.understanding is not None and hit.understanding.intent is not None:
                await self._observe(inc, ctx, hit.understanding.intent)
                routed = replace(inc, nlu=hit.understanding)
                return await self.dispatch(hit.understanding.intent, routed, ctx)
            await self._observe(inc, ctx, f"faq:{hit.entry}")
            return list(hit.replies or [])
        # A message with not one word the assistant knows is nonsense: no reading of it is worth offering as a
        # choice, and it falls back below unless the model is sure of a real intent.
        gibberish = self._nonsense(inc)
        close = [] if gibberish else self._close_alternatives(nlu, ctx)
        if close:  # never guess silently between two readings
            await self._review(inc, ctx, nlu, "ambiguous")
            await self._observe(inc, ctx, None)
            rows = tuple((Button(ctx.t(f"common.intent_label_{i}"), callbacks.encode("c_pick", i)),) for i in close)
            return [Reply(ctx.t("common.did_you_mean"), (*rows, (self._menu_button(ctx),)))]
        threshold = ctx.settings.nlu_fallback_threshold
        nonsense = nlu.intent in (None, FALLBACK_INTENT, "out_of_scope") and gibberish
        if nlu.intent is None or nlu.intent == FALLBACK_INTENT or nlu.confidence < threshold or nonsense:
            await self._observe(inc, ctx, None)
            return await self._fallback(inc, ctx, nlu)
        ctx.user.fallbacks_in_row = 0
        if nlu.intent in CONFIRM_FIRST and nlu.confidence < CONFIRM_SURE:  # a ticket is not opened on a guess
            await self._observe(inc, ctx, nlu.intent)
            label = ctx.t(f"common.intent_label_{nlu.intent}")
            yes = Button(ctx.t("conversation.btn_confirm", what=label), callbacks.encode("c_pick", nlu.intent))
            return [Reply(ctx.t("conversation.confirm", what=label), ((yes,), (self._menu_button(ctx),)))]
        # "Out of scope" is no answer: the understood share in /stats counts only messages that reached one.
        await self._observe(inc, ctx, None if nlu.intent == "out_of_scope" else nlu.intent)
        return await self.dispatch(nlu.intent, inc, ctx)

    async def _callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action == "c_menu":
            return [await self.menu(ctx)]
        if action == "c_lang" and args and args[0] in ("vi", "en"):
            ctx.user.lang = args[0]
            return [await self.menu(ctx, "common.lang_set")]
        if action in ("c_intent", "c_pick") and args:
            ctx.user.fallbacks_in_row = 0
            text = None
            if action == "c_pick":  # "did you mean…?" answered: go on with the message it asked about
                asked = await self._asked(ctx)
                if asked is not None:
                    text, sent_at = asked
                    ctx = replace(ctx, now=sent_at)  # "in 1 minute" counts from when it was sent
            picked = replace(inc, nlu=Understanding(args[0], 1.0), callback=None, text=text)
            return await self.dispatch(args[0], picked, ctx)
        cap = self.by_callback.get(action)
        if cap is None:
            return [await self.menu(ctx, "common.stale_button")]
        return await cap.on_callback(inc, ctx)

    async def _media(self, inc: Incoming, ctx: Context) -> list[Reply]:
        for cap in self._media_takers:
            if await cap.wants_media(inc, ctx):
                return await cap.on_media(inc, ctx)
        if inc.kind == "photo":  # often a photo of an ID card or papers: say not to send those in a chat
            return [await self.menu(ctx, "conversation.photo_warning")]
        return [await self.menu(ctx, "common.not_text")]

    async def on_staff_group(self, inc: Incoming, ctx: Context) -> list[Reply]:
        """A message in the staff group that is not a command: handed to the capability that relays tickets."""
        return await self._staff_group.on_staff_group(inc, ctx) if self._staff_group is not None else []

    # ---- internals ---------------------------------------------------------------------------------------

    async def dispatch(self, intent: str, inc: Incoming, ctx: Context) -> list[Reply]:
        if intent in SMALL_TALK:
            return await self._small_talk(intent, inc, ctx)
        cap = self.by_intent.get(intent)
        if cap is None:
            log.info("intent.unanswered", intent=intent)
            return [await self.menu(ctx, "common.not_available")]
        return await cap.on_intent(inc, ctx)

    async def _small_talk(self, intent: str, inc: Incoming, ctx: Context) -> list[Reply]:
        if intent == "greet":
            return [await self.menu(ctx, "common.greet", name=inc.display_name)]
        if intent == "help":
            return [await self.menu(ctx, "common.help")]
        if intent == "change_language":
            return [self._lang_choice(ctx)]
        if intent == "out_of_scope":
            return [await self.menu(ctx, "common.out_of_scope")]
        key = {"goodbye": "common.goodbye", "thank": "common.thank", "affirm": "common.affirm_alone"}.get(
            intent, "common.deny_alone"
        )
        return [Reply(ctx.t(key), ((self._menu_button(ctx),),))]

    def _nonsense(self, inc: Incoming) -> bool:
        return self.faq is not None and self.faq.is_nonsense(inc.text or "")

    def _lang_choice(self, ctx: Context) -> Reply:
        return Reply(
            ctx.t("common.lang_choose"),
            (
                (
                    Button(ctx.t("common.btn_vi"), callbacks.encode("c_lang", "vi")),
                    Button(ctx.t("common.btn_en"), callbacks.encode("c_lang", "en")),
                ),
            ),
        )

    def _menu_button(self, ctx: Context) -> Button:
        return Button(ctx.t("common.btn_menu"), callbacks.encode("c_menu"))

    def _close_alternatives(self, nlu: Understanding, ctx: Context) -> list[str]:
        """The top intents when the best two are too close to call (never guess silently), unless even the best
        is below the floor: then neither reading is worth offering and the message falls back."""
        ranked = [(i, c) for i, c in nlu.ranking if i != FALLBACK_INTENT]
        if len(ranked) < 2:
            return []
        (first, c1), (second, c2) = ranked[0], ranked[1]
        if c1 - c2 >= ctx.settings.nlu_ambiguity_threshold or c1 < ctx.settings.nlu_ambiguity_floor:
            return []
        picks = [first, second]
        return [i for i in picks if i in self.by_intent or (i in SMALL_TALK and i != "out_of_scope")]

    async def _begins_conversation(self, inc: Incoming, ctx: Context) -> bool:
        """Does this update begin a conversation (actions/stats.py `begins_conversation`)? Decided from the citizen's
        own row, before anything of the update is written. Staff are in none, in their group or in a private chat
        (an admin asking /stats is not a citizen); their role is looked up only when a conversation would begin."""
        if inc.chat_id == ctx.settings.staff_chat_id:
            return False
        if not begins_conversation(ctx.user.last_seen_at, ctx.now, ZoneInfo(ctx.settings.timezone), new=_is_new(ctx)):
            return False
        return await role_of(ctx) is None

    async def _counted(self, begins: bool, ctx: Context, replies: list[Reply]) -> list[Reply]:
        """The update's replies, once the conversation it began (if it did) is counted: by local day, nothing about
        who. The row's last_seen_at moves to now with it: the adapter keeps it to the minute, and a conversation
        begun at 00:00:10 after a message at 23:59:30 must not begin again at 00:00:20."""
        if begins:
            await count_conversation(ctx.session, ctx.now.astimezone(ZoneInfo(ctx.settings.timezone)).date())
            ctx.user.last_seen_at = ctx.now
        return replies

    async def _observe(self, inc: Incoming, ctx: Context, intent: str | None) -> None:
        """Tell the capabilities that keep figures or context (staff statistics, the messages shown to staff on
        a handover) what a typed message was understood as: `intent` None when it was not understood."""
        for cap in self._observers:
            await cap.observe(inc, ctx, intent)

    async def _fallback(self, inc: Incoming, ctx: Context, nlu: Understanding) -> list[Reply]:
        await self._review(inc, ctx, nlu, "fallback")
        ctx.user.fallbacks_in_row += 1
        if ctx.user.fallbacks_in_row >= 2:
            rows = await self.menu_rows(ctx)
            return [Reply(ctx.t("common.fallback_again"), rows)]
        return [await self.menu(ctx, "common.fallback")]

    async def _asked(self, ctx: Context) -> tuple[str, dt.datetime] | None:
        """The message a "did you mean…?" was about and when it was sent: kept (redacted) in the review queue, or,
        for a citizen who said no to that queue, in their ring of recent messages (read as not understood)."""
        if not ctx.user.review_opt_out:
            query = (
                select(NluReview.text, NluReview.created_at.label("at"))
                .where(NluReview.user_id == ctx.user.id, NluReview.reason == "ambiguous")
                .order_by(NluReview.created_at.desc())
            )
        else:
            query = (
                select(RecentMessage.text, RecentMessage.at)
                .where(RecentMessage.user_id == ctx.user.id, RecentMessage.intent.is_(None))
                .order_by(RecentMessage.at.desc(), RecentMessage.id.desc())
            )
        row = (await ctx.session.execute(query.limit(1))).first()
        if row is None:
            return None
        sent_at = _aware(row.at, ctx)
        return (row.text, sent_at) if ctx.now - sent_at <= PICK_WITHIN else None

    async def _review(self, inc: Incoming, ctx: Context, nlu: Understanding, reason: str) -> None:
        if ctx.user.review_opt_out:  # the citizen said no to their messages improving the model (/privacy)
            return
        ctx.session.add(
            NluReview(
                user_id=ctx.user.id,
                text=redact(inc.text or "")[:1000],
                intent=nlu.intent,
                confidence=nlu.confidence,
                ranking=json.dumps([[i, round(c, 4)] for i, c in nlu.ranking[:5]]),
                reason=reason,
                created_at=ctx.now,
            )
        )


def _aware(moment: dt.datetime, ctx: Context) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ctx.now.tzinfo)


def _is_new(ctx: Context) -> bool:
    """The citizen's row was created by this update: its created_at is this update's time, not an earlier one's."""
    created = ctx.user.created_at
    if created is None:  # not written yet: a row made outside the adapter
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=ctx.now.tzinfo)
    return abs((ctx.now - created).total_seconds()) < NEW_USER_S


def _check_answers(cap: Capability) -> None:
    """What a capability declares needs the method that answers it: the default would drop it without a word."""
    needs: tuple[tuple[bool, Hook], ...] = (
        (bool(cap.intents), "on_intent"),
        (bool(cap.callbacks), "on_callback"),
        (bool(cap.commands), "on_command"),
        ("wants_text" in cap.overridden, "on_text"),
        ("wants_media" in cap.overridden, "on_media"),
    )
    missing = [hook for needed, hook in needs if needed and hook not in cap.overridden]
    if missing:
        raise ValueError(f"{type(cap).__name__} declares what it does not answer: no {', '.join(missing)}")
