"""The reminders capability: set one by sentence (confirmed with buttons), list, cancel, and act on a reminder.

The reminder being set up lives in the database (store.models_reminders.ReminderDraft), so a restart between
the question and the answer loses nothing; sending is the dispatcher's job (reminders.dispatcher). What the citizen
typed is redacted (core.pii) before it is read, so no ID or phone number reaches a draft, a reminder or a reply,
and a draft left unconfirmed expires after `draft_ttl` (the scheduled purge deletes it: reminders.store).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, delete, exists

from actions.base import Capability, Context
from core.pii import ID, PHONE, redact
from core.text import fold
from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Incoming, Reply
from reminders.messages import (
    ACTIONS,
    ALTERNATIVE,
    CANCEL,
    CANCEL_ALL,
    CONFIRM,
    DONE,
    EDIT,
    LIST,
    SNOOZE,
    STOP,
    TOMORROW,
    Formatter,
)
from reminders.store import (
    DEFAULT_CAP,
    TooManyReminders,
    cancel,
    cancel_all,
    count_open,
    create_reminder,
    deadline_end,
    follow_up,
    mark_done,
    morning_of,
    owned,
    upcoming,
)
from reminders.when import DEFAULT_TIME, VN_TZ, When, is_quiet, parse_when, resolve_default
from store.models_reminders import OPEN_STATES, SOURCE_APP, SOURCE_CITIZEN, Reminder, ReminderDraft

log = structlog.get_logger(__name__)

DRAFT_TTL = dt.timedelta(hours=1)
SNOOZE_FOR = dt.timedelta(hours=1)
RENEWAL_LEAD = dt.timedelta(days=30)  # "remind me 30 days before" the ID card must be replaced
_ASK, _CHOOSE, _CONFIRM = "ask", "choose", "confirm"
# Typed answers that mean [Yes] while a confirmation is open (folded: lower case, no diacritics).
_YES = frozenset({"dung", "dung roi", "dung vay", "ok", "oke", "okay", "yes", "y", "co", "u", "uh", "um", "dong y"})
_PER_ROW = 4
_BODY = "\x00body\x00"  # stands for a reminder's HTML body in a template until it is put in


def _fold(text: str) -> str:
    return fold(text.lower().strip(" .!?"))


class ReminderCapability(Capability):
    """Answers set_reminder / list_reminders / cancel_reminder and owns the `rm_` buttons."""

    intents: tuple[str, ...] = ("set_reminder", "list_reminders", "cancel_reminder")
    callbacks: tuple[str, ...] = ACTIONS

    def __init__(
        self, content: Content, *, tz: ZoneInfo = VN_TZ, cap: int = DEFAULT_CAP, draft_ttl: dt.timedelta = DRAFT_TTL
    ) -> None:
        self.content = content
        self.tz = tz
        self.cap = cap
        self.draft_ttl = draft_ttl
        self.format = Formatter(content, tz)

    # ---- the router's entry points -------------------------------------------------------------------

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        intent = inc.nlu.intent if inc.nlu else None
        if intent == "list_reminders":
            return [await self._list(ctx)]
        if intent == "cancel_reminder":
            return [await self._list(ctx, cancelling=True)]
        return [await self._request(redact(inc.text or ""), ctx)]

    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool]:
        """The router's one-statement probe: a draft exists (wants_text then checks it has not expired)."""
        return exists().where(ReminderDraft.user_id == user_id)

    async def wants_text(self, ctx: Context) -> bool:
        """True while a reminder is being set up, so its next typed message may answer the open question."""
        return await self._draft(ctx) is not None

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        """A typed answer to the open question. [] when it is not one (the router then reads it afresh)."""
        draft = await self._draft(ctx)
        if draft is None:
            return []
        text = redact(inc.text or "")
        if draft.stage == _CONFIRM and _fold(text) in _YES:
            return [await self._confirm(ctx, draft, edit=False)]
        when = parse_when(text, ctx.now, self.tz)
        if when.status == "missing":
            if draft.stage != _CONFIRM and not draft.task and when.task:
                # "nhắc tôi" → "what and when?" → "đi công an phường": the task came first; ask the time.
                return [await self._answer(ctx, When("missing", task=when.task))]
            return []  # not about this reminder; the draft stays for its buttons until it expires
        task = when.task if (draft.stage == _CONFIRM or not draft.task) and when.task else draft.task
        return [await self._answer(ctx, when, task=task)]

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action in (CONFIRM, EDIT, ALTERNATIVE):
            draft = await self._draft(ctx)
            if draft is None or not args or args[0] != draft.token:
                return [Reply(ctx.t("reminders.draft_expired"), edit=True)]
            if action == CONFIRM and draft.stage == _CONFIRM:
                return [await self._confirm(ctx, draft, edit=True)]
            if action == ALTERNATIVE and draft.stage == _CHOOSE and len(args) == 2:
                return [await self._pick(ctx, draft, args[1])]
            return [await self._ask(ctx, draft.task, edit=True)]
        if action == LIST:
            return [await self._list(ctx)]
        if action == CANCEL_ALL:
            count = await cancel_all(ctx.session, ctx.user.id, ctx.now)
            log.info("reminders_cancelled_all", count=count)
            return [Reply(ctx.t("reminders.cancelled_all", count=count), edit=True)]
        row = await owned(ctx.session, ctx.user.id, args[0]) if args else None
        if row is None:
            return [Reply(ctx.t("reminders.already_gone"))]
        if action == CANCEL:
            if not await cancel(ctx.session, row, ctx.now):
                return [await self._list(ctx, notice=ctx.t("reminders.already_gone"), edit=True)]
            notice = ctx.t("reminders.cancelled_one", when=self._when(row.remind_at, ctx))
            return [await self._list(ctx, notice=notice, edit=True)]
        body = self.format.body(row, ctx.lang, ctx.now)
        if action == DONE:
            await mark_done(ctx.session, row, ctx.now)
            return [Reply(f"{body}\n\n{ctx.t('reminders.done')}", edit=True)]
        if action in (SNOOZE, TOMORROW):
            at = self._snooze_at(ctx) if action == SNOOZE else self._tomorrow_at(row, ctx)
            repeat = await follow_up(ctx.session, row, at, ctx.now)
            line = ctx.t("reminders.snoozed", when=self._when(repeat.remind_at, ctx))
            if repeat.state not in OPEN_STATES:
                line = ctx.t("reminders.already_gone")
            return [Reply(f"{body}\n\n{line}", edit=True)]
        if action == STOP:
            count = await cancel_all(ctx.session, ctx.user.id, ctx.now, group_key=row.group_key)
            log.info("reminders_stopped", count=count, source=row.source)
            line = ctx.t("reminders.stopped", count=count) if count else ctx.t("reminders.stopped_none")
            return [Reply(f"{body}\n\n{line}", edit=True)]
        return [Reply(ctx.t("reminders.already_gone"))]

    async def remind_renewal(self, inc: Incoming, ctx: Context, due: dt.date) -> list[Reply]:
        """The ID-card renewal capability's [Remind me] hook: a reminder 30 days before `due`, at 07:30."""
        deadline = dt.datetime.combine(due, dt.time(0, 0), tzinfo=self.tz).astimezone(dt.UTC)  # the whole day
        shown = self.format.deadline(deadline, ctx.lang, ctx.now)
        at = morning_of(due - RENEWAL_LEAD, self.tz)
        if at <= ctx.now:
            at = self._next_morning(ctx)
        if at >= deadline_end(deadline, self.tz):
            return [Reply(ctx.t("reminders.renewal_too_late", deadline=shown))]
        try:
            row = await create_reminder(
                ctx.session,
                ctx.user.id,
                at,
                "renewal",
                "reminders.renewal_due",
                {},
                deadline_at=deadline,
                group_key="renewal",
                dedupe_key=f"renewal:{due:%Y%m%d}",
                source=SOURCE_APP,
                cap=self.cap,
            )
        except TooManyReminders as exc:
            return [self._cap_reply(ctx, exc.count)]
        text = ctx.t("reminders.renewal_set", when=self._when(row.remind_at, ctx), deadline=shown)
        return [Reply(text, ((self._list_button(ctx),),))]

    # ---- setting a reminder ----------------------------------------------------------------------------

    async def _request(self, text: str, ctx: Context) -> Reply:
        return await self._answer(ctx, parse_when(text, ctx.now, self.tz))

    async def _answer(self, ctx: Context, when: When, task: str | None = None) -> Reply:
        """Turn what was understood into the next step: confirm, choose, or ask (again)."""
        count = await count_open(ctx.session, ctx.user.id)
        if count >= self.cap:  # said before the questions, not after them
            return self._cap_reply(ctx, count)
        task = (when.task if task is None else task).strip()
        if when.status == "ok":
            resolved = resolve_default(when, ctx.now)
            assert resolved.at is not None
            draft = await self._save(ctx, _CONFIRM, task, at=resolved.at, night=resolved.in_quiet_hours)
            return self._confirmation(ctx, draft)
        if when.status == "ambiguous":
            draft = await self._save(ctx, _CHOOSE, task, alternatives=when.alternatives)
            return self._choices(ctx, draft)
        lead = None
        if when.status == "past" and when.at is not None:
            lead = ctx.t("reminders.past", when=self._when(when.at, ctx))
        elif when.status == "invalid":
            lead = ctx.t("reminders.invalid")
        return await self._ask(ctx, task, lead=lead)

    async def _ask(self, ctx: Context, task: str, *, lead: str | None = None, edit: bool = False) -> Reply:
        task = (await self._save(ctx, _ASK, task)).task
        if task:
            question = ctx.t("reminders.ask_when_task", task=task) + self._hidden_note(ctx, task)
        elif lead is None and not edit:
            question = ctx.t("reminders.ask_what_when")  # nothing understood yet: ask for both
        else:
            question = ctx.t("reminders.ask_when")
        return Reply(question if lead is None else f"{lead}\n\n{question}", edit=edit)

    def _confirmation(self, ctx: Context, draft: ReminderDraft, *, edit: bool = False) -> Reply:
        assert draft.remind_at is not None
        when = self._when(draft.remind_at, ctx)
        text = (
            ctx.t("reminders.confirm", when=when, task=draft.task)
            if draft.task
            else ctx.t("reminders.confirm_no_task", when=when)
        )
        if draft.night:
            text = f"{text}\n<i>{ctx.t('reminders.night_note')}</i>"
        text += self._hidden_note(ctx, draft.task)
        buttons = (
            Button(ctx.t("reminders.btn_yes"), callbacks.encode(CONFIRM, draft.token)),
            Button(ctx.t("reminders.btn_edit"), callbacks.encode(EDIT, draft.token)),
        )
        return Reply(text, (buttons,), edit=edit)

    def _choices(self, ctx: Context, draft: ReminderDraft) -> Reply:
        options = [dt.datetime.fromisoformat(a) for a in json.loads(draft.alternatives)]
        rows = [
            (Button(self._when(at, ctx), callbacks.encode(ALTERNATIVE, draft.token, i)),)
            for i, at in enumerate(options)
        ]
        rows.append((Button(ctx.t("reminders.btn_other_time"), callbacks.encode(EDIT, draft.token)),))
        return Reply(ctx.t("reminders.choose"), tuple(rows))

    async def _pick(self, ctx: Context, draft: ReminderDraft, index: str) -> Reply:
        options = [dt.datetime.fromisoformat(a) for a in json.loads(draft.alternatives)]
        if not index.isdigit() or int(index) >= len(options):
            return self._choices(ctx, draft)
        at = options[int(index)]
        if at <= ctx.now:
            return await self._ask(ctx, draft.task, lead=ctx.t("reminders.past", when=self._when(at, ctx)), edit=True)
        draft = await self._save(ctx, _CONFIRM, draft.task, at=at, night=is_quiet(at.astimezone(self.tz)))
        return self._confirmation(ctx, draft, edit=True)

    async def _confirm(self, ctx: Context, draft: ReminderDraft, *, edit: bool) -> Reply:
        assert draft.remind_at is not None
        if draft.remind_at <= ctx.now:
            lead = ctx.t("reminders.past", when=self._when(draft.remind_at, ctx))
            return await self._ask(ctx, draft.task, lead=lead, edit=edit)
        try:
            row = await create_reminder(
                ctx.session,
                ctx.user.id,
                draft.remind_at,
                "citizen",
                None,
                task=draft.task or None,
                group_key=f"citizen:{draft.token}",
                dedupe_key=f"draft:{draft.token}",
                source=SOURCE_CITIZEN,
                cap=self.cap,
            )
        except TooManyReminders as exc:
            return self._cap_reply(ctx, exc.count, edit=edit)
        await ctx.session.delete(draft)
        await ctx.session.flush()
        when = self._when(row.remind_at, ctx)
        text = (
            ctx.t("reminders.saved", when=when, task=draft.task)
            if draft.task
            else ctx.t("reminders.saved_no_task", when=when)
        )
        return Reply(text, ((self._list_button(ctx),),), edit=edit)

    # ---- the draft -------------------------------------------------------------------------------------

    async def _draft(self, ctx: Context) -> ReminderDraft | None:
        row = await ctx.session.get(ReminderDraft, ctx.user.id)
        if row is not None and row.created_at < ctx.now - self.draft_ttl:
            await ctx.session.delete(row)
            await ctx.session.flush()
            return None
        return row

    async def _save(
        self,
        ctx: Context,
        stage: str,
        task: str,
        *,
        at: dt.datetime | None = None,
        alternatives: tuple[dt.datetime, ...] = (),
        night: bool = False,
    ) -> ReminderDraft:
        """Create or replace the citizen's draft; a fresh token retires the buttons of the previous one."""
        await ctx.session.execute(delete(ReminderDraft).where(ReminderDraft.user_id == ctx.user.id))
        draft = ReminderDraft(
            user_id=ctx.user.id,
            token=secrets.token_hex(4),
            stage=stage,
            task=redact(task)[:500],  # already redacted on the way in; a draft must never hold a number
            remind_at=at,
            alternatives=json.dumps([a.isoformat() for a in alternatives]),
            night=night,
            created_at=ctx.now,
        )
        ctx.session.add(draft)
        await ctx.session.flush()
        return draft

    # ---- listing ---------------------------------------------------------------------------------------

    async def _list(
        self, ctx: Context, *, cancelling: bool = False, notice: str | None = None, edit: bool = False
    ) -> Reply:
        rows, total = await upcoming(ctx.session, ctx.user.id, self.cap)
        if not rows:
            text = ctx.t("reminders.list_empty")
            return Reply(text if notice is None else f"{notice}\n\n{text}", edit=edit)
        lines = [ctx.t("reminders.cancel_which" if cancelling else "reminders.list_title")]
        for n, row in enumerate(rows, 1):
            body = self.format.body(row, ctx.lang, ctx.now)
            # The body is HTML already (the citizen's words escaped once): it must not be escaped again.
            item = ctx.t("reminders.list_item", n=n, when=self._when(row.remind_at, ctx), text=_BODY)
            lines.append(item.replace(_BODY, body))
        if total > len(rows):
            lines.append(ctx.t("reminders.list_more", count=total - len(rows)))
        buttons = [
            Button(ctx.t("reminders.btn_cancel_item", n=n), callbacks.encode(CANCEL, row.id))
            for n, row in enumerate(rows, 1)
        ]
        keyboard = [tuple(buttons[i : i + _PER_ROW]) for i in range(0, len(buttons), _PER_ROW)]
        if cancelling and total > 1:
            keyboard.append((Button(ctx.t("reminders.btn_cancel_all", count=total), callbacks.encode(CANCEL_ALL)),))
        text = "\n".join(lines)
        return Reply(text if notice is None else f"{notice}\n\n{text}", tuple(keyboard), edit=edit)

    # ---- helpers ---------------------------------------------------------------------------------------

    def _when(self, at: dt.datetime, ctx: Context) -> str:
        return self.format.when(at, ctx.lang, ctx.now)

    @staticmethod
    def _hidden_note(ctx: Context, task: str) -> str:
        """Why the citizen sees [phone] or [id] in their own words (empty when nothing was hidden)."""
        return f"\n<i>{ctx.t('reminders.number_hidden')}</i>" if PHONE in task or ID in task else ""

    def _list_button(self, ctx: Context) -> Button:
        return Button(ctx.t("reminders.btn_list"), callbacks.encode(LIST))

    def _cap_reply(self, ctx: Context, count: int, *, edit: bool = False) -> Reply:
        return Reply(ctx.t("reminders.cap_reached", count=count, cap=self.cap), ((self._list_button(ctx),),), edit=edit)

    def _snooze_at(self, ctx: Context) -> dt.datetime:
        # An explicit "in one hour": kept even at night, like any time the citizen chose.
        return (ctx.now + SNOOZE_FOR).replace(second=0, microsecond=0)

    def _tomorrow_at(self, row: Reminder, ctx: Context) -> dt.datetime:
        """Tomorrow at the reminder's time of day, or 07:30 if that time is at night."""
        local = row.remind_at.astimezone(self.tz)
        day = ctx.now.astimezone(self.tz).date() + dt.timedelta(days=1)
        at = dt.datetime.combine(day, local.time().replace(second=0, microsecond=0), tzinfo=self.tz)
        if is_quiet(at):
            at = dt.datetime.combine(day, DEFAULT_TIME, tzinfo=self.tz)
        return at.astimezone(dt.UTC)

    def _next_morning(self, ctx: Context) -> dt.datetime:
        local = ctx.now.astimezone(self.tz)
        day = local.date() if local.time() < DEFAULT_TIME else local.date() + dt.timedelta(days=1)
        return morning_of(day, self.tz)
