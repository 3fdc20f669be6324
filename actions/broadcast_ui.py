"""Staff composing of broadcasts (text, photo, audience, preview, send or schedule) and /staff role management."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import ColumnElement, exists, select

from actions import staff
from actions.base import Capability, Context
from actions.news import MAX_MATCHES, search_reply
from broadcast.audience import Areas, Audience, load_areas, news_topics
from broadcast.html import HtmlError, check_html
from broadcast.message import citizen_reply
from broadcast.reports import progress_of, report_text
from kernel import callbacks
from kernel.types import Button, Incoming, Reply
from store.models_news import APPROVAL, CANCELLED, DRAFT, QUEUED, RUNNING, SCHEDULED, Broadcast
from store.models_staff import ROLES, StaffMember

log = structlog.get_logger(__name__)

SKIP_PHOTO = "b_skip"  # b_skip|<id>
AREA = "b_area"  # b_area|<id>: open the area screen (chosen units; staff type names to add more)
UNIT = "b_unit"  # b_unit|<id>|<unit id | all>: add or drop a unit; "all" clears the list (the whole province)
TOPIC = "b_top"  # b_top|<id>|<topic>: toggle
PAID = "b_paid"  # b_paid|<id>: toggle allow_paid_broadcast
AUDIENCE = "b_aud"  # b_aud|<id>: back to the audience screen
PREVIEW = "b_prev"  # b_prev|<id>
SEND = "b_send"  # b_send|<id>
SCHEDULE = "b_sched"  # b_sched|<id>: ask for a time
CANCEL = "b_cancel"  # b_cancel|<id>: drop a draft or cancel a scheduled broadcast
APPROVE = "b_appr"  # b_appr|<id>: a second staff member lets a large broadcast go out
REJECT = "b_rej"  # b_rej|<id>: ... or stops it
CALLBACKS = (SKIP_PHOTO, AREA, UNIT, TOPIC, PAID, AUDIENCE, PREVIEW, SEND, SCHEDULE, CANCEL, APPROVE, REJECT)
callbacks.register(*CALLBACKS)
ALL = "all"

_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})\s+(\d{1,2})/(\d{1,2})/(\d{4})\s*$")  # 08:30 15/12/2026
_TIME_DMY = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})\s*$")  # 15/12/2026 08:30


def parse_when(text: str, tz: ZoneInfo) -> dt.datetime | None:
    """A local time typed by staff ("08:30 15/12/2026", "15/12/2026 08:30" or ISO 8601), as aware UTC."""
    m = _TIME.match(text)
    try:
        if m:
            hh, mm, d, mo, y = (int(g) for g in m.groups())
            local = dt.datetime(y, mo, d, hh, mm, tzinfo=tz)
        elif m2 := _TIME_DMY.match(text):
            d, mo, y, hh, mm = (int(g) for g in m2.groups())
            local = dt.datetime(y, mo, d, hh, mm, tzinfo=tz)
        else:
            parsed = dt.datetime.fromisoformat(text.strip())
            local = parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
    except ValueError:
        return None
    return local.astimezone(dt.UTC)


class BroadcastUI(Capability):
    """`/broadcast` composing, `/broadcasts`, `/broadcast_status`, `/staff`: staff only, every action audited."""

    callbacks: tuple[str, ...] = CALLBACKS
    commands = ("broadcast", "broadcasts", "broadcast_status", "staff")

    def __init__(self, areas: Areas | None = None, rate: float = 30.0, paid_rate: float = 1000.0) -> None:
        self.areas = areas or load_areas()
        self.rate = rate
        self.paid_rate = paid_rate

    # ---- commands --------------------------------------------------------------------------------------

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        allowed = await staff.is_admin(ctx) if name == "staff" else await staff.is_staff(ctx)
        if not allowed:
            staff.refused(ctx, name)
            return [Reply(ctx.t("common.unknown_command"))]
        if name == "broadcast":
            return await self._new_draft(inc, ctx)
        if name == "broadcasts":
            return await self._list(ctx)
        if name == "broadcast_status":
            return await self._status(ctx, args.strip())
        return await self._staff(ctx, args.split())

    async def _new_draft(self, inc: Incoming, ctx: Context) -> list[Reply]:
        for old in await self._drafts(ctx):
            await ctx.session.delete(old)
        draft = Broadcast(created_by=ctx.user.id, status=DRAFT, step="text", created_at=ctx.now)
        draft.report_chat_id = inc.chat_id
        ctx.session.add(draft)
        await ctx.session.flush()
        staff.audit(ctx, "broadcast.compose", f"#{draft.id}")
        return [Reply(ctx.t("news.compose_text"), ((self._cancel_button(ctx, draft.id),),))]

    async def _list(self, ctx: Context) -> list[Reply]:
        rows = (
            await ctx.session.execute(
                select(Broadcast)
                .where(Broadcast.status.in_((APPROVAL, SCHEDULED, QUEUED, RUNNING)))
                .order_by(Broadcast.send_at, Broadcast.id)
            )
        ).scalars()
        lines: list[str] = []
        buttons: list[tuple[Button, ...]] = []
        tz = ZoneInfo(ctx.settings.timezone)
        for b in rows:
            when = b.send_at.astimezone(tz).strftime("%H:%M %d/%m/%Y") if b.send_at else "—"
            count = b.total or await self._audience(b).count(ctx.session)
            lines.append(
                ctx.t(
                    "news.list_line",
                    id=b.id,
                    status=ctx.t(f"news.state_{b.status}"),
                    when=when,
                    area=self.areas.label(b.area_list(), ctx.lang),
                    count=count,
                )
            )
            if b.status == SCHEDULED:
                buttons.append((Button(ctx.t("news.btn_cancel_id", id=b.id), callbacks.encode(CANCEL, b.id)),))
            if b.status == APPROVAL and b.created_by != ctx.user.id:  # nobody approves their own
                buttons.append(
                    (
                        Button(ctx.t("news.btn_approve_id", id=b.id), callbacks.encode(APPROVE, b.id)),
                        Button(ctx.t("news.btn_reject_id", id=b.id), callbacks.encode(REJECT, b.id)),
                    )
                )
        if not lines:
            return [Reply(ctx.t("news.list_empty"))]
        return [Reply(ctx.t("news.list_title") + "\n" + "\n".join(lines), tuple(buttons))]

    async def _status(self, ctx: Context, arg: str) -> list[Reply]:
        stmt = select(Broadcast).where(Broadcast.status != DRAFT)
        if arg:
            if not arg.lstrip("#").isdigit():
                return [Reply(ctx.t("news.status_usage"))]
            stmt = stmt.where(Broadcast.id == int(arg.lstrip("#")))
        b = (await ctx.session.execute(stmt.order_by(Broadcast.id.desc()).limit(1))).scalar_one_or_none()
        if b is None:
            return [Reply(ctx.t("news.status_none"))]
        if b.status in (SCHEDULED, CANCELLED, QUEUED):
            tz = ZoneInfo(ctx.settings.timezone)
            when = b.send_at.astimezone(tz).strftime("%H:%M %d/%m/%Y") if b.send_at else "—"
            return [Reply(ctx.t("news.status_waiting", id=b.id, status=ctx.t(f"news.state_{b.status}"), when=when))]
        p = await progress_of(ctx.session, b.id)
        rate = self.paid_rate if b.paid else self.rate
        return [Reply(report_text(ctx.content, ctx.lang, b, p, rate, final=b.status != RUNNING))]

    async def _staff(self, ctx: Context, args: list[str]) -> list[Reply]:
        if args[:1] == ["list"] or not args:
            members = list((await ctx.session.execute(select(StaffMember).order_by(StaffMember.user_id))).scalars())
            lines = [f"{uid} · admin" for uid in sorted(ctx.settings.admin_ids)]
            lines += [f"{m.user_id} · {m.role}" for m in members if m.user_id not in ctx.settings.admin_ids]
            return [Reply(ctx.t("news.staff_list", lines="\n".join(lines)))]
        if len(args) >= 2 and args[0] in ("add", "remove") and args[1].isdigit():
            uid = int(args[1])
            if args[0] == "add":
                role = args[2] if len(args) > 2 else "staff"
                if role not in ROLES:
                    return [Reply(ctx.t("news.staff_usage"))]
                member = await ctx.session.get(StaffMember, uid)
                if member is None:
                    ctx.session.add(StaffMember(user_id=uid, role=role, added_by=ctx.user.id, added_at=ctx.now))
                else:
                    member.role = role
                staff.audit(ctx, "staff.add", f"{uid} {role}")
                return [Reply(ctx.t("news.staff_added", id=uid, role=role))]
            if uid in ctx.settings.admin_ids:
                return [Reply(ctx.t("news.staff_bootstrap", id=uid))]
            member = await ctx.session.get(StaffMember, uid)
            if member is None:
                return [Reply(ctx.t("news.staff_not_found", id=uid))]
            await ctx.session.delete(member)
            staff.audit(ctx, "staff.remove", str(uid))
            return [Reply(ctx.t("news.staff_removed", id=uid))]
        return [Reply(ctx.t("news.staff_usage"))]

    # ---- typed answers and photos ----------------------------------------------------------------------

    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool]:
        """The router's one-statement probe: a draft of this user's exists (wants_text then checks the rest)."""
        return exists().where(Broadcast.created_by == user_id, Broadcast.status == DRAFT)

    async def wants_text(self, ctx: Context) -> bool:
        draft = await self._draft(ctx)
        return draft is not None and draft.step in ("text", "at", "area") and await staff.is_staff(ctx)

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        draft = await self._draft(ctx)
        if draft is None or not await staff.is_staff(ctx):
            return []
        text = inc.text or ""
        if draft.step == "at":
            return await self._schedule_at(ctx, draft, text)
        if draft.step == "area":
            return [self._search(ctx, draft, text)]
        try:
            draft.text = check_html(text)
        except HtmlError as err:
            return [Reply(ctx.t(err.key, **err.values), ((self._cancel_button(ctx, draft.id),),))]
        draft.step = "photo"
        rows = (
            (
                Button(ctx.t("news.btn_skip_photo"), callbacks.encode(SKIP_PHOTO, draft.id)),
                self._cancel_button(ctx, draft.id),
            ),
        )
        return [Reply(ctx.t("news.compose_photo"), rows)]

    async def wants_media(self, inc: Incoming, ctx: Context) -> bool:
        if inc.photo is None:
            return False
        draft = await self._draft(ctx)
        return draft is not None and draft.step == "photo" and await staff.is_staff(ctx)

    async def on_media(self, inc: Incoming, ctx: Context) -> list[Reply]:
        draft = await self._draft(ctx)
        if draft is None or inc.photo is None:
            return []
        try:
            check_html(draft.text, caption=True)
        except HtmlError as err:
            return [Reply(ctx.t("news.photo_caption_too_long", **err.values))]
        draft.photo = inc.photo
        draft.step = "audience"
        return [await self._audience_screen(ctx, draft, edit=False)]

    # ---- buttons ---------------------------------------------------------------------------------------

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if not await staff.is_staff(ctx):
            staff.refused(ctx, action)
            return [Reply(ctx.t("common.unknown_command"))]
        if not args or not args[0].isdigit():
            return [Reply(ctx.t("news.stale"))]
        bid = int(args[0])
        if action == CANCEL:
            return await self._cancel(ctx, bid)
        if action in (APPROVE, REJECT):
            return await self._decide(ctx, bid, approve=action == APPROVE)
        draft = await self._draft(ctx)
        if draft is None or draft.id != bid:
            return [Reply(ctx.t("news.no_draft"))]
        if action == SKIP_PHOTO and draft.step == "photo":
            draft.step = "audience"
            return [await self._audience_screen(ctx, draft, edit=True)]
        if draft.step in ("text", "photo"):
            return [Reply(ctx.t("news.stale"))]
        if action == AREA:
            draft.step = "area"
            return [self._area_screen(ctx, draft)]
        if action == UNIT and len(args) == 2:
            self._toggle_unit(draft, args[1])
            draft.step = "area"
            return [self._area_screen(ctx, draft)]
        if action == TOPIC and len(args) == 2:
            topics = set(draft.topic_list())
            if args[1] in {t.id for t in news_topics(ctx.content)}:
                topics ^= {args[1]}
            draft.topics = ",".join(sorted(topics))
            return [await self._audience_screen(ctx, draft, edit=True)]
        if action == PAID:
            if not draft.paid and not await staff.is_admin(ctx):  # billed per message: an admin's decision
                staff.refused(ctx, "broadcast.paid")
                return [Reply(ctx.t("news.paid_admin_only"))]
            draft.paid = not draft.paid
            return [await self._audience_screen(ctx, draft, edit=True)]
        if action == AUDIENCE:
            draft.step = "audience"
            return [await self._audience_screen(ctx, draft, edit=True)]
        if action == PREVIEW:
            return await self._preview(ctx, draft)
        if action == SEND:
            return await self._send_now(inc, ctx, draft)
        if action == SCHEDULE:
            draft.step = "at"
            return [Reply(ctx.t("news.ask_time"), ((self._cancel_button(ctx, draft.id),),))]
        return [Reply(ctx.t("news.stale"))]

    def _toggle_unit(self, draft: Broadcast, choice: str) -> None:
        if choice == ALL:
            draft.areas = ""
            return
        if self.areas.unit(choice) is None:
            return  # an id an older areas file had: nothing to add
        chosen = set(draft.area_list()) ^ {choice}
        draft.areas = ",".join(sorted(chosen))

    def _area_screen(self, ctx: Context, draft: Broadcast) -> Reply:
        """The chosen units (each with a button to drop it); the staff member types a name to add one."""
        rows: list[tuple[Button, ...]] = []
        for unit_id in draft.area_list():
            unit = self.areas.unit(unit_id)
            name = unit.name(ctx.lang) if unit else unit_id
            rows.append((Button(ctx.t("news.btn_unit_remove", name=name), callbacks.encode(UNIT, draft.id, unit_id)),))
        rows.append(self._area_controls(ctx, draft))
        text = ctx.t("news.area_staff", area=self.areas.label(draft.area_list(), ctx.lang))
        return Reply(text, tuple(rows), edit=True)

    def _area_controls(self, ctx: Context, draft: Broadcast) -> tuple[Button, ...]:
        return (
            Button(ctx.t("news.btn_whole_province"), callbacks.encode(UNIT, draft.id, ALL)),
            Button(ctx.t("news.btn_done"), callbacks.encode(AUDIENCE, draft.id)),
        )

    def _search(self, ctx: Context, draft: Broadcast, text: str) -> Reply:
        """Units matching a typed name, as buttons that add (or, ✅ already chosen, drop) them."""
        found = self.areas.search(text, limit=MAX_MATCHES)
        chosen = set(draft.area_list())
        rows: list[tuple[Button, ...]] = []
        for unit in found.units:
            label = unit.name(ctx.lang)
            if unit.id in chosen:
                label = ctx.t("news.btn_unit_chosen", name=label)
            rows.append((Button(label, callbacks.encode(UNIT, draft.id, unit.id)),))
        rows.append(self._area_controls(ctx, draft))
        return Reply(search_reply(ctx, self.areas, text, found), tuple(rows))

    async def _audience_screen(self, ctx: Context, draft: Broadcast, *, edit: bool) -> Reply:
        count = await self._audience(draft).count(ctx.session)
        chosen = set(draft.topic_list())
        topic_buttons = [
            Button(("✅ " if t.id in chosen else "") + ctx.t(t.label), callbacks.encode(TOPIC, draft.id, t.id))
            for t in news_topics(ctx.content)
        ]
        rows: list[tuple[Button, ...]] = [(Button(ctx.t("news.btn_area"), callbacks.encode(AREA, draft.id)),)]
        rows += [tuple(topic_buttons[i : i + 2]) for i in range(0, len(topic_buttons), 2)]
        paid_label = "news.btn_paid_on" if draft.paid else "news.btn_paid_off"
        rows.append((Button(ctx.t(paid_label), callbacks.encode(PAID, draft.id)),))
        rows.append(
            (
                Button(ctx.t("news.btn_preview"), callbacks.encode(PREVIEW, draft.id)),
                self._cancel_button(ctx, draft.id),
            )
        )
        text = ctx.t(
            "news.audience",
            area=self.areas.label(draft.area_list(), ctx.lang),
            topics=self._topics_label(ctx, draft),
            count=count,
        )
        return Reply(text, tuple(rows), edit=edit)

    async def _preview(self, ctx: Context, draft: Broadcast) -> list[Reply]:
        draft.step = "preview"
        count = await self._audience(draft).count(ctx.session)
        controls = (
            (
                Button(ctx.t("news.btn_send_now"), callbacks.encode(SEND, draft.id)),
                Button(ctx.t("news.btn_schedule"), callbacks.encode(SCHEDULE, draft.id)),
            ),
            (
                Button(ctx.t("news.btn_edit_audience"), callbacks.encode(AUDIENCE, draft.id)),
                self._cancel_button(ctx, draft.id),
            ),
        )
        summary = ctx.t(
            "news.preview_ready",
            area=self.areas.label(draft.area_list(), ctx.lang),
            topics=self._topics_label(ctx, draft),
            count=count,
        )
        # exactly what a citizen receives (their language decides only the button's label)
        return [citizen_reply(ctx.content, draft.text, draft.photo, ctx.lang), Reply(summary, controls)]

    async def _send_now(self, inc: Incoming, ctx: Context, draft: Broadcast) -> list[Reply]:
        if draft.step != "preview":
            return [Reply(ctx.t("news.stale"))]
        if refused := await self._paid_refused(ctx, draft):
            return refused
        count = await self._audience(draft).count(ctx.session)
        draft.report_chat_id = inc.chat_id
        if self._needs_approval(ctx, count):
            return self._ask_approval(ctx, draft, count, when=None)
        draft.status, draft.send_at = QUEUED, ctx.now
        staff.audit(ctx, "broadcast.send", draft.audit_detail(), audience_size=count)
        self._wake(ctx)
        # the controls become the confirmation (no second press), so the engine's progress message comes after it
        return [Reply(ctx.t("news.queued", id=draft.id, count=count), edit=True)]

    async def _schedule_at(self, ctx: Context, draft: Broadcast, text: str) -> list[Reply]:
        tz = ZoneInfo(ctx.settings.timezone)
        when = parse_when(text, tz)
        cancel = ((self._cancel_button(ctx, draft.id),),)
        if when is None:
            return [Reply(ctx.t("news.bad_time"), cancel)]
        if when <= ctx.now:
            return [Reply(ctx.t("news.past_time"), cancel)]
        if refused := await self._paid_refused(ctx, draft):
            return refused
        count = await self._audience(draft).count(ctx.session)
        if self._needs_approval(ctx, count):
            return self._ask_approval(ctx, draft, count, when=when)
        draft.status, draft.send_at = SCHEDULED, when
        staff.audit(ctx, "broadcast.schedule", f"{draft.audit_detail()} at={when.isoformat()}", audience_size=count)
        local = when.astimezone(tz).strftime("%H:%M %d/%m/%Y")
        return [Reply(ctx.t("news.scheduled", id=draft.id, when=local, count=count))]

    # ---- paid mode and the second approval --------------------------------------------------------------

    async def _paid_refused(self, ctx: Context, draft: Broadcast) -> list[Reply]:
        """Paid mode switched on by someone who is not (or no longer) an admin does not go out as paid."""
        if draft.paid and not await staff.is_admin(ctx):
            staff.refused(ctx, "broadcast.paid")
            return [Reply(ctx.t("news.paid_admin_only"))]
        return []

    @staticmethod
    def _needs_approval(ctx: Context, count: int) -> bool:
        threshold = ctx.settings.broadcast_approval_audience
        return threshold > 0 and count >= threshold

    def _ask_approval(self, ctx: Context, draft: Broadcast, count: int, when: dt.datetime | None) -> list[Reply]:
        # `step` remembers what was asked for: "now", or "at" with send_at holding the time
        draft.status, draft.step, draft.send_at = APPROVAL, "at" if when else "now", when
        at = f" at={when.isoformat()}" if when else ""
        staff.audit(ctx, "broadcast.approval_requested", draft.audit_detail() + at, audience_size=count)
        return [Reply(ctx.t("news.approval_needed", id=draft.id, count=count), edit=when is None)]

    async def _decide(self, ctx: Context, bid: int, *, approve: bool) -> list[Reply]:
        b = await ctx.session.get(Broadcast, bid, with_for_update=True)
        if b is None or b.status != APPROVAL:
            return [Reply(ctx.t("news.approval_stale", id=bid))]
        if b.created_by == ctx.user.id:
            staff.refused(ctx, "broadcast.approve_own")
            return [Reply(ctx.t("news.approval_own", id=bid))]
        count = await self._audience(b).count(ctx.session)
        if not approve:
            b.status = CANCELLED
            staff.audit(ctx, "broadcast.reject", b.audit_detail(), audience_size=count)
            return [Reply(ctx.t("news.approval_rejected", id=bid))]
        if b.paid and not await staff.is_admin(ctx):  # approving a billed broadcast is an admin's decision too
            staff.refused(ctx, "broadcast.paid")
            return [Reply(ctx.t("news.paid_admin_only"))]
        if b.step == "at" and b.send_at is not None and b.send_at > ctx.now:
            b.status = SCHEDULED
        else:
            b.status, b.send_at = QUEUED, ctx.now
        b.step = "done"
        staff.audit(ctx, "broadcast.approve", b.audit_detail(), audience_size=count)
        self._wake(ctx)
        return [Reply(ctx.t("news.approval_done", id=bid, count=count))]

    @staticmethod
    def _wake(ctx: Context) -> None:
        engine = ctx.services.broadcasts
        if engine is not None:
            engine.wake()  # it still reads the row only after this update's transaction commits

    async def _cancel(self, ctx: Context, bid: int) -> list[Reply]:
        b = await ctx.session.get(Broadcast, bid)
        own_only = b is not None and b.status in (DRAFT, APPROVAL)  # someone else's waits for their decision
        if b is None or b.status not in (DRAFT, SCHEDULED, APPROVAL) or (own_only and b.created_by != ctx.user.id):
            return [Reply(ctx.t("news.nothing_to_cancel"))]
        b.status = CANCELLED
        staff.audit(ctx, "broadcast.cancel", b.audit_detail())
        return [Reply(ctx.t("news.cancelled", id=b.id))]

    # ---- helpers ---------------------------------------------------------------------------------------

    async def _drafts(self, ctx: Context) -> list[Broadcast]:
        stmt = select(Broadcast).where(Broadcast.created_by == ctx.user.id, Broadcast.status == DRAFT)
        return list((await ctx.session.execute(stmt)).scalars())

    async def _draft(self, ctx: Context) -> Broadcast | None:
        drafts = await self._drafts(ctx)
        return max(drafts, key=lambda b: b.id) if drafts else None

    @staticmethod
    def _audience(b: Broadcast) -> Audience:
        return Audience.of(b.area_list(), b.topic_list())

    def _topics_label(self, ctx: Context, b: Broadcast) -> str:
        chosen = set(b.topic_list())
        labels = [ctx.t(t.label) for t in news_topics(ctx.content) if t.id in chosen]
        return ", ".join(labels) if labels else ctx.t("news.all_subscribers")

    def _cancel_button(self, ctx: Context, bid: int) -> Button:
        return Button(ctx.t("news.btn_cancel"), callbacks.encode(CANCEL, bid))
