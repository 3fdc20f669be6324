"""Dossier status: look a dossier up by its code on the portal, follow it, and word the change notices.

A bare code shows only what the portal makes public (procedure and status stage); the full card and following
need the second factor, the last 4 digits of the applicant's phone number, which the portal checks. New codes
per citizen per hour are counted in the database, and a per-process token bucket keeps a burst of lookups from
reaching the portal (and opening its breaker for everyone)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.base import Capability, Context, NotWired, Services
from actions.feedback import offer_feedback
from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Incoming, Reply, Understanding
from portal.budget import LookupBudget
from portal.client import DossierNotFound, PortalError, PortalUnavailable, VerificationFailed, code_ref
from portal.codes import find_code, looks_like_code_attempt, normalize_code
from portal.errors import count_error
from portal.models import Dossier
from portal.poller import DossierSource, next_poll_time
from store.models import User
from store.models_dossier import DossierFollow, DossierLookup, DossierPrompt

log = structlog.get_logger(__name__)

FOLLOW, UNFOLLOW, LIST, PICK, ASK, VERIFY = "ds_follow", "ds_unfollow", "ds_list", "ds_pick", "ds_ask", "ds_verify"
callbacks.register(FOLLOW, UNFOLLOW, LIST, PICK, ASK, VERIFY)

# Telegram start parameters allow only A-Za-z0-9_- (64 characters at most); codes never contain "_",
# so dots travel as "_" and come back unambiguously.
DEEP_LINK_PREFIX = "dossier_"

# Hands a followed dossier's deadlines to reminders, in the update's own transaction: a second session would wait
# on the first one's write lock under SQLite, and the follow and its reminders must commit together anyway.
DeadlinesHook = Callable[[AsyncSession, int, str, list[tuple[str, dt.datetime]]], Awaitable[None]]
_START_PARAM_MAX = 64

_HOUR = dt.timedelta(hours=1)
_LOOKUP_MEMORY = dt.timedelta(days=1)  # a code looked up longer ago than this counts as new again
_KEY_TTL = dt.timedelta(hours=1)  # how long a verified lookup lets the citizen follow without the digits again
_DIGITS = re.compile(r"\s*(\d{4})\s*")
_DIGITISH = re.compile(r"^[\d\s.\-]{1,12}$")  # a short run of digits: a mistyped answer to the digits question


BUSY = "busy"  # what `prefetch` leaves when the lookup budget was spent: the handler says "try in a minute"


def _fetch_key(code: str) -> str:
    return f"dossier:{code}"


def _verify_key(code: str) -> str:
    return f"dossier-verify:{code}"


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


def code_digest(code: str, secret: str) -> str:
    """The keyed hash a looked-up code is stored as: the quota and the button check compare digests, and the
    table reveals no code (the key is the portal client secret, which only the bot knows)."""
    return hmac.new(b"dossier-lookup\x00" + secret.encode(), code.encode(), hashlib.sha256).hexdigest()


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
        t("card_status", status=status_label(content, lang, status)),
    ]
    if not dossier.full:
        # The public view of a bare code: the portal sent nothing more, and nothing more is shown.
        lines.append("")
        lines.append(t("card_public"))
        return "\n".join(lines)
    if dossier.applicant_name:
        lines.insert(2, t("card_applicant", name=mask_name(dossier.applicant_name)))
    lines.append(t("card_next", next=t(f"next_{status}")))
    if dossier.received_at is not None:
        lines.append(t("card_received", date=format_date(dossier.received_at, tz)))
    if dossier.appointment_at is not None:
        lines.append(t("card_due", date=format_date(dossier.appointment_at, tz)))
    if dossier.agency:
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


class DossierCapability(Capability):
    """Answers `check_status`; owns the `ds_` buttons; waits for a typed code after asking for one."""

    intents: tuple[str, ...] = ("check_status",)
    callbacks: tuple[str, ...] = (FOLLOW, UNFOLLOW, LIST, PICK, ASK, VERIFY)

    def __init__(
        self,
        *,
        max_follows: int = 10,
        poll_interval_s: float = 1800.0,
        prompt_ttl_s: float = 600.0,
        on_deadlines: DeadlinesHook | None = None,
        lookups_per_hour: int = 10,
        budget: LookupBudget | None = None,
        verify_tries: int = 3,
        verify_lock_s: float = 1800.0,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        hash_secret: str | None = None,
    ) -> None:
        self.max_follows = max_follows
        self.poll_interval_s = poll_interval_s
        self.prompt_ttl = dt.timedelta(seconds=prompt_ttl_s)
        self._on_deadlines = on_deadlines
        self.lookups_per_hour = lookups_per_hour
        self.budget = budget if budget is not None else LookupBudget(1.0, 10)
        self.verify_tries = verify_tries
        self.verify_lock = dt.timedelta(seconds=verify_lock_s)
        # For `prefetch`: its own short reads (and the quota row's write) before the update's transaction opens.
        self._sessions = sessions
        self._hash_secret = hash_secret

    # ----------------------------------------------------------------- entry points

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        raw = inc.nlu.entity("dossier_code") if inc.nlu is not None else None
        code = normalize_code(raw) or find_code(inc.text)
        if code is not None:
            replies = await self._lookup(code, ctx)
            await self._clear_prompt(ctx)
            return replies
        await self._set_prompt(ctx)
        if raw or looks_like_code_attempt(inc.text):
            return [Reply(ctx.t("dossier.invalid_code"))]
        return [await self._ask(ctx)]

    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool]:
        """The router's one-statement probe: a code was asked for (wants_text then checks it has not expired)."""
        return exists().where(DossierPrompt.user_id == user_id)

    async def wants_text(self, ctx: Context) -> bool:
        """True while the assistant waits for this citizen to type a dossier code."""
        prompt = await ctx.session.get(DossierPrompt, ctx.user.id)
        return prompt is not None and prompt.expires_at > ctx.now

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        """The text typed after we asked for a code, or for a dossier's phone digits. [] when it is neither: the
        router then reads it as usual."""
        code = find_code(inc.text)
        if code is not None:
            replies = await self._lookup(code, ctx)
            await self._clear_prompt(ctx)
            return replies
        prompt = await ctx.session.get(DossierPrompt, ctx.user.id)
        if prompt is not None and prompt.verify_code is not None:
            digits = _DIGITS.fullmatch(inc.text or "")
            if digits is not None:
                return await self._verify(prompt.verify_code, digits[1], ctx)
            if _DIGITISH.match((inc.text or "").strip()):
                return [Reply(ctx.t("dossier.verify_format"))]
        elif looks_like_code_attempt(inc.text):
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
            # Only a dossier this citizen looked up or follows: the payload is theirs to forge, not a code's key.
            if not await self._reached(code, ctx):
                log.info("dossier_pick_refused", dossier=code_ref(code))
                return [Reply(ctx.t("dossier.bad_button"))]
            return await self._lookup(code, ctx)
        if action == VERIFY:
            return [await self._ask_digits(code, ctx)]
        return [Reply(ctx.t("dossier.bad_button"))]

    # ----------------------------------------------------------------- behaviour

    def _portal(self, ctx: Context) -> DossierSource:
        if ctx.services.portal is None:
            raise NotWired("no portal client")
        return ctx.services.portal

    async def prefetch(
        self,
        text: str | None,
        callback: tuple[str, tuple[str, ...]] | None,
        nlu: Understanding | None,
        services: Services,
        user_id: int | None = None,
    ) -> dict[str, object]:
        """Calls the portal, when this update needs it, before the update's transaction opens: a portal waiting
        out its deadline (8 s) inside the transaction would hold SQLite's one write lock, and every other
        citizen's answer with it. The same gate as the handlers decides first, from the citizen's rows (a short
        read): a new code over the hourly quota or a code never reached is not looked up, and a new code is
        counted (a short write) before the portal sees it. The handlers find the outcome in `ctx.fetched`; without
        a citizen (a caller that does not say who) nothing is fetched and they call the portal themselves."""
        portal = services.portal
        if user_id is None or self._sessions is None or self._hash_secret is None or portal is None:
            return {}
        now = dt.datetime.now(dt.UTC)
        code = _code_in_update(text, callback, nlu)
        digits = _DIGITS.fullmatch(text or "") if code is None and callback is None else None
        if code is None and digits is None:
            return {}
        async with self._sessions() as session:
            if digits is not None:
                prompt = await session.get(DossierPrompt, user_id)
                if prompt is None or prompt.verify_code is None or prompt.expires_at <= now:
                    return {}
                code = prompt.verify_code
            assert code is not None
            digest = code_digest(code, self._hash_secret)
            follow = await session.scalar(
                select(DossierFollow).where(DossierFollow.user_id == user_id, DossierFollow.code == code)
            )
            lookup = await session.scalar(
                select(DossierLookup).where(DossierLookup.user_id == user_id, DossierLookup.code_hash == digest)
            )
            recent = await session.scalar(
                select(func.count())
                .select_from(DossierLookup)
                .where(DossierLookup.user_id == user_id, DossierLookup.first_at > now - _HOUR)
            )
        locked = lookup is not None and lookup.locked_until is not None and lookup.locked_until > now
        if digits is not None:  # the second factor for the dossier the citizen was asked about
            if (lookup is None and follow is None) or locked:
                return {}
            if not self.budget.take():
                return {_verify_key(code): BUSY}
            return {_verify_key(code): await _outcome(portal.get_dossier(code, phone_last4=digits[1]))}
        action = callback[0] if callback is not None else None
        fresh = lookup is None or lookup.last_at <= now - _LOOKUP_MEMORY
        if action == FOLLOW:
            key = None if lookup is None else self._key_for(None, lookup, now)
            if follow is not None or key is None:
                return {}  # already followed, or the digits are asked for first: nothing to read
        else:
            if action == PICK and follow is None and fresh:
                return {}  # a code this citizen never reached: the handler refuses it
            if follow is None and fresh and int(recent or 0) >= self.lookups_per_hour:
                return {}  # over the quota: the handler says so
            key = self._key_for(follow, lookup, now)
        if not self.budget.take():
            return {_fetch_key(code): BUSY}
        if follow is None and fresh:
            await self._count_new(user_id, digest, now)
        return {_fetch_key(code): await _outcome(self._read(portal, code, key))}

    async def _count_new(self, user_id: int, digest: str, now: dt.datetime) -> None:
        """A new code counts against the quota before the portal sees it (its own short transaction)."""
        assert self._sessions is not None
        async with self._sessions() as session, session.begin():
            if await session.get(User, user_id) is None:
                return  # a citizen's first update: their row comes with it, and the handler counts the code then
            await session.execute(
                delete(DossierLookup).where(
                    DossierLookup.user_id == user_id, DossierLookup.last_at < now - _LOOKUP_MEMORY
                )
            )
            session.add(DossierLookup(user_id=user_id, code_hash=digest, first_at=now, last_at=now, failures=0))

    async def _read(self, portal: DossierSource, code: str, key: str | None) -> Dossier:
        """The full view with the citizen's dossier key, else the public view (also when the key was revoked)."""
        try:
            return await portal.get_dossier(code, key=key)
        except VerificationFailed:
            if key is None:
                raise
            log.info("dossier_key_refused", dossier=code_ref(code))
            return await portal.get_dossier(code)

    async def _fetch(self, code: str, ctx: Context, *, key: str | None = None) -> Dossier | _NoDossier:
        """The dossier (its full view with a valid dossier key, else its public view), or the reply that explains
        why there is none: fetched by `prefetch`, else here (before the handler's first write)."""
        try:
            fetched = ctx.fetched.get(_fetch_key(code))
            if isinstance(fetched, Dossier):
                return fetched
            if isinstance(fetched, PortalError):
                raise fetched
            return await self._read(self._portal(ctx), code, key)
        except PortalError as exc:
            return await self._no_dossier(exc, code, ctx)

    async def _no_dossier(self, exc: PortalError, code: str, ctx: Context) -> _NoDossier:
        """The reply for a lookup the portal did not answer with a dossier; a portal error (not an unknown code) is
        counted for the staff dashboard by kind and local day (portal/errors.py), once per lookup."""
        await count_error(ctx.session, ctx.now.astimezone(self._tz(ctx)).date(), exc)
        if isinstance(exc, DossierNotFound):
            return _NoDossier(Reply(ctx.t("dossier.not_found", code=code), ((self._other_button(ctx),),)))
        if isinstance(exc, PortalUnavailable):
            return _NoDossier(Reply(ctx.t("dossier.portal_down")), unavailable=True)
        log.warning("dossier_lookup_failed", dossier=code_ref(code))
        return _NoDossier(Reply(ctx.t("dossier.portal_error")))

    async def _gate(self, code: str, ctx: Context) -> tuple[DossierFollow | None, DossierLookup | None, Reply | None]:
        """May this citizen look this code up now? Their follow and lookup rows, and the refusal if not: a new code
        over the hourly quota, or the process's lookup budget spent (then the portal is not called at all)."""
        with ctx.session.no_autoflush:  # reads only: nothing is written (no write lock taken) before the portal call
            follow = await self._follow_row(ctx, code)
            lookup = await self._lookup_row(ctx, code)
            if follow is None and (lookup is None or self._forgotten(lookup, ctx)):
                recent = await ctx.session.scalar(
                    select(func.count())
                    .select_from(DossierLookup)
                    .where(DossierLookup.user_id == ctx.user.id, DossierLookup.first_at > ctx.now - _HOUR)
                )
                if int(recent or 0) >= self.lookups_per_hour:
                    log.info("dossier_quota_refused", user=ctx.user.id, limit=self.lookups_per_hour)
                    return follow, lookup, Reply(ctx.t("dossier.quota", limit=self.lookups_per_hour))
        fetched = ctx.fetched.get(_fetch_key(code))
        if fetched == BUSY or (fetched is None and not self.budget.take()):
            log.warning("dossier_lookup_budget_spent", dossier=code_ref(code))
            return follow, lookup, Reply(ctx.t("dossier.busy"))
        return follow, lookup, None

    async def _lookup(self, code: str, ctx: Context) -> list[Reply]:
        follow, lookup, refusal = await self._gate(code, ctx)
        if refusal is not None:
            return [refusal]
        dossier = await self._fetch(code, ctx, key=self._key_for(follow, lookup, ctx.now))
        if isinstance(dossier, _NoDossier):
            if not dossier.unavailable:  # the portal answered: the code counts, found or not
                await self._record(code, ctx, lookup)
            return [dossier.reply]
        await self._record(code, ctx, lookup)
        return await self._show(code, dossier, follow, ctx)

    async def _show(self, code: str, dossier: Dossier, follow: DossierFollow | None, ctx: Context) -> list[Reply]:
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
        elif not dossier.full:  # a closed dossier too: its full card says why and what now
            rows.append((Button(ctx.t("dossier.btn_verify"), callbacks.encode(VERIFY, code)),))
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
        with ctx.session.no_autoflush:
            lookup = await self._lookup_row(ctx, code)
        if lookup is None:  # a code this citizen never looked up: a forged or stale button
            log.info("dossier_follow_refused", dossier=code_ref(code))
            return Reply(ctx.t("dossier.bad_button"))
        key = self._key_for(None, lookup, ctx.now)
        if key is None:  # following reveals changes over time: it needs the second factor too
            return await self._ask_digits(code, ctx)
        fetched = ctx.fetched.get(_fetch_key(code))
        if fetched == BUSY or (fetched is None and not self.budget.take()):
            return Reply(ctx.t("dossier.busy"))
        result = await self._fetch(code, ctx, key=key)
        dossier: Dossier | None = None
        if isinstance(result, Dossier):
            if not result.full:  # the portal no longer takes the key: ask for the digits again
                lookup.access_key = lookup.key_until = None
                return await self._ask_digits(code, ctx)
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
            access_key=key,
        )
        ctx.session.add(follow)
        await ctx.session.flush()
        log.info("dossier_followed", dossier=code_ref(code), follows=count + 1)
        if dossier is not None and self._on_deadlines is not None:
            await self._on_deadlines(ctx.session, ctx.user.id, code, dossier.deadlines())
        key = "dossier.followed" if dossier is not None else "dossier.followed_portal_down"
        return Reply(ctx.t(key, code=code), self._unfollow_rows(ctx, code))

    async def _ask_digits(self, code: str, ctx: Context) -> Reply:
        """Ask for the second factor of a dossier the citizen reached (looked up or follows)."""
        with ctx.session.no_autoflush:
            lookup = await self._lookup_row(ctx, code)
            if lookup is None and await self._follow_row(ctx, code) is None:
                log.info("dossier_verify_refused", dossier=code_ref(code))
                return Reply(ctx.t("dossier.bad_button"))
        if lookup is not None and self._locked(lookup, ctx):
            return Reply(ctx.t("dossier.verify_locked", code=code, minutes=self._lock_minutes(lookup, ctx)))
        await self._set_prompt(ctx, verify_code=code)
        return Reply(ctx.t("dossier.verify_ask", code=code))

    async def _verify(self, code: str, digits: str, ctx: Context) -> list[Reply]:
        """The citizen typed the last 4 digits of the phone number for `code`: the portal checks them (the digits
        are sent, never stored nor logged); a right answer shows the full card and keeps the portal's dossier key
        for following, `verify_tries` wrong ones lock the code for this citizen for `verify_lock`."""
        with ctx.session.no_autoflush:
            follow = await self._follow_row(ctx, code)
            lookup = await self._lookup_row(ctx, code)
        if lookup is None and follow is None:
            await self._clear_prompt(ctx)
            return [Reply(ctx.t("dossier.bad_button"))]
        if lookup is not None and self._locked(lookup, ctx):
            await self._clear_prompt(ctx)
            return [Reply(ctx.t("dossier.verify_locked", code=code, minutes=self._lock_minutes(lookup, ctx)))]
        fetched = ctx.fetched.get(_verify_key(code))
        if fetched == BUSY or (fetched is None and not self.budget.take()):
            return [Reply(ctx.t("dossier.busy"))]
        try:
            if isinstance(fetched, PortalError):
                raise fetched
            dossier = (
                fetched
                if isinstance(fetched, Dossier)
                else await self._portal(ctx).get_dossier(code, phone_last4=digits)
            )
        except VerificationFailed:
            row = await self._record(code, ctx, lookup)
            row.failures += 1
            log.info("dossier_verify_failed", dossier=code_ref(code), failures=row.failures)
            if row.failures < self.verify_tries:
                return [Reply(ctx.t("dossier.verify_wrong", left=self.verify_tries - row.failures))]
            row.failures, row.locked_until = 0, ctx.now + self.verify_lock
            row.access_key = row.key_until = None
            await self._clear_prompt(ctx)
            return [Reply(ctx.t("dossier.verify_locked", code=code, minutes=self._lock_minutes(row, ctx)))]
        except PortalError as exc:
            return [(await self._no_dossier(exc, code, ctx)).reply]
        row = await self._record(code, ctx, lookup)
        row.failures = 0
        if dossier.full and dossier.dossier_key:
            row.access_key, row.key_until = dossier.dossier_key, ctx.now + _KEY_TTL
            if follow is not None:
                follow.access_key = dossier.dossier_key
        log.info("dossier_verified", dossier=code_ref(code))
        await self._clear_prompt(ctx)
        return await self._show(code, dossier, follow, ctx)

    async def _reached(self, code: str, ctx: Context) -> bool:
        """Did this citizen legitimately reach this code: do they follow it, or did they look it up themselves?"""
        digest = self._digest(code, ctx)
        found = await ctx.session.scalar(
            select(
                or_(
                    exists().where(DossierFollow.user_id == ctx.user.id, DossierFollow.code == code),
                    exists().where(
                        and_(
                            DossierLookup.user_id == ctx.user.id,
                            DossierLookup.code_hash == digest,
                            DossierLookup.last_at > ctx.now - _LOOKUP_MEMORY,
                        )
                    ),
                )
            )
        )
        return bool(found)

    async def _lookup_row(self, ctx: Context, code: str) -> DossierLookup | None:
        digest = self._digest(code, ctx)
        return await ctx.session.scalar(
            select(DossierLookup).where(DossierLookup.user_id == ctx.user.id, DossierLookup.code_hash == digest)
        )

    async def _record(self, code: str, ctx: Context, lookup: DossierLookup | None) -> DossierLookup:
        """Count this code as looked up by the citizen (a new one once; one seen again keeps its first time)."""
        if lookup is None:
            # Codes looked up longer ago than a day are forgotten (the quota and the button check need no more).
            await ctx.session.execute(
                delete(DossierLookup).where(
                    DossierLookup.user_id == ctx.user.id, DossierLookup.last_at < ctx.now - _LOOKUP_MEMORY
                )
            )
            lookup = DossierLookup(
                user_id=ctx.user.id,
                code_hash=self._digest(code, ctx),
                first_at=ctx.now,
                last_at=ctx.now,
                failures=0,
            )
            ctx.session.add(lookup)
        else:
            if self._forgotten(lookup, ctx):
                lookup.first_at = ctx.now
            lookup.last_at = ctx.now
        return lookup

    def _digest(self, code: str, ctx: Context) -> str:
        return code_digest(code, self._hash_secret or ctx.settings.portal_client_secret.get_secret_value())

    def _forgotten(self, lookup: DossierLookup, ctx: Context) -> bool:
        return lookup.last_at <= ctx.now - _LOOKUP_MEMORY

    def _locked(self, lookup: DossierLookup, ctx: Context) -> bool:
        return lookup.locked_until is not None and lookup.locked_until > ctx.now

    def _lock_minutes(self, lookup: DossierLookup, ctx: Context) -> int:
        left = (lookup.locked_until - ctx.now).total_seconds() if lookup.locked_until else 0.0
        return max(1, -(-int(left) // 60))

    def _key_for(self, follow: DossierFollow | None, lookup: DossierLookup | None, now: dt.datetime) -> str | None:
        """The portal's dossier key this citizen holds for the code, if any: their follow's, or a recent
        verification's."""
        if follow is not None and follow.access_key:
            return follow.access_key
        if lookup is not None and lookup.access_key and lookup.key_until is not None and lookup.key_until > now:
            return lookup.access_key
        return None

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

    async def _set_prompt(self, ctx: Context, verify_code: str | None = None) -> None:
        """Wait for a typed code, or (verify_code) for the last 4 phone digits of that dossier."""
        prompt = await ctx.session.get(DossierPrompt, ctx.user.id)
        if prompt is None:
            ctx.session.add(
                DossierPrompt(user_id=ctx.user.id, expires_at=ctx.now + self.prompt_ttl, verify_code=verify_code)
            )
        else:
            prompt.expires_at = ctx.now + self.prompt_ttl
            prompt.verify_code = verify_code

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


async def purge_lookups(session: AsyncSession, now: dt.datetime) -> None:
    """Forget looked-up codes (their hashes, wrong tries, dossier keys) a day after their last use, unless a lock
    on them still runs: the quota and the button check need no more (the hourly purge calls this)."""
    await session.execute(
        delete(DossierLookup).where(
            DossierLookup.last_at < now - _LOOKUP_MEMORY,
            or_(DossierLookup.locked_until.is_(None), DossierLookup.locked_until < now),
        )
    )


async def _outcome(call: Awaitable[Dossier]) -> object:
    """The dossier, or the portal's error for the handler to word (DossierNotFound, PortalUnavailable, ...)."""
    try:
        return await call
    except PortalError as exc:
        return exc
