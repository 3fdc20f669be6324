"""Dossier status: look a dossier up by its code on the portal, follow it, and word the change notices."""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from actions import callbacks
from actions.base import Context
from actions.content import Content
from actions.feedback import offer_feedback
from actions.types import Button, Incoming, Reply, Understanding
from portal.client import DossierNotFound, PortalError, PortalUnavailable, code_ref
from portal.codes import find_code, looks_like_code_attempt, normalize_code
from portal.models import Dossier
from portal.poller import DossierSource, next_poll_time
from store.models_dossier import DossierFollow, DossierPrompt

log = structlog.get_logger(__name__)

FOLLOW, UNFOLLOW, LIST, PICK, ASK = "ds_follow", "ds_unfollow", "ds_list", "ds_pick", "ds_ask"
callbacks.register(FOLLOW, UNFOLLOW, LIST, PICK, ASK)

# Telegram start parameters allow only A-Za-z0-9_- (64 characters at most); codes never contain "_",
# so dots travel as "_" and come back unambiguously.
DEEP_LINK_PREFIX = "dossier_"

# Hands a followed dossier's deadlines to reminders, in the update's own transaction: a second session would wait
# on the first one's write lock under SQLite, and the follow and its reminders must commit together anyway.
DeadlinesHook = Callable[[AsyncSession, int, str, list[tuple[str, dt.datetime]]], Awaitable[None]]
_START_PARAM_MAX = 64


def _fetch_key(code: str) -> str:
    return f"dossier:{code}"


def _code_in_update(
    text: str | None, callback: tuple[str, tuple[str, ...]] | None, nlu: Understanding | None
) -> str | None:
    """The dossier code an update may look up: the same places `on_intent`, `on_text`, `on_deep_link` and the
    [Follow]/[pick] buttons take it from."""
    if callback is not None:
        action, args = callback
        return normalize_code(args[0]) if action in (FOLLOW, PICK) and args else None
    if not text:
        return None
    if text.startswith("/"):
        head, _sep, args_text = text.partition(" ")
        if head[1:].split("@", 1)[0].lower() != "start":
            return None
        return decode_start_payload(args_text.strip())
    raw = nlu.entity("dossier_code") if nlu is not None else None
    return normalize_code(raw) or find_code(text)


def encode_start_payload(code: str) -> str:
    payload = DEEP_LINK_PREFIX + code.replace(".", "_")
    if len(payload) > _START_PARAM_MAX:
        raise ValueError("dossier code too long for a start parameter")
    return payload


def decode_start_payload(payload: str) -> str | None:
    """The dossier code in a `/start dossier_...` parameter, or None if the parameter is not one."""
    if not payload.startswith(DEEP_LINK_PREFIX):
        return None
    return normalize_code(payload[len(DEEP_LINK_PREFIX) :].replace("_", "."))


def deep_link(bot_username: str, code: str) -> str:
    """https://t.me/<bot>?start=dossier_... — opens the bot and shows this dossier."""
    return f"https://t.me/{bot_username.lstrip('@')}?start={encode_start_payload(code)}"


def mask_name(name: str) -> str:
    """Mask a name ("Nguyễn Văn An" → "N*** V** A"): the owner recognises it, a stranger learns nothing.

    Every word keeps its first letter; the others become at most three stars (so long names do not show
    their length); the last word, usually the given name, keeps only its first letter.
    """
    words = unicodedata.normalize("NFC", name).split()
    if not words:
        return ""
    masked = [w[0] + "*" * min(len(w) - 1, 3) for w in words[:-1]]
    return " ".join([*masked, words[-1][0]])


def format_amount(amount: int, currency: str, content: Content, lang: str) -> str:
    digits = f"{amount:,}"
    if lang == "vi":
        digits = digits.replace(",", ".")  # Vietnamese groups thousands with dots
    if currency.upper() == "VND":
        return content.text("dossier.amount_vnd", lang, amount=digits)
    return f"{digits} {currency}"


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def format_date(value: dt.datetime, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%d/%m/%Y")


def status_label(content: Content, lang: str, status: int | None) -> str:
    key = f"dossier.status_{status}"
    return content.text(key if content.has(key) else "dossier.status_unknown", lang)


def render_card(content: Content, lang: str, tz: ZoneInfo, dossier: Dossier, *, following: bool = False) -> str:
    """The dossier as the citizen sees it (Telegram HTML; everything from the portal is escaped)."""

    def t(key: str, **values: object) -> str:
        return content.text(f"dossier.{key}", lang, **values)

    status = int(dossier.status.code)
    lines = [
        t("card_title", code=dossier.code),
        t("card_procedure", procedure=dossier.procedure_name),
        t("card_applicant", name=mask_name(dossier.applicant_name)),
        t("card_status", status=status_label(content, lang, status)),
        t("card_next", next=t(f"next_{status}")),
    ]
    if dossier.received_at is not None:
        lines.append(t("card_received", date=format_date(dossier.received_at, tz)))
    if dossier.appointment_at is not None:
        lines.append(t("card_due", date=format_date(dossier.appointment_at, tz)))
    lines.append(t("card_agency", agency=dossier.agency))
    if dossier.supplement is not None:
        lines.append("")
        lines.append(t("card_missing"))
        lines.extend(t("card_missing_item", item=item) for item in dossier.supplement.items)
        if dossier.supplement.deadline is not None:
            lines.append(t("card_missing_deadline", date=format_date(dossier.supplement.deadline, tz)))
        if dossier.supplement.note:
            lines.append(t("card_missing_note", note=dossier.supplement.note))
    if dossier.fee is not None:
        lines.append("")
        lines.append(t("card_fee", amount=format_amount(dossier.fee.amount, dossier.fee.currency, content, lang)))
        if dossier.fee.description:
            lines.append(t("card_fee_description", description=dossier.fee.description))
        if dossier.fee.deadline is not None:
            lines.append(t("card_fee_deadline", date=format_date(dossier.fee.deadline, tz)))
    if following:
        lines.append("")
        lines.append(t("card_following"))
    return "\n".join(lines)


def render_change(content: Content, dossier: Dossier, lang: str, timezone: str = "Asia/Ho_Chi_Minh") -> Reply:
    """The message the poller's `notify` sends when a followed dossier changed."""
    tz = _zone(timezone)
    parts = [content.text("dossier.change_title", lang), render_card(content, lang, tz, dossier)]
    buttons: tuple[tuple[Button, ...], ...] = ()
    if dossier.final:
        parts.append(content.text("dossier.change_ended", lang))
    else:
        label = content.text("dossier.btn_unfollow", lang)
        buttons = ((Button(label, callbacks.encode(UNFOLLOW, dossier.code)),),)
    return Reply("\n\n".join(parts), buttons)


@dataclass(frozen=True)
class _NoDossier:
    reply: Reply
    unavailable: bool = False  # the portal did not answer (as opposed to: it answered "no such dossier")


class DossierCapability:
    """Answers `check_status`; owns the `ds_` buttons; waits for a typed code after asking for one."""

    intents: tuple[str, ...] = ("check_status",)
    callbacks: tuple[str, ...] = (FOLLOW, UNFOLLOW, LIST, PICK, ASK)

    def __init__(
        self,
        *,
        max_follows: int = 10,
        poll_interval_s: float = 1800.0,
        prompt_ttl_s: float = 600.0,
        on_deadlines: DeadlinesHook | None = None,
        service: str = "portal",
    ) -> None:
        self.max_follows = max_follows
        self.poll_interval_s = poll_interval_s
        self.prompt_ttl = dt.timedelta(seconds=prompt_ttl_s)
        self._on_deadlines = on_deadlines
        self._service = service

    # ----------------------------------------------------------------- entry points

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        raw = inc.nlu.entity("dossier_code") if inc.nlu is not None else None
        code = normalize_code(raw) or find_code(inc.text)
        if code is not None:
            await self._clear_prompt(ctx)
            return await self._lookup(code, ctx)
        await self._set_prompt(ctx)
        if raw or looks_like_code_attempt(inc.text):
            return [Reply(ctx.t("dossier.invalid_code"))]
        return [await self._ask(ctx)]

    def text_wait(self, user_id: int) -> ColumnElement[bool]:
        """The router's one-statement probe: a code was asked for (wants_text then checks it has not expired)."""
        return exists().where(DossierPrompt.user_id == user_id)

    async def wants_text(self, ctx: Context) -> bool:
        """True while the assistant waits for this citizen to type a dossier code."""
        prompt = await ctx.session.get(DossierPrompt, ctx.user.id)
        return prompt is not None and prompt.expires_at > ctx.now

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        """The text typed after we asked for a code. [] when it is not one: the router then reads it as usual."""
        code = find_code(inc.text)
        if code is not None:
            await self._clear_prompt(ctx)
            return await self._lookup(code, ctx)
        if looks_like_code_attempt(inc.text):
            return [Reply(ctx.t("dossier.invalid_code"))]
        await self._clear_prompt(ctx)  # the citizen moved on to something else
        return []

    async def on_deep_link(self, payload: str, inc: Incoming, ctx: Context) -> list[Reply]:
        """`/start dossier_<code with dots as _>`; [] when the start parameter is not ours."""
        if not payload.startswith(DEEP_LINK_PREFIX):
            return []
        code = decode_start_payload(payload)
        if code is None:
            return [Reply(ctx.t("dossier.invalid_code"))]
        return await self._lookup(code, ctx)

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action == LIST:
            return [await self._list(ctx)]
        if action == ASK:
            await self._set_prompt(ctx)
            return [await self._ask(ctx)]
        code = normalize_code(args[0]) if args else None
        if code is None:
            return [Reply(ctx.t("dossier.bad_button"))]
        if action == FOLLOW:
            return [await self._follow(code, ctx)]
        if action == UNFOLLOW:
            return [await self._unfollow(code, ctx)]
        if action == PICK:
            return await self._lookup(code, ctx)
        return [Reply(ctx.t("dossier.bad_button"))]

    # ----------------------------------------------------------------- behaviour

    def _portal(self, ctx: Context) -> DossierSource:
        portal: DossierSource = ctx.services[self._service]
        return portal

    async def prefetch(
        self,
        text: str | None,
        callback: tuple[str, tuple[str, ...]] | None,
        nlu: Understanding | None,
        services: Mapping[str, Any],
    ) -> dict[str, object]:
        """Looks up, before the update's transaction opens, the dossier this update may show or follow: the
        portal may take its whole deadline (8 s), and a transaction held that long would hold SQLite's one write
        lock, and so every other citizen's answer, with it. Decided from the update alone (a code in the text or
        the NLU's entity, a deep link, a [Follow] or a followed dossier's button); a code typed without the
        assistant waiting for one costs a lookup nobody reads, which is rare and cheap next to that."""
        code = _code_in_update(text, callback, nlu)
        if code is None or self._service not in services:
            return {}
        portal: DossierSource = services[self._service]
        outcome: object
        try:
            outcome = await portal.get_dossier(code)
        except PortalError as exc:  # DossierNotFound and PortalUnavailable too: the handler words each
            outcome = exc
        return {_fetch_key(code): outcome}

    async def _fetch(self, code: str, ctx: Context) -> Dossier | _NoDossier:
        """The dossier, or the reply that explains why there is none."""
        try:
            fetched = ctx.fetched.get(_fetch_key(code))
            if isinstance(fetched, Dossier):
                return fetched
            if isinstance(fetched, PortalError):
                raise fetched
            # Not looked up beforehand (a caller without the channel's prefetch step, e.g. a direct call).
            return await self._portal(ctx).get_dossier(code)
        except DossierNotFound:
            return _NoDossier(Reply(ctx.t("dossier.not_found", code=code), ((self._other_button(ctx),),)))
        except PortalUnavailable:
            return _NoDossier(Reply(ctx.t("dossier.portal_down")), unavailable=True)
        except PortalError:
            log.warning("dossier_lookup_failed", dossier=code_ref(code))
            return _NoDossier(Reply(ctx.t("dossier.portal_error")))

    async def _lookup(self, code: str, ctx: Context) -> list[Reply]:
        dossier = await self._fetch(code, ctx)
        if isinstance(dossier, _NoDossier):
            return [dossier.reply]
        follow = await self._follow_row(ctx, code)
        ended = False
        if follow is not None and dossier.final:
            # Closed: nothing more to follow, and the code is not kept.
            await ctx.session.delete(follow)
            await ctx.session.flush()
            follow, ended = None, True
            if self._on_deadlines is not None:
                await self._on_deadlines(ctx.session, ctx.user.id, code, [])
        elif follow is not None:
            # The citizen has just seen this state: the poller must not announce it again as news.
            follow.fingerprint = dossier.fingerprint()
            follow.last_status = int(dossier.status.code)
        count = await self._count(ctx)
        text = render_card(ctx.content, ctx.lang, self._tz(ctx), dossier, following=follow is not None)
        if ended:
            text = f"{text}\n\n{ctx.t('dossier.change_ended')}"
        rows: list[tuple[Button, ...]] = []
        if follow is not None:
            rows.append((Button(ctx.t("dossier.btn_unfollow"), callbacks.encode(UNFOLLOW, code)),))
        elif not dossier.final:
            rows.append((Button(ctx.t("dossier.btn_follow"), callbacks.encode(FOLLOW, code)),))
        rows.append(self._nav_row(ctx, count))
        return [await offer_feedback(ctx, "status", f"status:{int(dossier.status.code)}", Reply(text, tuple(rows)))]

    async def _follow(self, code: str, ctx: Context) -> Reply:
        if await self._follow_row(ctx, code) is not None:
            return Reply(ctx.t("dossier.already_following", code=code), self._unfollow_rows(ctx, code))
        count = await self._count(ctx)
        if count >= self.max_follows:
            return Reply(ctx.t("dossier.follow_limit", limit=self.max_follows), (self._nav_row(ctx, count),))
        result = await self._fetch(code, ctx)
        dossier: Dossier | None = None
        if isinstance(result, Dossier):
            dossier = result
        elif not result.unavailable:
            return result.reply  # unknown code or unreadable answer: nothing to follow
        if dossier is not None and dossier.final:
            return Reply(ctx.t("dossier.follow_final", code=code))
        follow = DossierFollow(
            user_id=ctx.user.id,
            code=code,
            created_at=ctx.now,
            failures=0,
            # Without a fingerprint the poller announces the first state it sees, so a follow made while the
            # portal is down is polled at once and the citizen still gets the status when the portal is back.
            fingerprint=dossier.fingerprint() if dossier else None,
            last_status=int(dossier.status.code) if dossier else None,
            next_poll_at=next_poll_time(code, ctx.now, self.poll_interval_s) if dossier else ctx.now,
        )
        ctx.session.add(follow)
        await ctx.session.flush()
        log.info("dossier_followed", dossier=code_ref(code), follows=count + 1)
        if dossier is not None and self._on_deadlines is not None:
            await self._on_deadlines(ctx.session, ctx.user.id, code, dossier.deadlines())
        key = "dossier.followed" if dossier is not None else "dossier.followed_portal_down"
        return Reply(ctx.t(key, code=code), self._unfollow_rows(ctx, code))

    async def _unfollow(self, code: str, ctx: Context) -> Reply:
        follow = await self._follow_row(ctx, code)
        if follow is None:
            count = await self._count(ctx)
            return Reply(ctx.t("dossier.not_following", code=code), (self._nav_row(ctx, count),))
        await ctx.session.delete(follow)
        await ctx.session.flush()
        count = await self._count(ctx)
        log.info("dossier_unfollowed", dossier=code_ref(code))
        if self._on_deadlines is not None:
            await self._on_deadlines(ctx.session, ctx.user.id, code, [])
        return Reply(ctx.t("dossier.unfollowed", code=code), (self._nav_row(ctx, count),))

    async def _list(self, ctx: Context) -> Reply:
        follows = await self._follows(ctx)
        if not follows:
            return Reply(ctx.t("dossier.list_empty"), ((self._other_button(ctx),),))
        rows = [*self._follow_buttons(ctx, follows), (self._other_button(ctx),)]
        text = ctx.t("dossier.list_title", count=len(follows), limit=self.max_follows)
        return Reply(text, tuple(rows))

    async def _ask(self, ctx: Context) -> Reply:
        follows = await self._follows(ctx)
        if not follows:
            return Reply(ctx.t("dossier.ask_code"))
        text = f"{ctx.t('dossier.ask_code')}\n\n{ctx.t('dossier.ask_code_followed')}"
        return Reply(text, tuple(self._follow_buttons(ctx, follows)))

    # ----------------------------------------------------------------- storage and buttons

    async def _set_prompt(self, ctx: Context) -> None:
        prompt = await ctx.session.get(DossierPrompt, ctx.user.id)
        if prompt is None:
            ctx.session.add(DossierPrompt(user_id=ctx.user.id, expires_at=ctx.now + self.prompt_ttl))
        else:
            prompt.expires_at = ctx.now + self.prompt_ttl

    async def _clear_prompt(self, ctx: Context) -> None:
        await ctx.session.execute(delete(DossierPrompt).where(DossierPrompt.user_id == ctx.user.id))

    async def _follow_row(self, ctx: Context, code: str) -> DossierFollow | None:
        return await ctx.session.scalar(
            select(DossierFollow).where(DossierFollow.user_id == ctx.user.id, DossierFollow.code == code)
        )

    async def _follows(self, ctx: Context) -> list[DossierFollow]:
        rows = await ctx.session.scalars(
            select(DossierFollow).where(DossierFollow.user_id == ctx.user.id).order_by(DossierFollow.created_at)
        )
        return list(rows.all())

    async def _count(self, ctx: Context) -> int:
        n = await ctx.session.scalar(
            select(func.count()).select_from(DossierFollow).where(DossierFollow.user_id == ctx.user.id)
        )
        return int(n or 0)

    def _follow_buttons(self, ctx: Context, follows: list[DossierFollow]) -> list[tuple[Button, ...]]:
        return [
            (
                Button(
                    ctx.t("dossier.btn_item", code=f.code, status=status_label(ctx.content, ctx.lang, f.last_status)),
                    callbacks.encode(PICK, f.code),
                ),
            )
            for f in follows
        ]

    def _nav_row(self, ctx: Context, count: int) -> tuple[Button, ...]:
        if count == 0:
            return (self._other_button(ctx),)
        return (Button(ctx.t("dossier.btn_list", count=count), callbacks.encode(LIST)), self._other_button(ctx))

    def _other_button(self, ctx: Context) -> Button:
        return Button(ctx.t("dossier.btn_other"), callbacks.encode(ASK))

    def _unfollow_rows(self, ctx: Context, code: str) -> tuple[tuple[Button, ...], ...]:
        return ((Button(ctx.t("dossier.btn_unfollow"), callbacks.encode(UNFOLLOW, code)),),)

    def _tz(self, ctx: Context) -> ZoneInfo:
        return _zone(ctx.settings.timezone)
