"""Handover to staff: tickets in the staff group, relaying both ways, take/close, ratings, office hours, re-posts."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

import actions.router  # noqa: F401  (registers the c_menu button the replies carry)
from actions.base import Context, Services
from actions.handover import (
    HOLIDAYS_FILE,
    OUTBOX_LEASE,
    HandoverCapability,
    HolidayFile,
    OfficeHours,
    area_from_subscriptions,
    handover_button,
    load_holidays,
    purge,
    remember,
)
from core.settings import Settings
from kernel import callbacks
from kernel.content import DEFAULT_DIR, Content
from kernel.outbox import Blocked, RetryLater
from kernel.types import Button, Incoming, Reply, Understanding
from store.all_models import Base
from store.models import User
from store.models_handover import CLOSED, TAKEN, WAITING, HandoverOutbox, RecentMessage, Ticket
from store.models_staff import StaffMember
from tests.support.logscan import LogBuffer

VN = "Asia/Ho_Chi_Minh"
GROUP = -100500
CITIZEN = 7001
STAFF = 9001
ADMIN = 9999
# Tuesday 3 March 2026: 09:00 and 20:00 in Vietnam (UTC+7).
IN_HOURS = dt.datetime(2026, 3, 3, 2, 0, tzinfo=dt.UTC)
EVENING = dt.datetime(2026, 3, 3, 13, 0, tzinfo=dt.UTC)


class FakeSender:
    """The outbound port: records what was sent where; a chat can be made to fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Reply]] = []
        self.fail: dict[int, Exception] = {}
        self._next = 1000

    async def send(self, chat_id: int, reply: Reply, *, paid: bool = False) -> int:
        if chat_id in self.fail:
            raise self.fail[chat_id]
        self._next += 1
        self.sent.append((chat_id, reply))
        return self._next

    def to(self, chat_id: int) -> list[Reply]:
        return [r for c, r in self.sent if c == chat_id]


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Content:
    # Only the files these capabilities use, so another area's work in progress cannot break these tests.
    directory = tmp_path_factory.mktemp("content")
    for name in ("common.yml", "handover.yml"):
        shutil.copy(DEFAULT_DIR / name, directory / name)
    return Content.load(directory)


async def make_engine(path: Path) -> AsyncEngine:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def _fk(dbapi_conn: Any, _: Any) -> None:  # SQLite enforces ON DELETE CASCADE only when asked
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await make_engine(tmp_path / "handover.db")
    async with async_sessionmaker(engine)() as session, session.begin():
        session.add(StaffMember(user_id=STAFF, role="staff", added_by=ADMIN))  # /staff add, as an admin does
    yield engine
    await engine.dispose()


class World:
    """A citizen, a staff member and the staff group, each action its own unit of work, as in the bot."""

    def __init__(self, engine: AsyncEngine, content: Content, cap: HandoverCapability) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.content = content
        self.cap = cap
        self.sender = FakeSender()
        self.settings = Settings(_env_file=None, staff_chat_id=GROUP, admin_ids=[ADMIN])  # type: ignore[call-arg]
        self.now = IN_HOURS
        self.services = Services(sender=self.sender)
        self.run_after_commit = True

    async def run(self, user_id: int, work: Callable[[Context], Awaitable[list[Reply]]]) -> list[Reply]:
        async with self.sessions() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None:
                user = User(id=user_id, chat_id=user_id, lang="vi")
                session.add(user)
                await session.flush()
            ctx = Context(self.content, self.settings, session, user, self.now, self.services)
            replies = await work(ctx)
        for send in ctx.after_commit if self.run_after_commit else ():  # as the adapter does, once committed
            await send()
        return replies

    # ---- the citizen -----------------------------------------------------------------------------------

    async def remember(self, text: str, intent: str | None) -> None:
        async def work(ctx: Context) -> list[Reply]:
            await remember(ctx, text, intent)
            return []

        await self.run(CITIZEN, work)

    async def ask_for_staff(self, name: str = "An") -> list[Reply]:
        inc = Incoming(CITIZEN, CITIZEN, "vi", display_name=name, text="cho tôi gặp cán bộ")
        inc = Incoming(**{**_fields(inc), "nlu": Understanding("human_handover", 0.95)})
        return await self.run(CITIZEN, lambda ctx: self.cap.on_intent(inc, ctx))

    async def say(self, text: str) -> list[Reply] | None:
        """What the router would do first: None when the handover does not take the text (the bot answers)."""
        inc = Incoming(CITIZEN, CITIZEN, "vi", display_name="An", text=text)

        async def work(ctx: Context) -> list[Reply]:
            if not await self.cap.wants_text(ctx):
                return [Reply("<bot answers>")]
            return await self.cap.on_text(inc, ctx)

        replies = await self.run(CITIZEN, work)
        return None if replies == [Reply("<bot answers>")] else replies

    async def send_media(self, kind: str, photo: str | None = None, caption: str | None = None) -> list[Reply] | None:
        inc = Incoming(CITIZEN, CITIZEN, "vi", text=caption, photo=photo, kind=kind)

        async def work(ctx: Context) -> list[Reply]:
            if not await self.cap.wants_media(inc, ctx):
                return [Reply("<bot answers>")]
            return await self.cap.on_media(inc, ctx)

        replies = await self.run(CITIZEN, work)
        return None if replies == [Reply("<bot answers>")] else replies

    async def press(self, button: Button | str, user_id: int = CITIZEN, chat_id: int | None = None) -> list[Reply]:
        data = button if isinstance(button, str) else button.data
        inc = Incoming(
            user_id,
            chat_id if chat_id is not None else user_id,
            "vi",
            display_name="Bình",
            callback=callbacks.decode(data),
        )
        return await self.run(user_id, lambda ctx: self.cap.on_callback(inc, ctx))

    # ---- the staff -------------------------------------------------------------------------------------

    async def staff_says(
        self, text: str | None, reply_to: int | None, photo: str | None = None, user_id: int = STAFF
    ) -> list[Reply]:
        inc = Incoming(
            user_id, GROUP, "vi", display_name="Bình", text=text, chat_type="supergroup", reply_to=reply_to, photo=photo
        )
        return await self.run(user_id, lambda ctx: self.cap.on_staff_group(inc, ctx))

    async def command(self, user_id: int, name: str) -> list[Reply]:
        inc = Incoming(user_id, user_id, "vi", text=f"/{name}", kind="command")
        return await self.run(user_id, lambda ctx: self.cap.on_command(name, "", inc, ctx))

    async def tickets(self) -> list[Ticket]:
        async with self.sessions() as session:
            return list((await session.scalars(select(Ticket).order_by(Ticket.id))).all())

    def post(self) -> tuple[int, Reply]:
        """The last ticket post in the group and its message id."""
        for i in range(len(self.sender.sent) - 1, -1, -1):
            chat, reply = self.sender.sent[i]
            if chat == GROUP and "🆘" in reply.text:
                return 1001 + i, reply
        raise AssertionError("no ticket post in the group")


def _fields(inc: Incoming) -> dict[str, Any]:
    return {f: getattr(inc, f) for f in inc.__dataclass_fields__}


def hours() -> OfficeHours:
    return OfficeHours.parse(holidays=load_holidays(), timezone=VN)


@pytest.fixture
def world(engine: AsyncEngine, content: Content) -> World:
    cap = HandoverCapability(
        hours(), content=content, sessions=async_sessionmaker(engine, expire_on_commit=False), repost_after_s=1800
    )
    w = World(engine, content, cap)
    cap._services = w.services  # the same object the bot shares between handlers and background jobs
    return w


def labels(reply: Reply) -> list[str]:
    return [b.label for row in reply.buttons for b in row]


def button(reply: Reply, label: str) -> Button:
    for row in reply.buttons:
        for b in row:
            if b.label == label:
                return b
    raise AssertionError(f"no button {label!r} in {labels(reply)}")


def t(content: Content, key: str, lang: str = "vi", **values: object) -> str:
    return content.text(f"handover.{key}", lang, **values)


# ---- office hours and holidays ----------------------------------------------------------------------------


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(VN))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(2026, 3, 3, 9), local(2026, 3, 3, 9)),  # open: now
        (local(2026, 3, 3, 7, 29), local(2026, 3, 3, 7, 30)),
        (local(2026, 3, 3, 11, 30), local(2026, 3, 3, 13, 30)),  # lunch break
        (local(2026, 3, 3, 17, 0), local(2026, 3, 4, 7, 30)),  # closing time is closed
        (local(2026, 3, 6, 18, 0), local(2026, 3, 9, 7, 30)),  # Friday evening → Monday
        (local(2026, 4, 29, 17, 5), local(2026, 5, 4, 7, 30)),  # 30/4 and 1/5 holidays, then the weekend
        (local(2026, 2, 13, 16, 59), local(2026, 2, 13, 16, 59)),
        (local(2026, 2, 13, 17, 0), local(2026, 2, 23, 7, 30)),  # Tết Bính Ngọ: 16–20 February
    ],
)
def test_next_opening_time(now: dt.datetime, expected: dt.datetime) -> None:
    h = hours()
    assert h.next_open(now.astimezone(dt.UTC)) == expected.astimezone(dt.UTC)
    assert h.is_open(now) == (now == expected)


def test_office_hours_spec_is_validated() -> None:
    custom = OfficeHours.parse("mon-fri 08:00-12:00; sat 08:00-11:00", timezone=VN)
    assert custom.is_open(local(2026, 3, 7, 9)) and not custom.is_open(local(2026, 3, 8, 9))
    for bad in ("", "mon-fri", "mon-fri 12:00-08:00", "fri-mon 08:00-09:00", "xyz 08:00-09:00", "mon 8-9"):
        with pytest.raises(ValueError, match="office hours"):
            OfficeHours.parse(bad)


def test_holidays_file_covers_2026_and_2027_on_weekdays_with_sources() -> None:
    import yaml

    parsed = HolidayFile.model_validate(yaml.safe_load(HOLIDAYS_FILE.read_text(encoding="utf-8")))
    dates = [h.date for h in parsed.holidays]
    assert len(dates) == len(set(dates))
    assert {d.year for d in dates} == {2026, 2027}
    assert all(d.weekday() < 5 for d in dates), "weekends are closed anyway; list only weekdays"
    assert all(h.source and h.checked for h in parsed.holidays)
    for must in (dt.date(2026, 1, 1), dt.date(2026, 2, 17), dt.date(2026, 4, 30), dt.date(2026, 9, 2)):
        assert must in dates
    assert {dt.date(y, 1, 1) for y in (2026, 2027)} <= set(dates)


# ---- inside office hours ----------------------------------------------------------------------------------


async def test_handover_inside_office_hours_posts_redacted_context_and_relays(world: World, content: Content) -> None:
    await world.remember("kich hoat vneid bao loi, sdt cua toi 0912 345 678", "eid_activate")
    await world.remember("huhu <b>sao vay</b>", None)
    [reply] = await world.ask_for_staff(name="An <Nguyễn>")

    [ticket] = await world.tickets()
    assert ticket.status == WAITING and ticket.open_user_id == CITIZEN and ticket.opened_in_hours
    assert reply.text == t(content, "opened_live", id=ticket.id)
    assert labels(reply) == [t(content, "btn_back")]

    post_id, post = world.post()
    assert ticket.group_message_id == post_id
    assert "An &lt;Nguyễn&gt;" in post.text and "<Nguyễn>" not in post.text
    assert "[phone]" in post.text and "0912" not in post.text
    assert "&lt;b&gt;sao vay&lt;/b&gt;" in post.text
    assert "→ eid_activate" in post.text and t(content, "group_not_understood") in post.text
    assert t(content, "group_origin_intent") in post.text and t(content, "group_status_waiting") in post.text
    assert labels(post) == [t(content, "btn_take"), t(content, "btn_close")]
    async with world.sessions() as session:  # the ring was copied into the post, not kept twice
        assert await session.scalar(select(func.count()).select_from(RecentMessage)) == 0

    # The citizen's next messages go to the group (the bot stays silent), ID numbers masked.
    [ack] = await world.say("so cccd 001099012345, toi bi khoa tai khoan") or []
    assert ack.text == t(content, "relayed")
    relayed = world.sender.to(GROUP)[-1]
    assert relayed.text == t(
        content, "group_citizen_msg", id=ticket.id, name="An <Nguyễn>", text="so cccd [id], toi bi khoa tai khoan"
    )

    # A staff member answers by replying to the post: that takes the ticket and reaches the citizen.
    [note] = await world.staff_says("Chào bạn, bạn mang CCCD tới công an phường nhé.", reply_to=post_id)
    assert note.text == t(content, "group_auto_taken", id=ticket.id, name="Bình")
    to_citizen = world.sender.to(CITIZEN)[-1]
    assert to_citizen.text == t(
        content, "from_staff", name="Bình", text="Chào bạn, bạn mang CCCD tới công an phường nhé."
    )
    [ticket] = await world.tickets()
    assert ticket.status == TAKEN and ticket.taken_by == STAFF

    # Replying to a relayed citizen message works as well as replying to the post.
    relayed_id = 1000 + len(world.sender.sent) - 1  # the citizen's relayed message is the one before the answer
    assert world.sender.sent[relayed_id - 1001][0] == GROUP
    assert await world.staff_says("Bạn còn cần gì nữa không?", reply_to=relayed_id) == []
    assert world.sender.to(CITIZEN)[-1].text.endswith("Bạn còn cần gì nữa không?")

    # Ordinary group chatter (not a reply to a ticket message) is not relayed.
    before = len(world.sender.sent)
    assert await world.staff_says("họp lúc 2h nhé", reply_to=None) == []
    assert await world.staff_says("ok", reply_to=123456) == []
    assert len(world.sender.sent) == before


async def test_take_edits_the_post_and_tells_the_citizen_then_close_asks_for_a_rating(
    world: World, content: Content
) -> None:
    await world.ask_for_staff()
    _, post = world.post()
    [ticket] = await world.tickets()

    [edited] = await world.press(button(post, t(content, "btn_take")), user_id=STAFF, chat_id=GROUP)
    assert edited.edit
    assert t(content, "group_status_taken", name="Bình", time="09:00 03/03") in edited.text
    assert "🆘" in edited.text  # the ticket's context stays in the post
    assert labels(edited) == [t(content, "btn_close")]
    taken_notice = world.sender.to(CITIZEN)[-1]
    assert taken_notice.text == t(content, "taken", name="Bình", id=ticket.id)

    # A second [Take] (another staff member, an old button) changes nothing and shows who has it.
    [again] = await world.press(button(post, t(content, "btn_take")), user_id=ADMIN, chat_id=GROUP)
    assert t(content, "group_status_taken", name="Bình", time="09:00 03/03") in again.text
    [ticket] = await world.tickets()
    assert ticket.taken_by == STAFF

    # Staff buttons pressed outside the staff group do nothing.
    [refused] = await world.press(callbacks.encode("h_close", ticket.id), user_id=CITIZEN)
    assert refused.text == content.text("common.stale_button", "vi")
    assert (await world.tickets())[0].status == TAKEN

    world.now = IN_HOURS + dt.timedelta(minutes=25)
    [closed_post] = await world.press(button(edited, t(content, "btn_close")), user_id=STAFF, chat_id=GROUP)
    assert t(content, "group_status_closed", time="09:25 03/03", name="Bình") in closed_post.text
    assert closed_post.buttons == ()
    rating_prompt = world.sender.to(CITIZEN)[-1]
    assert t(content, "closed_by_staff", id=ticket.id) in rating_prompt.text
    assert labels(rating_prompt) == [t(content, "btn_rate", n=n) for n in range(1, 6)]
    [ticket] = await world.tickets()
    assert ticket.status == CLOSED and ticket.open_user_id is None and ticket.close_reason == "staff"
    assert ticket.summary == "" and ticket.citizen_name == ""  # nothing of the citizen kept once closed
    assert await world.say("cảm ơn") is None  # the bot answers again

    [thanks] = await world.press(button(rating_prompt, t(content, "btn_rate", n=4)))
    assert thanks.text == t(content, "rated", stars="⭐⭐⭐⭐") and thanks.edit
    [ticket] = await world.tickets()
    assert ticket.rating == 4 and ticket.rated_at == world.now


async def test_group_members_without_the_staff_role_cannot_take_close_or_answer(
    world: World, content: Content, log_scan: LogBuffer
) -> None:
    """A leaked invite or a removed staff member: in the group, but never answering citizens as "cán bộ"."""
    intruder = 9666
    await world.ask_for_staff()
    post_id, post = world.post()
    [ticket] = await world.tickets()
    to_citizen = len(world.sender.to(CITIZEN))
    not_staff = t(content, "group_not_staff", id=ticket.id)

    [take] = await world.press(button(post, t(content, "btn_take")), user_id=intruder, chat_id=GROUP)
    [close] = await world.press(callbacks.encode("h_close", ticket.id), user_id=intruder, chat_id=GROUP)
    [reply] = await world.staff_says("Chào bạn, mình là cán bộ, gửi mình số CCCD nhé", post_id, user_id=intruder)
    assert [take.text, close.text, reply.text] == [not_staff] * 3
    [ticket] = await world.tickets()
    assert ticket.status == WAITING and ticket.taken_by is None
    assert len(world.sender.to(CITIZEN)) == to_citizen  # nothing reached the citizen
    refusals = [line for line in log_scan.since_mark() if '"staff.refused"' in line]
    assert len(refusals) == 3

    # Removed from the staff list: the same member loses the buttons at once.
    async with world.sessions() as session, session.begin():
        await session.delete(await session.get(StaffMember, STAFF))
    [take] = await world.press(button(post, t(content, "btn_take")), user_id=STAFF, chat_id=GROUP)
    assert take.text == not_staff
    [ticket] = await world.tickets()
    assert ticket.status == WAITING


async def test_one_open_ticket_per_citizen(world: World, content: Content) -> None:
    await world.ask_for_staff()
    [again] = await world.ask_for_staff()
    [ticket] = await world.tickets()
    assert again.text == t(content, "already_live", id=ticket.id)
    assert len([r for r in world.sender.to(GROUP) if "🆘" in r.text]) == 1

    async with world.sessions() as session:  # the database refuses a second open ticket whatever the code does
        session.add(Ticket(user_id=CITIZEN, open_user_id=CITIZEN, status=WAITING))
        with pytest.raises(IntegrityError):
            await session.flush()

    # Once closed, a new request opens a new ticket.
    [back] = await world.press(callbacks.encode("h_back", ticket.id))
    assert back.text == t(content, "cancelled", id=ticket.id)
    assert world.sender.to(GROUP)[-1].text == t(content, "group_citizen_back", id=ticket.id)
    await world.ask_for_staff()
    first, second = await world.tickets()
    assert first.status == CLOSED and first.close_reason == "citizen" and second.status == WAITING


async def test_back_to_the_assistant_after_a_conversation_offers_a_rating(world: World, content: Content) -> None:
    await world.ask_for_staff()
    post_id, _ = world.post()
    await world.staff_says("Chào bạn", reply_to=post_id)
    [ticket] = await world.tickets()
    [back] = await world.press(callbacks.encode("h_back", ticket.id))
    assert t(content, "back") in back.text
    assert t(content, "btn_rate", n=5) in labels(back)
    assert await world.say("kich hoat vneid") is None
    [late] = await world.staff_says("Bạn còn đó không?", reply_to=post_id)
    assert late.text == t(content, "group_already_closed", id=ticket.id)
    [rated] = await world.press(callbacks.encode("h_rate", ticket.id, 5))
    assert (await world.tickets())[0].rating == 5 and "⭐⭐⭐⭐⭐" in rated.text
    # An old rating button for a ticket that is not the citizen's is refused.
    [other] = await world.press(callbacks.encode("h_rate", ticket.id, 1), user_id=ADMIN)
    assert other.text == t(content, "stale")
    assert (await world.tickets())[0].rating == 5


# ---- outside office hours ---------------------------------------------------------------------------------


async def test_outside_office_hours_the_ticket_waits_and_the_bot_keeps_helping(world: World, content: Content) -> None:
    world.now = EVENING
    [reply] = await world.ask_for_staff()
    [ticket] = await world.tickets()
    assert not ticket.opened_in_hours
    assert reply.text == t(content, "opened_queued", id=ticket.id, when="07:30 ngày mai")
    assert labels(reply) == [t(content, "btn_cancel"), content.text("common.btn_menu", "vi")]
    _, post = world.post()
    assert t(content, "group_queued", when="07:30 ngày mai") in post.text
    assert await world.say("kich hoat vneid") is None  # not relayed: the bot answers
    assert await world.send_media("sticker") is None
    [again] = await world.ask_for_staff()
    assert again.text == t(content, "already_queued", id=ticket.id, when="07:30 ngày mai")

    # Next morning, still untaken: the bot still answers (the citizen was never told staff are on).
    world.now = EVENING + dt.timedelta(hours=13)
    assert await world.say("con do khong") is None

    # A staff member takes it: the citizen is told, and from then on messages are relayed.
    await world.press(button(post, t(content, "btn_take")), user_id=STAFF, chat_id=GROUP)
    assert world.sender.to(CITIZEN)[-1].text == t(content, "taken", name="Bình", id=ticket.id)
    [ack] = await world.say("toi can ho tro") or []
    assert ack.text == t(content, "relayed")


async def test_an_untaken_ticket_stops_silencing_the_bot_when_office_hours_end(world: World) -> None:
    world.now = dt.datetime(2026, 3, 3, 9, 50, tzinfo=dt.UTC)  # 16:50 local
    await world.ask_for_staff()
    assert await world.say("alo") is not None
    world.now = dt.datetime(2026, 3, 3, 10, 5, tzinfo=dt.UTC)  # 17:05 local: closed
    assert await world.say("alo") is None


# ---- failures ---------------------------------------------------------------------------------------------


async def test_group_unreachable_keeps_no_ticket(world: World, content: Content) -> None:
    world.sender.fail[GROUP] = RetryLater(3.0)
    await world.ask_for_staff()  # answered at once; the post goes after the commit, and fails
    assert world.sender.to(CITIZEN)[-1].text == t(content, "send_failed")
    assert await world.tickets() == []
    del world.sender.fail[GROUP]
    await world.ask_for_staff()
    assert [tk.status for tk in await world.tickets()] == [WAITING]


async def test_citizen_who_blocked_the_bot_closes_the_ticket(world: World, content: Content) -> None:
    await world.ask_for_staff()
    post_id, _ = world.post()
    world.sender.fail[CITIZEN] = Blocked("Forbidden: bot was blocked by the user")
    [_auto_taken] = await world.staff_says("Chào bạn", reply_to=post_id)
    [ticket] = await world.tickets()
    assert world.sender.to(GROUP)[-1].text == t(content, "group_blocked", id=ticket.id)
    assert ticket.status == CLOSED and ticket.close_reason == "blocked"
    async with world.sessions() as session:
        citizen = await session.get(User, CITIZEN)
        assert citizen is not None and citizen.active is False


async def test_transient_failure_to_the_citizen_is_reported_to_staff(world: World, content: Content) -> None:
    await world.ask_for_staff()
    post_id, _ = world.post()
    world.sender.fail[CITIZEN] = RetryLater(5.0)
    await world.staff_says("Chào bạn", reply_to=post_id)
    [ticket] = await world.tickets()
    told = world.sender.to(GROUP)[-1]
    assert told.text == t(content, "group_not_delivered", id=ticket.id) and told.reply_to == post_id
    assert ticket.status == TAKEN  # still open: the staff member can send again


async def test_a_relayed_message_the_group_does_not_take_is_reported_to_the_citizen(
    world: World, content: Content
) -> None:
    await world.ask_for_staff()
    world.sender.fail[GROUP] = RetryLater(30.0)  # longer than a send waits out
    [ack] = await world.say("Tôi cần hỏi về hộ chiếu")  # type: ignore[misc]
    assert ack.text == t(content, "relayed")
    assert world.sender.to(CITIZEN)[-1].text == t(content, "send_failed")


async def test_no_send_happens_inside_the_transaction_and_a_message_left_queued_is_sent_once(
    world: World, content: Content
) -> None:
    sending_in_transaction: list[bool] = []
    send = world.sender.send

    async def watched(chat_id: int, reply: Reply, *, paid: bool = False) -> int:
        async with world.sessions() as probe:  # another connection sees the ticket only once it is committed
            sending_in_transaction.append(await probe.scalar(select(func.count()).select_from(Ticket)) == 0)
        return await send(chat_id, reply, paid=paid)

    world.sender.send = watched  # type: ignore[method-assign]
    await world.ask_for_staff()
    assert sending_in_transaction == [False]  # the post went after the commit

    world.run_after_commit = False  # the process dies between the commit and the send
    await world.say("Cho tôi hỏi thêm")
    assert len(world.sender.to(GROUP)) == 1
    assert await world.cap.deliver_left(world.now) == 0  # still leased to the process that queued it
    later = world.now + OUTBOX_LEASE
    assert await world.cap.deliver_left(later) == 1
    assert await world.cap.deliver_left(later + OUTBOX_LEASE) == 0  # sent once, gone
    assert "Cho tôi hỏi thêm" in world.sender.to(GROUP)[-1].text
    async with world.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(HandoverOutbox)) == 0


# ---- media ------------------------------------------------------------------------------------------------


async def test_photos_are_relayed_both_ways_and_other_media_explained(world: World, content: Content) -> None:
    await world.ask_for_staff()
    post_id, _ = world.post()
    [ack] = await world.send_media("photo", photo="PHOTO-1", caption="giấy hẹn, sđt 0912345678") or []
    assert ack.text == t(content, "relayed")
    relayed = world.sender.to(GROUP)[-1]
    assert relayed.photo == "PHOTO-1" and "[phone]" in relayed.text
    [unsupported] = await world.send_media("voice") or []
    assert unsupported.text == t(content, "media_unsupported")
    await world.staff_says("Ảnh mẫu", reply_to=post_id, photo="PHOTO-2")
    assert world.sender.to(CITIZEN)[-1].photo == "PHOTO-2"


# ---- staff tools ------------------------------------------------------------------------------------------


async def test_tickets_command_is_for_staff_only(world: World, content: Content) -> None:
    [refused] = await world.command(CITIZEN, "tickets")
    assert refused.text == content.text("common.unknown_command", "vi")
    [empty] = await world.command(ADMIN, "tickets")
    assert empty.text == t(content, "tickets_none")
    await world.ask_for_staff(name="Lan")
    [listing] = await world.command(ADMIN, "tickets")
    [ticket] = await world.tickets()
    assert t(content, "tickets_title", count=1) in listing.text
    assert t(content, "tickets_waiting", id=ticket.id, name="Lan", since="09:00 03/03") in listing.text


async def test_stale_tickets_are_reposted_once_per_period_in_office_hours(world: World, content: Content) -> None:
    await world.ask_for_staff(name="Lan")
    [ticket] = await world.tickets()
    assert await world.cap.repost_stale(IN_HOURS + dt.timedelta(minutes=10)) == 0
    later = IN_HOURS + dt.timedelta(minutes=31)
    assert await world.cap.repost_stale(later) == 1
    repost = world.sender.to(GROUP)[-1]
    assert repost.text == t(content, "group_repost", id=ticket.id, name="Lan", since="09:00 03/03")
    assert labels(repost) == [t(content, "btn_take"), t(content, "btn_close")]
    assert await world.cap.repost_stale(later + dt.timedelta(minutes=1)) == 0
    assert await world.cap.repost_stale(EVENING + dt.timedelta(hours=2)) == 0  # nobody is there at night
    # A reply to the re-post reaches the citizen like a reply to the post.
    repost_id = 1000 + len(world.sender.sent)
    await world.staff_says("Mình nhận nhé", reply_to=repost_id)
    assert world.sender.to(CITIZEN)[-1].text.endswith("Mình nhận nhé")
    [ticket] = await world.tickets()
    assert ticket.reposts == 1 and ticket.status == TAKEN
    assert await world.cap.repost_stale(later + dt.timedelta(hours=2)) == 0  # taken: no more re-posts


# ---- the ring, the area, the button -------------------------------------------------------------------------


async def test_recent_message_ring_is_capped_and_purged_after_a_day(world: World) -> None:
    for i in range(8):
        world.now = IN_HOURS + dt.timedelta(minutes=i)
        await world.remember(f"tin {i}", "greet")
    async with world.sessions() as session:
        texts = list((await session.scalars(select(RecentMessage.text).order_by(RecentMessage.at))).all())
        assert texts == [f"tin {i}" for i in range(3, 8)]
    async with world.sessions() as session, session.begin():
        assert await purge(session, IN_HOURS + dt.timedelta(hours=23)) == 0
        assert await purge(session, IN_HOURS + dt.timedelta(days=1, minutes=5)) == 2  # minutes 3 and 4
        assert await purge(session, IN_HOURS + dt.timedelta(days=1, minutes=10)) == 3


async def test_area_comes_from_the_news_subscriptions_table_when_there_is_one(tmp_path: Path) -> None:
    meta = MetaData()
    Table("users", meta, Column("id", Integer, primary_key=True))
    subs = Table(
        "news_subscriptions",
        meta,
        Column("id", Integer, primary_key=True),
        Column("user_id", Integer, ForeignKey("users.id")),
        Column("area", String(64)),
    )
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'news.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
        await conn.execute(meta.tables["users"].insert().values(id=1))
        await conn.execute(subs.insert().values(user_id=1, area="Phường Hải Châu"))
    async with AsyncSession(engine) as session:
        assert await area_from_subscriptions(meta)(session, 1) == "Phường Hải Châu"
        assert await area_from_subscriptions(meta)(session, 2) is None
        assert await area_from_subscriptions(MetaData())(session, 1) is None
    await engine.dispose()


async def test_handover_button_opens_a_ticket_with_its_origin(world: World, content: Content) -> None:
    async def work(ctx: Context) -> list[Reply]:
        return [Reply("menu", ((handover_button(ctx),),))]

    [menu] = await world.run(CITIZEN, work)
    [opened] = await world.press(menu.buttons[0][0])
    [ticket] = await world.tickets()
    assert opened.text == t(content, "opened_live", id=ticket.id) and ticket.origin == "fallback"
    assert t(content, "group_origin_fallback") in world.post()[1].text


async def test_no_staff_group_configured(world: World, content: Content) -> None:
    world.settings = Settings(_env_file=None, staff_chat_id=None)  # type: ignore[call-arg]
    [reply] = await world.ask_for_staff()
    assert reply.text == t(content, "unavailable")
    assert await world.tickets() == []
