"""The ID-card renewal capability: asks the date of birth and issue date, tells when the card must be replaced.

Every question about the ID card itself is `id_card_renewal` (docs/intents.md). One that names an aspect ("how
much does re-issuing cost", "where do I apply") is answered at once with the `id_card` procedure's text for that
aspect, a button away from the age rule; one that does not gets the age rule, the date question, and a button to
the procedure.

Privacy: the date of birth is stored (store.models_guides.RenewalDialogue) only between the two questions and
deleted as soon as the answer is shown, when the citizen types something that is not a date, or after
DIALOGUE_TTL by `purge_stale`. The issue date is never stored; neither date is logged.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, delete, exists
from sqlalchemy.ext.asyncio import AsyncSession

from actions.base import Capability, Context
from actions.procedures import SHOW, ProceduresCapability, checked_line
from actions.renewal_rules import next_replacement
from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Incoming, Reply
from store.models_guides import RenewalDialogue

log = structlog.get_logger(__name__)

START = "r_start"  # r_start: ask from the beginning
PICK = "r_pick"  # r_pick|b or i|<digits>: "" top list, YYY decade, YYYY year, YYYYMM month, YYYYMMDD the date
REMIND = "r_remind"  # r_remind|YYYYMMDD: handed to the reminders capability (bot/app.py wires the hook)
callbacks.register(START, PICK, REMIND)

RemindHook = Callable[[Incoming, Context, dt.date], Awaitable[list[Reply]]]

ID_CARD = "id_card"  # the procedure of data/content/procedures.yml: exchanging or re-issuing the card
DIALOGUE_TTL = dt.timedelta(hours=24)
FIRST_DECADE = 1920
FIRST_CARD_YEAR = 2016  # the first citizen-ID (CCCD) cards; older documents are 9-digit CMNDs
_BIRTH, _ISSUE = "b", "i"
_PER_ROW = {"decade": 5, "year": 5, "month": 4, "day": 7}

_DMY = re.compile(r"^\s*(\d{1,2})\s*[/.\-\s]\s*(\d{1,2})\s*[/.\-\s]\s*(\d{4})\s*$")
_ISO = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_YEAR = re.compile(r"^\s*(\d{4})\s*$")


class BadDate(ValueError):
    """The text looks like a date but is not a real one."""


def parse_date_text(text: str) -> dt.date | int | None:
    """A typed date ("15/03/1990", "15-3-1990", "1990-03-15"), a bare year (int), or None if not date-like.

    Raises BadDate for something date-shaped that does not exist (31/02/1990).
    """
    if m := _ISO.match(text):
        year, month, day = (int(g) for g in m.groups())
    elif m := _DMY.match(text):
        day, month, year = (int(g) for g in m.groups())
    elif m := _YEAR.match(text):
        return int(m.group(1))
    else:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise BadDate(text) from None


async def purge_stale(session: AsyncSession, now: dt.datetime) -> int:
    """Delete renewal dialogues abandoned for longer than DIALOGUE_TTL (with the dates of birth they hold)."""
    result = await session.execute(delete(RenewalDialogue).where(RenewalDialogue.started_at < now - DIALOGUE_TTL))
    return int(getattr(result, "rowcount", 0) or 0)


class RenewalCapability(Capability):
    """Answers `id_card_renewal`; owns r_start and r_pick (and r_remind when given a reminder hook)."""

    intents: tuple[str, ...] = ("id_card_renewal",)

    def __init__(
        self, content: Content, remind: RemindHook | None = None, procedures: ProceduresCapability | None = None
    ) -> None:
        self.content = content
        self.remind = remind
        self.procedures = procedures
        self.callbacks: tuple[str, ...] = (START, PICK, REMIND) if remind else (START, PICK)

    # --- the router's entry points --------------------------------------------------------------------

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        nlu = inc.nlu
        aspect = nlu.entity("aspect") if nlu else None
        named = nlu.entity("procedure") if nlu else None
        if self.procedures is not None and aspect is not None and named in (None, ID_CARD):
            # A clear question gets its answer in one reply; the age rule stays one press away.
            log.info("renewal_aspect", aspect=aspect)
            reply = await self.procedures.answer(ctx, ID_CARD, aspect, edit=False)
            when = (Button(ctx.t("renewal.btn_when"), callbacks.encode(START)),)
            return [dataclasses.replace(reply, buttons=(when, *reply.buttons))]
        return [await self._begin(ctx, edit=False)]

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action == REMIND and self.remind is not None:
            due = _date_from_digits(args[0]) if args else None
            if due is not None:
                return await self.remind(inc, ctx, due)
        if action == PICK and len(args) == 2 and args[0] in (_BIRTH, _ISSUE) and (args[1] == "" or args[1].isdigit()):
            return [await self._pick(ctx, args[0], args[1])]
        return [await self._begin(ctx, edit=True)]

    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool]:
        """The router's one-statement probe: a dialogue is open (wants_text then checks it has not expired)."""
        return exists().where(RenewalDialogue.user_id == user_id)

    async def wants_text(self, ctx: Context) -> bool:
        """True while a question is open, so the router hands the next plain-text message to `on_text`."""
        return await self._dialogue(ctx) is not None

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        """A typed date (or year) answering the open question. Returns [] — and closes the dialogue — when
        the text is not date-like, so the router can treat it as a new request."""
        dialogue = await self._dialogue(ctx)
        if dialogue is None:
            return []
        field = _BIRTH if dialogue.birth is None else _ISSUE
        text = inc.text or ""
        if not any(ch.isdigit() for ch in text):
            await self.release_text(ctx)
            return []
        try:
            parsed = parse_date_text(text)
        except BadDate:
            parsed = None
        else:
            if parsed is None and _is_sentence(text):  # "Đăng ký mức 2 ở đâu?" holds a digit, not a date
                await self.release_text(ctx)
                return []
        if parsed is None:
            return [self._question(ctx, field, "", lead=ctx.t("renewal.bad_date"))]
        if isinstance(parsed, int):
            return [self._question(ctx, field, f"{parsed:04d}")]
        return [await self._answer(ctx, dialogue, field, parsed, edit=False)]

    async def release_text(self, ctx: Context) -> None:
        """Stop waiting for a date (the citizen asked something else, or opened the menu); the date of birth goes."""
        dialogue = await ctx.session.get(RenewalDialogue, ctx.user.id)
        if dialogue is not None:
            await ctx.session.delete(dialogue)
            await ctx.session.flush()
            log.info("renewal_abandoned")

    # --- dialogue -------------------------------------------------------------------------------------

    async def _dialogue(self, ctx: Context) -> RenewalDialogue | None:
        row = await ctx.session.get(RenewalDialogue, ctx.user.id)
        if row is not None and row.started_at < ctx.now - DIALOGUE_TTL:
            await ctx.session.delete(row)
            return None
        return row

    async def _begin(self, ctx: Context, *, edit: bool, lead: str | None = None) -> Reply:
        row = await ctx.session.get(RenewalDialogue, ctx.user.id)
        if row is None:
            ctx.session.add(RenewalDialogue(user_id=ctx.user.id, birth=None, started_at=ctx.now))
        else:
            row.birth, row.started_at = None, ctx.now
        await ctx.session.flush()
        log.info("renewal_started")
        # The rule first: "at what age must the card be renewed?" is answered before any date is asked for.
        rule = "\n".join(p for p in (ctx.t("renewal.rule"), checked_line(ctx, "renewal.rule")) if p)
        intro = "\n\n".join(p for p in (lead, rule, ctx.t("renewal.intro")) if p)
        question = self._question(ctx, _BIRTH, "", lead=intro, edit=edit)
        if self.procedures is None:
            return question
        # Documents, fee, time and place of the exchange or re-issue: the procedure's own answers.
        procedure = (Button(ctx.t("renewal.btn_procedure"), callbacks.encode(SHOW, ID_CARD, "")),)
        return dataclasses.replace(question, buttons=(*question.buttons, procedure))

    async def _pick(self, ctx: Context, field: str, digits: str) -> Reply:
        dialogue = await self._dialogue(ctx)
        if field == _ISSUE and (dialogue is None or dialogue.birth is None):
            return await self._begin(ctx, edit=True, lead=ctx.t("renewal.expired_session"))
        if len(digits) != 8:
            return self._question(ctx, field, digits, edit=True)
        day = _date_from_digits(digits)
        if day is None:
            return self._question(ctx, field, "", edit=True)
        if dialogue is None:  # a birth-date button from an old message: open a fresh dialogue
            dialogue = RenewalDialogue(user_id=ctx.user.id, birth=None, started_at=ctx.now)
            ctx.session.add(dialogue)
        return await self._answer(ctx, dialogue, field, day, edit=True)

    async def _answer(self, ctx: Context, dialogue: RenewalDialogue, field: str, day: dt.date, *, edit: bool) -> Reply:
        today = _today(ctx)
        if field == _BIRTH:
            if day > today:
                return self._question(ctx, _BIRTH, "", lead=ctx.t("renewal.birth_in_future"), edit=edit)
            dialogue.birth = day
            await ctx.session.flush()
            return self._question(ctx, _ISSUE, "", edit=edit)
        birth = dialogue.birth
        assert birth is not None
        if day < birth or day > today:
            return self._question(ctx, _ISSUE, "", lead=ctx.t("renewal.issue_impossible"), edit=edit)
        await ctx.session.delete(dialogue)  # the answer is ready: the date of birth goes now
        await ctx.session.flush()
        return self._result(ctx, birth, day, today, edit=edit)

    def _result(self, ctx: Context, birth: dt.date, issued: dt.date, today: dt.date, *, edit: bool) -> Reply:
        rep = next_replacement(birth, issued)
        log.info("renewal_answered", lifetime=rep.lifetime, old_card=rep.issued_before_2024_law)
        parts: list[str | None] = []
        if rep.due is None:
            key = "renewal.old_card_lifetime" if rep.issued_before_2024_law else "renewal.result_lifetime"
            parts += [ctx.t(key)]
        else:
            date_s = rep.due.strftime("%d/%m/%Y")
            if rep.issued_before_2024_law:
                parts.append(ctx.t("renewal.old_card", date=date_s, age=rep.age))
            if rep.due <= today:
                parts.append(ctx.t("renewal.result_overdue", date=date_s, age=rep.age))
            elif not rep.issued_before_2024_law:
                parts.append(ctx.t("renewal.result_due", date=date_s, age=rep.age))
        parts += [ctx.t("renewal.rule"), checked_line(ctx, "renewal.rule"), ctx.t("renewal.where")]
        rows: list[tuple[Button, ...]] = []
        if rep.due is not None and rep.due > today:
            parts.append(ctx.t("renewal.remind_offer"))
            rows.append((Button(ctx.t("renewal.btn_remind"), callbacks.encode(REMIND, rep.due.strftime("%Y%m%d"))),))
        rows.append((Button(ctx.t("renewal.btn_restart"), callbacks.encode(START)),))
        return Reply("\n\n".join(p for p in parts if p), tuple(rows), edit=edit)

    # --- pickers: decade → year → month → day, each a row of buttons ---------------------------------

    def _question(self, ctx: Context, field: str, digits: str, *, lead: str | None = None, edit: bool = False) -> Reply:
        today = _today(ctx)
        buttons: list[Button] = []
        back: str | None = None
        per_row = _PER_ROW["year"]
        if digits == "" and field == _BIRTH:
            text = ctx.t("renewal.ask_birth")
            per_row = _PER_ROW["decade"]
            for start in range(FIRST_DECADE, today.year + 1, 10):
                label = ctx.t("renewal.btn_decade", start=start, end=start + 9)
                buttons.append(Button(label, callbacks.encode(PICK, field, str(start // 10))))
        elif digits == "":
            text = ctx.t("renewal.ask_issue")
            years = range(FIRST_CARD_YEAR, today.year + 1)
            buttons = [Button(str(y), callbacks.encode(PICK, field, str(y))) for y in years]
        elif len(digits) == 3 and FIRST_DECADE <= int(digits) * 10 <= today.year:
            text = ctx.t("renewal.ask_birth_year")
            years = range(int(digits) * 10, min(int(digits) * 10 + 9, today.year) + 1)
            buttons = [Button(str(y), callbacks.encode(PICK, field, str(y))) for y in years]
            back = ""
        elif len(digits) == 4 and FIRST_DECADE <= int(digits) <= today.year:
            year = int(digits)
            text = ctx.t(f"renewal.ask_{'birth' if field == _BIRTH else 'issue'}_month", year=year)
            per_row = _PER_ROW["month"]
            buttons = [
                Button(ctx.t("renewal.btn_month", m=m), callbacks.encode(PICK, field, f"{year:04d}{m:02d}"))
                for m in range(1, 13)
            ]
            back = digits[:3] if field == _BIRTH else ""
        elif len(digits) == 6 and FIRST_DECADE <= int(digits[:4]) <= today.year and 1 <= int(digits[4:]) <= 12:
            year, month = int(digits[:4]), int(digits[4:])
            text = ctx.t(f"renewal.ask_{'birth' if field == _BIRTH else 'issue'}_day", month=month, year=year)
            per_row = _PER_ROW["day"]
            days = range(1, calendar.monthrange(year, month)[1] + 1)
            buttons = [Button(str(d), callbacks.encode(PICK, field, f"{digits}{d:02d}")) for d in days]
            back = digits[:4]
        else:
            return self._question(ctx, field, "", lead=lead, edit=edit)
        rows = [tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row)]
        if back is not None:
            rows.append((Button(ctx.t("renewal.btn_back"), callbacks.encode(PICK, field, back)),))
        if digits or field != _BIRTH:  # on the first question, "start again" would show the same screen
            rows.append((Button(ctx.t("renewal.btn_restart"), callbacks.encode(START)),))
        return Reply(text if lead is None else f"{lead}\n\n{text}", tuple(rows), edit=edit)


def _is_sentence(text: str) -> bool:
    """Two or more words of letters: a question or a request, not a date typed loosely."""
    return len(re.findall(r"[^\W\d_]{2,}", text)) >= 2


def _today(ctx: Context) -> dt.date:
    """The citizen's calendar day (the province's time zone), not UTC's."""
    return ctx.now.astimezone(ZoneInfo(ctx.settings.timezone)).date()


def _date_from_digits(digits: str) -> dt.date | None:
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
