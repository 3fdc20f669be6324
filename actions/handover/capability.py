"""The handover capability: tickets posted to the staff group, messages relayed both ways through an outbox
committed with the update, staff commands, ratings. The relay rule: the package docstring."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
from dataclasses import dataclass

import structlog
from sqlalchemy import ColumnElement, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.base import Capability, Context, NotWired, Services
from actions.handover.office_hours import OfficeHours
from actions.handover.recent import RING_KEEP, RING_SIZE, AreaLookup, area_from_subscriptions, remember
from actions.staff import is_staff, refused
from core.pii import redact
from kernel import callbacks
from kernel.content import Content
from kernel.outbox import Blocked, RetryLater, Sender, SendError, decode, encode
from kernel.types import Button, Incoming, Reply
from store.models import User
from store.models_handover import CLOSED, TAKEN, WAITING, HandoverOutbox, RecentMessage, Ticket, TicketMessage

log = structlog.get_logger(__name__)

OPEN = "h_open"  # h_open[|<origin>]: open a ticket (menu, fallback menu, "still need help" after 👎)
TAKE = "h_take"  # h_take|<ticket>: a staff member takes it (pressed in the staff group)
CLOSE = "h_close"  # h_close|<ticket>: a staff member closes it (pressed in the staff group)
BACK = "h_back"  # h_back|<ticket>: the citizen goes back to the assistant (closes or cancels the ticket)
RATE = "h_rate"  # h_rate|<ticket>|<1-5>: the citizen rates the help after closing
CALLBACKS = (OPEN, TAKE, CLOSE, BACK, RATE)
callbacks.register(*CALLBACKS)

INTENT = "human_handover"
STAFF_LANG = "vi"  # the staff group works in Vietnamese whatever the citizen's language
MAX_WAIT_S = 5.0  # the longest a send waits out a 429 before reporting the message as not delivered
# A ticket message is sent by the process that committed it, right after the commit; one still queued this long
# after (that process died in between) is sent by the scheduler's pass (`deliver_left`).
OUTBOX_LEASE = dt.timedelta(seconds=60)
RELAY_MAX_CHARS = 3500  # room for the prefix under Telegram's 4096-character message limit
_ID_ARG = re.compile(r"^\d{1,12}$")


def handover_button(ctx: Context, origin: str = "fallback", label: str = "handover.btn_talk") -> Button:
    """[Talk to staff] for another menu (the router's fallback menu, the feedback follow-up)."""
    return Button(ctx.t(label), callbacks.encode(OPEN, _safe_arg(origin)))


def _safe_arg(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-:]", "_", value)[:40]


def _in_reply_to(reply: Reply, message_id: int | None) -> Reply:
    """The same reply threaded under `message_id` in the group (staff can answer by replying to any of them)."""
    return reply if message_id is None else dataclasses.replace(reply, reply_to=message_id)


@dataclass(frozen=True)
class _PatientSender:
    """Sends through the port, waiting out one short throttle: Telegram allows about one message per second
    per chat, and a conversation (an acknowledgement, then a staff notice) easily hits that."""

    sender: Sender

    async def send(self, chat_id: int, reply: Reply) -> int:
        try:
            return await self.sender.send(chat_id, reply)
        except RetryLater as exc:
            if exc.after_s > MAX_WAIT_S:
                raise
            await asyncio.sleep(exc.after_s)
        return await self.sender.send(chat_id, reply)


# ---- the capability ---------------------------------------------------------------------------------------


class HandoverCapability(Capability):
    """Answers `human_handover`; owns the `h_` buttons; relays while a ticket is live; `/tickets` for staff.

    Put it first in the capability list: while it relays, it must get the citizen's text before anyone else.
    """

    intents: tuple[str, ...] = (INTENT,)
    callbacks: tuple[str, ...] = CALLBACKS
    commands: tuple[str, ...] = ("tickets",)

    def __init__(
        self,
        hours: OfficeHours,
        *,
        content: Content | None = None,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        services: Services | None = None,
        repost_after_s: float = 1800.0,
        area_of: AreaLookup | None = None,
    ) -> None:
        self.hours = hours
        self.repost_after = dt.timedelta(seconds=repost_after_s)
        self._content = content
        self._sessions = sessions
        self._services = services if services is not None else Services()
        self._area_of = area_of if area_of is not None else area_from_subscriptions()

    # ----------------------------------------------------------------- citizen entry points

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        # The router turns a menu press into this intent with no text; a typed request has text.
        return await self.open(inc, ctx, "intent" if inc.text else "menu")

    async def observe(self, inc: Incoming, ctx: Context, intent: str | None) -> None:
        """The router's report on each typed message: kept (redacted) so a ticket can show what came before."""
        await remember(ctx, inc.text or "", intent)

    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool]:
        """The router's one-statement probe: an open ticket exists (wants_text then checks it is relaying)."""
        return exists().where(Ticket.open_user_id == user_id)

    async def wants_text(self, ctx: Context) -> bool:
        ticket = await self._open_ticket(ctx.session, ctx.user.id)
        return ticket is not None and self._relaying(ticket, ctx.now)

    async def wants_media(self, inc: Incoming, ctx: Context) -> bool:
        return await self.wants_text(ctx)

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        ticket = await self._open_ticket(ctx.session, ctx.user.id)
        if ticket is None or not self._relaying(ticket, ctx.now):
            return []
        text = redact(inc.text or "")[:RELAY_MAX_CHARS]
        body = self._g(ctx, "group_citizen_msg", id=ticket.id, name=ticket.citizen_name, text=text)
        return await self._relay_to_group(ctx, ticket, Reply(body))

    async def on_media(self, inc: Incoming, ctx: Context) -> list[Reply]:
        ticket = await self._open_ticket(ctx.session, ctx.user.id)
        if ticket is None:
            return [Reply(ctx.t("common.not_text"))]
        if inc.photo is None:
            return [Reply(ctx.t("handover.media_unsupported"), ((self._back_button(ctx, ticket),),))]
        caption = redact(inc.text or "")[:900]  # a photo caption is limited to 1024 characters
        body = self._g(ctx, "group_citizen_photo", id=ticket.id, name=ticket.citizen_name, text=caption)
        return await self._relay_to_group(ctx, ticket, Reply(body, photo=inc.photo))

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action == OPEN:
            return await self.open(inc, ctx, args[0] if args else "menu")
        ticket_id = int(args[0]) if args and _ID_ARG.match(args[0]) else None
        ticket = await self._locked(ctx.session, ticket_id) if ticket_id is not None else None
        if action in (TAKE, CLOSE):
            if inc.chat_id != ctx.settings.staff_chat_id or ctx.settings.staff_chat_id is None:
                log.warning("handover.staff_button_outside_group", user=ctx.user.id)
                return [Reply(ctx.t("common.stale_button"))]
            if ticket is None:
                return [Reply(ctx.t("common.stale_button"))]
            if not await is_staff(ctx):  # membership of the group is not enough: a leaked invite, a removed member
                refused(ctx, f"ticket_{action}")
                return [Reply(self._g(ctx, "group_not_staff", id=ticket.id))]
            return await (self._take(inc, ctx, ticket) if action == TAKE else self._close_by_staff(inc, ctx, ticket))
        if ticket is None or ticket.user_id != ctx.user.id:
            return [Reply(ctx.t("handover.stale"), ((self._menu_button(ctx),),))]
        if action == BACK:
            return await self._back(ctx, ticket)
        stars = args[1] if len(args) > 1 else ""
        return self._rate(ctx, ticket, int(stars) if stars in ("1", "2", "3", "4", "5") else 0)

    async def open(self, inc: Incoming, ctx: Context, origin: str) -> list[Reply]:
        """Open a ticket for this citizen (or show the one already open) and post it to the staff group."""
        group = ctx.settings.staff_chat_id
        if group is None:
            return [Reply(ctx.t("handover.unavailable"), ((self._menu_button(ctx),),))]
        existing = await self._open_ticket(ctx.session, ctx.user.id)
        if existing is not None:
            return [self._already(ctx, existing)]
        in_hours = self.hours.is_open(ctx.now)
        ticket = Ticket(
            user_id=ctx.user.id,
            open_user_id=ctx.user.id,  # unique while open: a second open ticket cannot be inserted
            status=WAITING,
            origin=origin[:64],
            lang=ctx.lang,
            citizen_name=(inc.display_name or "—")[:128],
            opened_in_hours=in_hours,
            created_at=ctx.now,
            posted_at=ctx.now,
        )
        ctx.session.add(ticket)
        await ctx.session.flush()
        ticket.summary = await self._post_body(ctx, ticket, in_hours)
        post = Reply(self._post_text(ctx, ticket), self._staff_buttons(ctx, ticket))
        # Posted after the commit (no transaction waits on Telegram); if the group cannot be reached, the ticket
        # is deleted again and the citizen told (`deliver`).
        ticket.group_chat_id = group
        self._queue(ctx, ticket, group, post, "post")
        # The ring's content now lives in the ticket's post; it is not kept twice.
        await ctx.session.execute(delete(RecentMessage).where(RecentMessage.user_id == ctx.user.id))
        log.info("handover.opened", ticket=ticket.id, origin=origin, in_hours=in_hours)
        if in_hours:
            return [Reply(ctx.t("handover.opened_live", id=ticket.id), ((self._back_button(ctx, ticket),),))]
        when = self._when(ctx, ctx.lang, self.hours.next_open(ctx.now))
        return [
            Reply(
                ctx.t("handover.opened_queued", id=ticket.id, when=when),
                ((self._back_button(ctx, ticket),), (self._menu_button(ctx),)),
            )
        ]

    # ----------------------------------------------------------------- staff entry points

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        if not await is_staff(ctx):
            refused(ctx, name)
            return [Reply(ctx.t("common.unknown_command"))]
        rows = (
            await ctx.session.scalars(select(Ticket).where(Ticket.status != CLOSED).order_by(Ticket.created_at))
        ).all()
        if not rows:
            return [Reply(ctx.t("handover.tickets_none"))]
        lines = [ctx.t("handover.tickets_title", count=len(rows))]
        for t in rows:
            if t.status == TAKEN and t.taken_at is not None:
                since = self._clock(t.taken_at)
                lines.append(
                    ctx.t("handover.tickets_taken", id=t.id, name=t.citizen_name, staff=t.taken_by_name, since=since)
                )
            else:
                since = self._clock(t.created_at)
                lines.append(ctx.t("handover.tickets_waiting", id=t.id, name=t.citizen_name, since=since))
        return [Reply("\n".join(lines))]

    async def on_staff_group(self, inc: Incoming, ctx: Context) -> list[Reply]:
        """A staff member's reply to one of a ticket's messages is relayed to the citizen; other chatter is not."""
        if inc.reply_to is None:
            return []
        link = await ctx.session.scalar(
            select(TicketMessage)
            .where(TicketMessage.chat_id == inc.chat_id, TicketMessage.message_id == inc.reply_to)
            .limit(1)
        )
        if link is None:
            return []
        ticket = await self._locked(ctx.session, link.ticket_id)
        if ticket is None:
            return []
        if not await is_staff(ctx):  # only someone with the staff role answers citizens as "cán bộ"
            refused(ctx, "ticket_reply")
            return [Reply(self._g(ctx, "group_not_staff", id=ticket.id))]
        if ticket.status == CLOSED:
            return [Reply(self._g(ctx, "group_already_closed", id=ticket.id))]
        if inc.text is None and inc.photo is None:
            return [Reply(self._g(ctx, "group_not_text", id=ticket.id))]
        out: list[Reply] = []
        staff_name = (inc.display_name or "—")[:128]
        if ticket.status == WAITING:  # answering is taking: the citizen must not wait for a second person
            self._mark_taken(ticket, ctx, staff_name)
            out.append(Reply(self._g(ctx, "group_auto_taken", id=ticket.id, name=staff_name)))
        citizen = await ctx.session.get(User, ticket.user_id)
        if citizen is None:
            return out
        text = (inc.text or "")[:RELAY_MAX_CHARS]
        if inc.photo is not None:
            body = ctx.content.text("handover.from_staff_photo", citizen.lang, name=staff_name, text=text[:900])
            message = Reply(body, ((self._back_button_for(ctx, citizen.lang, ticket),),), photo=inc.photo)
        else:
            body = ctx.content.text("handover.from_staff", citizen.lang, name=staff_name, text=text)
            message = Reply(body, ((self._back_button_for(ctx, citizen.lang, ticket),),))
        problem = await self._to_citizen(ctx, ticket, citizen, message, "staff")
        return [*out, *problem]

    async def repost_stale(self, now: dt.datetime) -> int:
        """Re-post, during office hours, tickets nobody took for `repost_after`; returns how many were re-posted.

        Safe with several bot processes: a ticket is claimed by moving its `posted_at` in a committed
        conditional update before anything is sent, so only one process re-posts it.
        """
        if self._sessions is None or self._content is None:
            raise RuntimeError("repost_stale needs the capability built with sessions and content")
        if not self.hours.is_open(now):
            return 0
        cutoff = now - self.repost_after
        async with self._sessions() as session, session.begin():
            candidates = (
                await session.execute(
                    select(Ticket.id, Ticket.posted_at).where(
                        Ticket.status == WAITING, Ticket.posted_at <= cutoff, Ticket.group_chat_id.is_not(None)
                    )
                )
            ).all()
        done = 0
        for ticket_id, posted_at in candidates:
            async with self._sessions() as session, session.begin():
                ticket = await self._locked(session, ticket_id)
                if ticket is None or ticket.status != WAITING or ticket.posted_at != posted_at:
                    continue  # taken, closed or re-posted by another process meanwhile
                ticket.posted_at = now
                ticket.reposts += 1
                group, post_id = ticket.group_chat_id, ticket.group_message_id
                assert group is not None
                text = self._content.text(
                    "handover.group_repost", STAFF_LANG, id=ticket.id, name=ticket.citizen_name,
                    since=self._clock(ticket.created_at),
                )  # fmt: skip
                buttons = self._staff_buttons_lang(STAFF_LANG, ticket)
            try:
                message_id = await self._sender(self._services).send(group, _in_reply_to(Reply(text, buttons), post_id))
            except (SendError, LookupError) as exc:
                log.warning("handover.repost_failed", ticket=ticket_id, error=type(exc).__name__)
                continue
            async with self._sessions() as session, session.begin():
                if await session.get(Ticket, ticket_id) is not None:
                    self._record(session, None, "repost", group, message_id, now, ticket_id=ticket_id)
            done += 1
        if done:
            log.info("handover.reposted", count=done)
        return done

    # ----------------------------------------------------------------- transitions

    async def _take(self, inc: Incoming, ctx: Context, ticket: Ticket) -> list[Reply]:
        if ticket.status != WAITING:  # taken by someone else or closed: show where it stands
            return [Reply(self._post_text(ctx, ticket), self._staff_buttons(ctx, ticket), edit=True)]
        self._mark_taken(ticket, ctx, (inc.display_name or "—")[:128])
        citizen = await ctx.session.get(User, ticket.user_id)
        post = Reply(self._post_text(ctx, ticket), self._staff_buttons(ctx, ticket), edit=True)
        if citizen is None:
            return [post]
        notice = Reply(
            ctx.content.text("handover.taken", citizen.lang, name=ticket.taken_by_name, id=ticket.id),
            ((self._back_button_for(ctx, citizen.lang, ticket),),),
        )
        problem = await self._to_citizen(ctx, ticket, citizen, notice, "notice")
        # After a block the ticket is closed: the post must say so rather than "taken".
        post = Reply(self._post_text(ctx, ticket), self._staff_buttons(ctx, ticket), edit=True)
        return [post, *problem]

    async def _close_by_staff(self, inc: Incoming, ctx: Context, ticket: Ticket) -> list[Reply]:
        if ticket.status == CLOSED:
            return [Reply(self._post_text(ctx, ticket), (), edit=True)]
        was_taken = ticket.taken_at is not None
        self._close(ticket, ctx, by=ctx.user.id, reason="staff", by_name=(inc.display_name or "—")[:128])
        post = Reply(self._post_text(ctx, ticket), (), edit=True)
        self._forget_details(ticket)
        citizen = await ctx.session.get(User, ticket.user_id)
        if citizen is None:
            return [post]
        if was_taken:
            text = "\n\n".join(
                (
                    ctx.content.text("handover.closed_by_staff", citizen.lang, id=ticket.id),
                    ctx.content.text("handover.ask_rating", citizen.lang),
                )
            )
            notice = Reply(text, self._rating_rows(ctx, citizen.lang, ticket))
        else:
            notice = Reply(ctx.content.text("handover.closed_untaken", citizen.lang, id=ticket.id))
        problem = await self._to_citizen(ctx, ticket, citizen, notice, "notice")
        return [post, *problem]

    async def _back(self, ctx: Context, ticket: Ticket) -> list[Reply]:
        if ticket.status == CLOSED:
            return [Reply(ctx.t("handover.stale"), ((self._menu_button(ctx),),), edit=True)]
        was_taken = ticket.taken_at is not None
        self._close(ticket, ctx, by=ctx.user.id, reason="citizen", by_name="")
        self._forget_details(ticket)
        if ticket.group_chat_id is not None:  # the ticket is closed either way; staff see it in /tickets
            note = Reply(self._g(ctx, "group_citizen_back", id=ticket.id))
            self._queue(ctx, ticket, ticket.group_chat_id, _in_reply_to(note, ticket.group_message_id), "notice")
        log.info("handover.closed", ticket=ticket.id, reason="citizen")
        if was_taken:
            text = f"{ctx.t('handover.back')}\n\n{ctx.t('handover.ask_rating')}"
            return [Reply(text, (*self._rating_rows(ctx, ctx.lang, ticket), (self._menu_button(ctx),)), edit=True)]
        return [Reply(ctx.t("handover.cancelled", id=ticket.id), ((self._menu_button(ctx),),), edit=True)]

    def _rate(self, ctx: Context, ticket: Ticket, stars: int) -> list[Reply]:
        if ticket.status != CLOSED or ticket.taken_at is None or not 1 <= stars <= 5:
            return [Reply(ctx.t("handover.stale"), ((self._menu_button(ctx),),), edit=True)]
        ticket.rating, ticket.rated_at = stars, ctx.now
        log.info("handover.rated", ticket=ticket.id, rating=stars)
        return [Reply(ctx.t("handover.rated", stars="⭐" * stars), ((self._menu_button(ctx),),), edit=True)]

    def _mark_taken(self, ticket: Ticket, ctx: Context, name: str) -> None:
        ticket.status, ticket.taken_by, ticket.taken_by_name, ticket.taken_at = TAKEN, ctx.user.id, name, ctx.now
        log.info("handover.taken", ticket=ticket.id, staff=ctx.user.id)

    def _close(self, ticket: Ticket, ctx: Context, *, by: int, reason: str, by_name: str) -> None:
        ticket.status, ticket.open_user_id = CLOSED, None
        ticket.closed_at, ticket.closed_by, ticket.close_reason = ctx.now, by, reason
        ticket.closed_by_name = by_name
        log.info("handover.closed", ticket=ticket.id, reason=reason)

    @staticmethod
    def _forget_details(ticket: Ticket) -> None:
        # Privacy: once closed, the citizen's name and message excerpts are not kept (the figures need neither).
        ticket.summary, ticket.citizen_name = "", ""

    # ----------------------------------------------------------------- sending

    async def _relay_to_group(self, ctx: Context, ticket: Ticket, message: Reply) -> list[Reply]:
        group = ticket.group_chat_id
        if group is None:
            return [Reply(ctx.t("handover.send_failed"))]
        # Relayed after the commit; should the group not take it, the citizen is told then (`deliver`).
        self._queue(ctx, ticket, group, _in_reply_to(message, ticket.group_message_id), "citizen")
        return [Reply(ctx.t("handover.relayed"), ((self._back_button(ctx, ticket),),))]

    async def _to_citizen(self, ctx: Context, ticket: Ticket, citizen: User, message: Reply, kind: str) -> list[Reply]:
        """Send to the citizen after the commit (staff actions happen in the group); what goes wrong is told to
        the group then (`deliver`), so no staff answer is lost without staff knowing. Returns no reply now."""
        self._queue(ctx, ticket, citizen.chat_id, message, kind, staff_id=ctx.user.id)
        return []

    def _queue(
        self, ctx: Context, ticket: Ticket, chat_id: int, message: Reply, direction: str, staff_id: int | None = None
    ) -> None:
        """Commit the message with the update (an outbox row) and have the channel send it once committed."""
        row = HandoverOutbox(
            ticket_id=ticket.id,
            chat_id=chat_id,
            body=encode(message),
            direction=direction,
            staff_id=staff_id,
            created_at=ctx.now,
            lease_until=ctx.now + OUTBOX_LEASE,
        )
        ctx.session.add(row)
        services = ctx.services

        async def send() -> None:
            await self.deliver(row.id, services)

        ctx.after_commit.append(send)

    async def deliver(self, outbox_id: int, services: Services | None = None) -> None:
        """Send one queued ticket message, outside any transaction; record it (staff answer by replying to it), or
        report the failure: a post the group would not take deletes its ticket and the citizen is told; a relayed
        citizen message tells the citizen; a message to a citizen tells the group (and a block closes the ticket)."""
        if self._sessions is None or self._content is None:
            raise RuntimeError("deliver needs the capability built with sessions and content")
        async with self._sessions() as session:
            row = await session.get(HandoverOutbox, outbox_id)
            ticket = await session.get(Ticket, row.ticket_id) if row is not None else None
            citizen = await session.get(User, ticket.user_id) if ticket is not None else None
        if row is None or ticket is None:
            return  # sent already, or the ticket (and so its queue) was deleted
        to_group = row.chat_id != (citizen.chat_id if citizen is not None else None)
        failure: Exception | None = None
        try:
            message_id = await self._sender(services if services is not None else self._services).send(
                row.chat_id, decode(row.body)
            )
        except (SendError, LookupError) as exc:
            failure = exc
            log.warning("handover.send_failed", ticket=ticket.id, direction=row.direction, error=type(exc).__name__)
        now = dt.datetime.now(dt.UTC)
        notice: tuple[int, Reply] | None = None
        async with self._sessions() as session, session.begin():
            await session.execute(delete(HandoverOutbox).where(HandoverOutbox.id == row.id))
            fresh = await self._locked(session, ticket.id)
            if fresh is None:
                return
            if failure is None:
                if row.direction == "post":
                    fresh.group_chat_id, fresh.group_message_id = row.chat_id, message_id
                self._record(session, fresh, row.direction, row.chat_id, message_id, now, staff_id=row.staff_id)
                return
            lang = citizen.lang if citizen is not None else STAFF_LANG
            if row.direction == "post":  # no one would see the ticket: it is not kept
                await session.delete(fresh)
                notice = (
                    ticket.user_id,
                    Reply(self._content.text("handover.send_failed", lang), ((self._menu(lang),),)),
                )
            elif to_group and row.direction == "citizen" and citizen is not None:
                notice = (citizen.chat_id, Reply(self._content.text("handover.send_failed", lang)))
            elif not to_group and fresh.group_chat_id is not None:
                key = "group_not_delivered"
                if isinstance(failure, Blocked) and citizen is not None:
                    key = "group_blocked"
                    await session.execute(update(User).where(User.id == citizen.id).values(active=False))
                    if fresh.status != CLOSED:
                        fresh.status, fresh.open_user_id, fresh.close_reason = CLOSED, None, "blocked"
                        fresh.closed_at, fresh.closed_by = now, citizen.id
                        self._forget_details(fresh)
                        log.info("handover.closed", ticket=fresh.id, reason="blocked")
                text = self._content.text(f"handover.{key}", STAFF_LANG, id=fresh.id)
                notice = (fresh.group_chat_id, _in_reply_to(Reply(text), fresh.group_message_id))
        if notice is not None:  # told after the commit too; a failure here is only logged
            try:
                await self._sender(services if services is not None else self._services).send(*notice)
            except (SendError, LookupError) as exc:
                log.warning("handover.failure_notice_failed", ticket=ticket.id, error=type(exc).__name__)

    async def deliver_left(self, now: dt.datetime) -> int:
        """The scheduler's pass: queued messages whose lease ran out (the process that committed them died before
        sending) are claimed, one committed conditional update each, and sent; returns how many were claimed."""
        if self._sessions is None:
            raise RuntimeError("deliver_left needs the capability built with sessions")
        async with self._sessions() as session, session.begin():
            left = (
                await session.execute(
                    select(HandoverOutbox.id, HandoverOutbox.lease_until)
                    .where(HandoverOutbox.lease_until <= now)
                    .order_by(HandoverOutbox.id)
                    .limit(100)
                )
            ).all()
        claimed = 0
        for outbox_id, lease in left:
            async with self._sessions() as session, session.begin():
                result = await session.execute(
                    update(HandoverOutbox)
                    .where(HandoverOutbox.id == outbox_id, HandoverOutbox.lease_until == lease)
                    .values(lease_until=now + OUTBOX_LEASE)
                )
            if int(getattr(result, "rowcount", 0) or 0) != 1:
                continue  # another process claimed it
            claimed += 1
            await self.deliver(outbox_id)
        return claimed

    def _menu(self, lang: str) -> Button:
        assert self._content is not None
        return Button(self._content.text("common.btn_menu", lang), callbacks.encode("c_menu"))

    @staticmethod
    def _sender(services: Services) -> _PatientSender:
        if services.sender is None:  # a LookupError: the callers handle it as a message that could not be sent
            raise NotWired("no outbound sender")
        return _PatientSender(services.sender)

    @staticmethod
    def _record(
        session: AsyncSession,
        ticket: Ticket | None,
        direction: str,
        chat_id: int,
        message_id: int,
        at: dt.datetime,
        *,
        ticket_id: int | None = None,
        staff_id: int | None = None,
    ) -> None:
        tid = ticket.id if ticket is not None else ticket_id
        assert tid is not None
        session.add(
            TicketMessage(
                ticket_id=tid, direction=direction, chat_id=chat_id, message_id=message_id, staff_id=staff_id, at=at
            )
        )

    # ----------------------------------------------------------------- queries

    @staticmethod
    async def _open_ticket(session: AsyncSession, user_id: int) -> Ticket | None:
        ticket: Ticket | None = await session.scalar(select(Ticket).where(Ticket.open_user_id == user_id))
        return ticket

    @staticmethod
    async def _locked(session: AsyncSession, ticket_id: int) -> Ticket | None:
        # FOR UPDATE on PostgreSQL: two staff pressing [Take] at once are served one after the other.
        return await session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)

    def _relaying(self, ticket: Ticket, now: dt.datetime) -> bool:
        if ticket.status == TAKEN:
            return True
        return ticket.status == WAITING and ticket.opened_in_hours and self.hours.is_open(now)

    # ----------------------------------------------------------------- rendering

    def _g(self, ctx: Context, key: str, **values: object) -> str:
        return ctx.content.text(f"handover.{key}", STAFF_LANG, **values)

    def _clock(self, when: dt.datetime) -> str:
        return when.astimezone(self.hours.tz).strftime("%H:%M %d/%m")

    def _when(self, ctx: Context, lang: str, when: dt.datetime) -> str:
        local = when.astimezone(self.hours.tz)
        today = ctx.now.astimezone(self.hours.tz).date()
        hm = local.strftime("%H:%M")
        if local.date() == today:
            return ctx.content.text("handover.when_today", lang, time=hm)
        if local.date() == today + dt.timedelta(days=1):
            return ctx.content.text("handover.when_tomorrow", lang, time=hm)
        weekday = ctx.content.text(f"handover.weekday_{local.weekday()}", lang)
        return ctx.content.text("handover.when_day", lang, time=hm, weekday=weekday, date=local.strftime("%d/%m"))

    async def _post_body(self, ctx: Context, ticket: Ticket, in_hours: bool) -> str:
        lines = [
            self._g(ctx, "group_header", id=ticket.id, name=ticket.citizen_name),
            self._g(ctx, "group_meta", language=ticket.lang, opened=self._clock(ticket.created_at)),
        ]
        area = await self._area_of(ctx.session, ticket.user_id)
        if area:
            lines.append(self._g(ctx, "group_area", area=area))
        origin = ticket.origin
        if origin.startswith("fb:"):
            lines.append(self._g(ctx, "group_origin_feedback", topic=origin[3:]))
        elif origin in ("intent", "menu", "fallback"):
            lines.append(self._g(ctx, f"group_origin_{origin}"))
        if not in_hours:
            lines.append(self._g(ctx, "group_queued", when=self._when(ctx, STAFF_LANG, self.hours.next_open(ctx.now))))
        ring = (
            await ctx.session.scalars(
                select(RecentMessage)
                .where(RecentMessage.user_id == ticket.user_id, RecentMessage.at >= ctx.now - RING_KEEP)
                .order_by(RecentMessage.at, RecentMessage.id)
            )
        ).all()
        lines.append("")
        lines.append(self._g(ctx, "group_recent_title"))
        for row in ring[-RING_SIZE:]:
            intent = row.intent or self._g(ctx, "group_not_understood")
            lines.append(self._g(ctx, "group_recent_line", time=self._clock(row.at)[:5], text=row.text, intent=intent))
        if not ring:
            lines.append(self._g(ctx, "group_recent_none"))
        return "\n".join(lines)

    def _post_text(self, ctx: Context, ticket: Ticket) -> str:
        if ticket.status == WAITING:
            status = self._g(ctx, "group_status_waiting")
        elif ticket.status == TAKEN and ticket.taken_at is not None:
            status = self._g(ctx, "group_status_taken", name=ticket.taken_by_name, time=self._clock(ticket.taken_at))
        else:
            closed = ticket.closed_at or ctx.now
            who = {
                "citizen": self._g(ctx, "group_closed_citizen"),
                "blocked": self._g(ctx, "group_closed_blocked"),
            }.get(ticket.close_reason, ticket.closed_by_name or "—")
            status = self._g(ctx, "group_status_closed", time=self._clock(closed), name=who)
        body = ticket.summary or self._g(ctx, "group_header", id=ticket.id, name=ticket.citizen_name or "—")
        return f"{body}\n\n{status}"

    def _staff_buttons(self, ctx: Context, ticket: Ticket) -> tuple[tuple[Button, ...], ...]:
        return self._staff_buttons_lang(STAFF_LANG, ticket, ctx.content)

    def _staff_buttons_lang(
        self, lang: str, ticket: Ticket, content: Content | None = None
    ) -> tuple[tuple[Button, ...], ...]:
        texts = content or self._content
        assert texts is not None
        close = Button(texts.text("handover.btn_close", lang), callbacks.encode(CLOSE, ticket.id))
        if ticket.status == WAITING:
            return ((Button(texts.text("handover.btn_take", lang), callbacks.encode(TAKE, ticket.id)), close),)
        if ticket.status == TAKEN:
            return ((close,),)
        return ()

    def _already(self, ctx: Context, ticket: Ticket) -> Reply:
        if self._relaying(ticket, ctx.now):
            return Reply(ctx.t("handover.already_live", id=ticket.id), ((self._back_button(ctx, ticket),),))
        when = self._when(ctx, ctx.lang, self.hours.next_open(ctx.now))
        return Reply(
            ctx.t("handover.already_queued", id=ticket.id, when=when),
            ((self._back_button(ctx, ticket),), (self._menu_button(ctx),)),
        )

    def _back_button(self, ctx: Context, ticket: Ticket) -> Button:
        return self._back_button_for(ctx, ctx.lang, ticket)

    def _back_button_for(self, ctx: Context, lang: str, ticket: Ticket) -> Button:
        key = "handover.btn_back" if self._relaying(ticket, ctx.now) else "handover.btn_cancel"
        return Button(ctx.content.text(key, lang), callbacks.encode(BACK, ticket.id))

    def _rating_rows(self, ctx: Context, lang: str, ticket: Ticket) -> tuple[tuple[Button, ...], ...]:
        stars = tuple(
            Button(ctx.content.text("handover.btn_rate", lang, n=n), callbacks.encode(RATE, ticket.id, n))
            for n in range(1, 6)
        )
        return (stars,)

    @staticmethod
    def _menu_button(ctx: Context) -> Button:
        return Button(ctx.t("common.btn_menu"), callbacks.encode("c_menu"))
