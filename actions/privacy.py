"""Personal data under Law 91/2025/QH15: the notice and consent to it (/privacy), the citizen's no to the review
queue, a copy of their data (/mydata) and erasure (/forget or "xoá dữ liệu của tôi", confirmed with buttons).

Consent is recorded on the user row with its time and the notice's version (`notice_version` in
data/content/privacy.yml); when the version changes, a citizen who had accepted an older one is shown the new notice
once, at their next typed message. /mydata and the privacy tests walk the same tables (store/personal.py), so a new
table that refers to citizens is in the copy without being listed.

Erasure: every table that refers to a citizen does so through a foreign key to `users.id` with ON DELETE CASCADE,
so deleting the user row deletes their reminders, follows, tickets (and relayed messages), feedback, review-queue
texts, subscriptions, guide progress, drafts and the consent they gave in one statement. Broadcast delivery records
are the exception: the staff report must still add up, so a delivered one loses everything that points at the
citizen and keeps only its state (an anonymous count); one not yet sent is dropped. Replies kept through a Telegram
outage are keyed by chat, not user, and are dropped with it. `tests/e2e/test_privacy.py` walks every table of the
schema, so a new table that refers to citizens cannot escape this.

Staff records (roles, the audit trail of staff actions) are about staff members acting for the authority and
are kept for accountability; they hold no citizen data.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, delete, exists, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from actions.base import Capability, Context
from actions.erasure import queue_staff_copies
from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Incoming, Reply
from store.models import NluReview, PendingReply, User
from store.models_news import PENDING, SENDING, Delivery
from store.personal import rows_about

log = structlog.get_logger(__name__)

YES = "pv_yes"  # pv_yes: erase everything
NO = "pv_no"  # pv_no: keep it
ACCEPT = "pv_ok"  # pv_ok:<version>: the citizen accepts that version of the notice
REVIEW = "pv_rv"  # pv_rv:off|on: no (or yes again) to their messages going to the review queue
MYDATA = "pv_my"  # pv_my: the copy of their data
FORGET = "pv_fg"  # pv_fg: ask to erase everything
CALLBACKS = (YES, NO, ACCEPT, REVIEW, MYDATA, FORGET)
callbacks.register(*CALLBACKS)

MESSAGE_CHARS = 3800  # Telegram takes 4096 characters per message; room for the HTML tags
ROWS_PER_TABLE = 20  # /mydata lists this many rows of one kind, then counts the rest
VALUE_CHARS = 200
# Credentials, not data about the person: a copy in a chat would only make them easier to steal.
NOT_COPIED = frozenset({"access_key", "token_hash"})


def notice_version(content: Content) -> str:
    """The current notice's version (data/content/privacy.yml `notice_version`)."""
    return str(content.raw["privacy"]["notice_version"])


def _local(ctx: Context, when: dt.datetime) -> str:
    return when.astimezone(ZoneInfo(ctx.settings.timezone)).strftime("%d/%m/%Y %H:%M")


def notice(ctx: Context, version: str) -> list[Reply]:
    """The full notice in two messages (what is kept and who receives it; the rights), the second with the
    choices: accept, the review-queue choice, a copy of the data, erasure."""
    s = ctx.settings
    contact = html.escape(s.privacy_contact.strip()) or ctx.t("privacy.contact_unset")
    first = ctx.t(
        "privacy.notice",
        version=version,
        controller=html.escape(s.privacy_controller),
        contact=contact,
        reminder_days=s.reminder_history_days,
        delivery_days=s.delivery_retention_days,
        ticket_days=s.ticket_retention_days,
        feedback_days=s.feedback_retention_days,
        review_days=s.review_retention_days,
    )
    user = ctx.user
    accepted = user.notice_version == version and user.notice_accepted_at is not None
    status = [
        ctx.t("privacy.status_accepted", time=_local(ctx, user.notice_accepted_at))  # type: ignore[arg-type]
        if accepted
        else ctx.t("privacy.status_not_accepted"),
        ctx.t("privacy.status_review_off" if user.review_opt_out else "privacy.status_review_on"),
    ]
    rows: list[tuple[Button, ...]] = []
    if not accepted:
        rows.append((Button(ctx.t("privacy.btn_accept"), callbacks.encode(ACCEPT, version)),))
    if user.review_opt_out:
        rows.append((Button(ctx.t("privacy.btn_review_on"), callbacks.encode(REVIEW, "on")),))
    else:
        rows.append((Button(ctx.t("privacy.btn_review_off"), callbacks.encode(REVIEW, "off")),))
    rows.append(
        (
            Button(ctx.t("privacy.btn_mydata"), callbacks.encode(MYDATA)),
            Button(ctx.t("privacy.btn_forget"), callbacks.encode(FORGET)),
        )
    )
    second = ctx.t("privacy.rights") + "\n\n" + "\n".join(status)
    return [Reply(first), Reply(second, tuple(rows))]


async def drop_review_rows(session: AsyncSession, user_id: int) -> int:
    """Delete the citizen's rows from the review queue; returns how many went."""
    result = await session.execute(
        delete(NluReview).where(NluReview.user_id == user_id).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _value(ctx: Context, value: Any) -> str:
    if isinstance(value, dt.datetime):
        return _local(ctx, value)
    text = str(value)
    return html.escape(text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…")


async def my_data(ctx: Context) -> list[Reply]:
    """A copy of every row kept about the citizen, table by table, in as many messages as it takes."""
    owned = await rows_about(ctx.session, ctx.user.id)
    blocks = [ctx.t("privacy.mydata_title", when=_local(ctx, ctx.now))]
    for name, rows in owned.items():
        if not rows:
            continue
        lines = [f"<b>{ctx.t(f'privacy.table_{name}')}</b>"]
        for row in rows[:ROWS_PER_TABLE]:
            fields = [
                f"{key}: {_value(ctx, v)}"
                for key, v in row.items()
                if v is not None and v != "" and key not in NOT_COPIED
            ]
            lines.append("• " + "; ".join(fields))
        if len(rows) > ROWS_PER_TABLE:
            lines.append(ctx.t("privacy.mydata_more", count=len(rows) - ROWS_PER_TABLE))
        blocks.append("\n".join(lines))
    messages: list[str] = []
    for whole in blocks:
        rest = whole
        while len(rest) > MESSAGE_CHARS:  # one table's rows longer than a message: cut at a line
            cut = rest.rfind("\n", 0, MESSAGE_CHARS)
            cut = cut if cut > 0 else MESSAGE_CHARS
            messages.append(rest[:cut])
            rest = rest[cut:].lstrip("\n")
        if messages and len(messages[-1]) + 2 + len(rest) <= MESSAGE_CHARS:
            messages[-1] += "\n\n" + rest
        else:
            messages.append(rest)
    log.info("privacy.copy_sent", tables=sum(1 for rows in owned.values() if rows))
    return [Reply(m) for m in messages]


async def forget(ctx: Context, user_id: int) -> None:
    """Erase every row about the citizen, in the caller's transaction."""
    session = ctx.session
    await session.execute(
        delete(Delivery)
        .where(Delivery.user_id == user_id, Delivery.state.in_((PENDING, SENDING)))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Delivery)
        .where(Delivery.user_id == user_id)
        .values(user_id=None, chat_id=0, message_id=None, error=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(PendingReply)
        .where(PendingReply.chat_id.in_({user_id, ctx.user.chat_id}))  # the private chat's id is the user's
        .execution_options(synchronize_session=False)
    )
    # the staff group's copies of their tickets are deleted from Telegram after the commit (actions/erasure.py)
    await queue_staff_copies(session, user_id, ctx.settings.staff_chat_id)
    await session.execute(delete(User).where(User.id == user_id).execution_options(synchronize_session=False))
    session.expunge(ctx.user)  # the row is gone; the adapter must not write it back


class PrivacyCapability(Capability):
    """Answers `delete_my_data`, `/privacy`, `/mydata` and `/forget`; owns the notice's and erasure's buttons;
    puts a changed notice in front of a citizen who had accepted an older one, once."""

    intents: tuple[str, ...] = ("delete_my_data",)
    callbacks: tuple[str, ...] = CALLBACKS
    commands: tuple[str, ...] = ("forget", "privacy", "mydata")

    def __init__(self, content: Content) -> None:
        self.version = notice_version(content)

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        return [self._ask(ctx)]

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        if name == "privacy":
            return notice(ctx, self.version)
        if name == "mydata":
            return await my_data(ctx)
        return [self._ask(ctx)]

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        user = ctx.user
        if action == ACCEPT:
            if not args or args[0] != self.version:  # a button of an older notice accepts nothing
                return notice(ctx, self.version)
            user.notice_version, user.notice_accepted_at, user.notice_shown = self.version, ctx.now, self.version
            log.info("privacy.accepted", version=self.version)
            return [Reply(ctx.t("privacy.accepted", version=self.version, time=_local(ctx, ctx.now)), edit=True)]
        if action == REVIEW:
            user.review_choice_at = ctx.now
            if args and args[0] == "on":
                user.review_opt_out = False
                log.info("privacy.review_allowed")
                return [Reply(ctx.t("privacy.review_on_done", days=ctx.settings.review_retention_days), edit=True)]
            user.review_opt_out = True
            removed = await drop_review_rows(ctx.session, user.id)
            log.info("privacy.review_refused", removed=removed)
            return [Reply(ctx.t("privacy.review_off_done", removed=removed), edit=True)]
        if action == MYDATA:
            return await my_data(ctx)
        if action == FORGET:
            return [self._ask(ctx)]
        if action == YES:
            lang = ctx.lang
            await forget(ctx, user.id)
            log.info("privacy.forgotten")  # no id: the log must not say who asked to be forgotten
            return [Reply(ctx.content.text("privacy.done", lang), edit=True)]
        return [
            Reply(ctx.t("privacy.kept"), ((Button(ctx.t("common.btn_menu"), callbacks.encode("c_menu")),),), edit=True)
        ]

    # A changed notice: the router asks every typed message's capabilities first (one probe for all of them).
    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool]:
        return exists().where(
            User.id == user_id,
            User.notice_version.is_not(None),
            User.notice_version != self.version,
            or_(User.notice_shown.is_(None), User.notice_shown != self.version),
        )

    async def wants_text(self, ctx: Context) -> bool:
        user = ctx.user
        return user.notice_version not in (None, self.version) and user.notice_shown != self.version

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        ctx.user.notice_shown = self.version  # once: the next message is answered whatever they pressed
        [first, second] = notice(ctx, self.version)
        changed = ctx.t("privacy.changed", version=self.version)
        return [Reply(f"{changed}\n\n{first.text}"), second]

    def _ask(self, ctx: Context) -> Reply:
        return Reply(
            ctx.t("privacy.confirm"),
            (
                (
                    Button(ctx.t("privacy.btn_yes"), callbacks.encode(YES)),
                    Button(ctx.t("privacy.btn_no"), callbacks.encode(NO)),
                ),
            ),
        )
