"""Law 91/2025/QH15 (Art. 4, 14): `/forget` and "xoá dữ liệu của tôi" erase every row about a citizen, in every
table of the schema (a new table that refers to citizens fails this file until it is handled), and `/mydata` shows
each of those tables; no raw ID or phone number is stored; the review queue is purged after its retention
period, and reminder drafts never confirmed after REMINDER_DRAFT_HOURS, by the scheduled purge."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import String, Text, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import Runtime
from bot.spool import encode
from core.pii import contains_pii
from kernel.content import Content
from kernel.types import Reply
from nlu.server import RasaServer
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient, SandboxTimeout, SimMessage, SimUser
from store.all_models import Base
from store.db import unit_of_work
from store.models import NluReview, User
from store.models_handover import StaffCopyDeletion
from store.models_news import DONE, PENDING, SCHEDULED, SENT, Broadcast, Delivery
from store.models_reminders import ReminderDraft
from store.personal import STAFF_ONLY, USER_COLUMNS, user_tables
from tests.support.bots import BotRunner, portal_settings
from tests.support.logscan import LogBuffer

ALL_DAY = "mon-sun 00:00-23:59"
CITIZEN_PII = "cccd của tôi là 001099012345, sđt 0912345678"


async def owned_keys(session: AsyncSession, uid: int) -> dict[str, set[tuple[Any, ...]]]:
    """For each user table, the primary keys of the rows about `uid` (through user columns or foreign keys)."""
    tables = user_tables()
    owned: dict[str, set[tuple[Any, ...]]] = {}
    for table in Base.metadata.sorted_tables:  # parents before children: foreign keys follow owned parents
        if table.name not in tables:
            continue
        pk = list(table.primary_key.columns)
        rows = (await session.execute(select(table))).mappings().all()
        keys: set[tuple[Any, ...]] = set()
        for row in rows:
            mine = table.name == "users" and row["id"] == uid
            mine = mine or any(row.get(c) == uid for c in USER_COLUMNS if c in table.c)
            for fk in table.foreign_keys:
                parent = fk.column.table.name
                if parent in owned and fk.column.table.primary_key.columns.keys() == [fk.column.name]:
                    mine = mine or (row[fk.parent.name],) in owned[parent]
            if mine:
                keys.add(tuple(row[c.name] for c in pk))
        owned[table.name] = keys
    return owned


async def one(user: SimUser, wait_s: float = 20) -> SimMessage:
    [msg] = await user.wait_for(count=1, timeout=wait_s)
    return msg


async def all_messages(user: SimUser, wait_s: float = 20, quiet_s: float = 2) -> list[SimMessage]:
    """Every message of one answer that may take several: the first within `wait_s`, then until `quiet_s` of quiet."""
    got = [await one(user, wait_s)]
    while True:
        try:
            got.extend(await user.wait_for(count=1, timeout=quiet_s))
        except SandboxTimeout:
            return got


async def until_button(user: SimUser, label: str, wait_s: float = 20) -> SimMessage:
    """The first message that arrives with a button labelled `label` (other messages are read past)."""
    deadline = time.monotonic() + wait_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            [msg] = await user.wait_for(count=1, timeout=max(0.1, deadline - time.monotonic()))
        except SandboxTimeout:
            break
        if label in msg.labels:
            return msg
        seen.append(f"{msg.body[:80]!r} {msg.labels}")
    raise AssertionError(f"no message with a {label!r} button arrived; got: {seen}")


async def fill_through_the_bot(
    sandbox: SandboxClient, runtime: Runtime, citizen: SimUser, staff: SimUser, group_id: int
) -> None:
    """Create as many kinds of rows as the citizen can through ordinary conversation."""
    await citizen.command("start")
    await until_button(citizen, "🪪 Tài khoản VNeID")
    await citizen.send(f"qwzx plorf {CITIZEN_PII}")  # whatever the model reads, the numbers must not be kept
    await one(citizen)
    await citizen.send("lệ phí làm hộ chiếu")  # an answer with 👍/👎
    answer = await until_button(citizen, "👎")
    await citizen.press(answer, "👎")  # answer_feedback, then "what was missing?"
    await one(citizen)
    await citizen.send(f"không nói nộp ở đâu, {CITIZEN_PII}")  # the comment goes to the review queue
    await one(citizen)
    await citizen.send("nhắc tôi 8 giờ sáng mai gọi điện cho chị Lan 0912345678")  # a reminder draft, then a reminder
    confirm = await until_button(citizen, "Đúng")
    await citizen.press(confirm, "Đúng")
    await one(citizen)
    await citizen.send("tra cứu hồ sơ 000.00.12.H22-240101-0003")
    public = await until_button(citizen, "🔑 Xem chi tiết và theo dõi")  # dossier_lookups
    await citizen.press(public, "🔑 Xem chi tiết và theo dõi")
    await one(citizen)  # the last 4 digits of the applicant's phone, please
    await citizen.send("6711")
    card = await until_button(citizen, "🔔 Theo dõi hồ sơ này")
    await citizen.press(card, "🔔 Theo dõi hồ sơ này")  # dossier_follows
    await one(citizen)
    await citizen.command("menu")
    menu = await until_button(citizen, "🔎 Tra cứu hồ sơ")
    await citizen.press(menu, "🔎 Tra cứu hồ sơ")  # dossier_prompts: the bot waits for a code
    await one(citizen)
    await citizen.command("menu")
    menu = await until_button(citizen, "👤 Gặp cán bộ")
    await citizen.press(menu, "👤 Gặp cán bộ")  # handover_tickets, the group post in handover_messages
    await one(citizen)
    await citizen.send(f"giúp tôi với, {CITIZEN_PII}")  # relayed to the group: another handover message
    await one(citizen)
    group = sandbox.sim_user(staff.id)  # the staff member stays silent: the ticket is still open at /forget
    assert group.id == staff.id and group_id < 0


def direct_rows(uid: int, now: dt.datetime, broadcast_id: int) -> dict[str, list[dict[str, Any]]]:
    """Rows for the tables no short conversation reaches in this test (each has its own flow tests)."""
    return {
        "guide_progress": [{"user_id": uid, "stack": "level1:2", "updated_at": now}],
        "renewal_dialogues": [{"user_id": uid, "birth": dt.date(1990, 5, 1), "started_at": now}],
        "news_subscriptions": [{"user_id": uid, "created_at": now, "updated_at": now}],
        "news_subscription_areas": [{"user_id": uid, "area": "tu_son"}],
        "news_area_searches": [{"user_id": uid, "asked_at": now}],
        "news_topics": [{"user_id": uid, "topic": "eid"}],
        "reminder_drafts": [
            {"user_id": uid, "token": "abc", "stage": "ask", "task": "x", "alternatives": "[]", "created_at": now}
        ],
        "recent_messages": [{"user_id": uid, "text": "xin chào", "intent": None, "at": now}],
        # kept through an outage, due tomorrow so the running bot does not send it during the test
        "pending_replies": [
            {"chat_id": uid, "body": encode(Reply("Chào Dũng")), "created_at": now, "next_at": now + dt.timedelta(1)}
        ],
        "broadcast_deliveries": [
            {"broadcast_id": broadcast_id, "user_id": uid, "chat_id": uid, "state": SENT, "message_id": 7},
            {"broadcast_id": broadcast_id + 1, "user_id": uid, "chat_id": uid, "state": PENDING, "message_id": None},
        ],
    }


async def text_columns_with_pii(session: AsyncSession) -> list[str]:
    found = []
    for table in Base.metadata.sorted_tables:
        cols = [c for c in table.c if isinstance(c.type, (String, Text))]
        if not cols:
            continue
        for row in (await session.execute(select(*cols))).all():
            for col, value in zip(cols, row, strict=True):
                if isinstance(value, str) and contains_pii(value):
                    found.append(f"{table.name}.{col.name}: {value!r}")
    return found


async def test_forget_erases_the_citizen_from_every_table(
    sandbox: SandboxClient,
    bots: BotRunner,
    rasa: RasaServer,
    portal: PortalEmulator,
    db_url: str,
    log_scan: LogBuffer,
) -> None:
    staff = await sandbox.user(5901, first_name="Bình", language_code="vi")
    group = await sandbox.group("Tổ công tác 06", members=[staff], supergroup=True, bot_admin=True)
    runtime = await bots.start(
        db_url, rasa_url=rasa.url, staff_chat_id=group.chat_id, office_hours=ALL_DAY, **portal_settings(portal)
    )
    citizen = await sandbox.user(5001, first_name="Dũng", language_code="vi")
    other = await sandbox.user(5002, first_name="Em", language_code="vi")
    await other.send("lệ phí làm hộ chiếu")  # a second citizen whose rows must survive
    await one(other)
    await fill_through_the_bot(sandbox, runtime, citizen, staff, group.chat_id)

    tables = user_tables()
    now = dt.datetime.now(dt.UTC)
    async with unit_of_work(runtime.sessions) as s:
        by_bot = {name for name, keys in (await owned_keys(s, citizen.id)).items() if keys}
        # The staff member's broadcasts: one delivered to the citizen, one not sent yet.
        b1 = Broadcast(created_by=staff.id, status=DONE, text="Thông báo", total=1)
        # scheduled for tomorrow, so the running engine leaves its delivery pending
        b2 = Broadcast(
            created_by=staff.id, status=SCHEDULED, text="Thông báo 2", total=1, send_at=now + dt.timedelta(1)
        )
        s.add_all([b1, b2])
        await s.flush()
        assert b2.id == b1.id + 1
        direct = {n: rows for n, rows in direct_rows(citizen.id, now, b1.id).items() if n not in by_bot}
        if "handover_outbox" not in by_bot:  # its rows live seconds: the relay may already have been sent
            ticket = await s.scalar(
                select(tables["handover_tickets"].c.id).where(tables["handover_tickets"].c.user_id == citizen.id)
            )
            # leased until tomorrow, so the running bot does not send it during the test
            direct["handover_outbox"] = [
                {
                    "ticket_id": ticket,
                    "chat_id": group.chat_id,
                    "body": encode(Reply("Dũng: …")),
                    "direction": "citizen",
                    "created_at": now,
                    "lease_until": now + dt.timedelta(1),
                }
            ]
        for name, rows in direct.items():
            await s.execute(insert(tables[name]), rows)
    print(f"rows made through the bot in: {sorted(by_bot)}; inserted directly in: {sorted(direct)}")
    async with unit_of_work(runtime.sessions) as s:
        before = await owned_keys(s, citizen.id)
        others_before = await owned_keys(s, other.id)
        # No raw ID or phone number anywhere, though the citizen typed them in three places.
        assert await text_columns_with_pii(s) == []
    empty = sorted(n for n in tables if not before.get(n) and n not in STAFF_ONLY)
    assert empty == [], f"no row about the citizen was made in {empty}: add a flow or a row to direct_rows"

    # /mydata: a copy of every kind of row kept about the citizen, and nothing raw.
    await citizen.command("mydata")
    copy = "\n".join(m.body for m in await all_messages(citizen))
    content = Content.load()
    async with unit_of_work(runtime.sessions) as s:
        still = await owned_keys(s, citizen.id)  # rows there before and after: there during /mydata (the outbox's
    kept = [n for n in tables if before.get(n, set()) & still.get(n, set())]  # rows live seconds)
    absent = [n for n in kept if content.text(f"privacy.table_{n}", "vi") not in copy]
    assert absent == [], f"/mydata left out {absent}"
    assert "000.00.12.H22-240101-0003" in copy  # the dossier they follow, as the citizen would recognise it
    assert not contains_pii(copy)

    await citizen.command("forget")
    ask = await until_button(citizen, "🗑 Xoá hết")
    await citizen.press(ask, "🗑 Xoá hết")
    done = await one(citizen)
    assert "Đã xoá toàn bộ dữ liệu" in done.body

    async with unit_of_work(runtime.sessions) as s:
        after = await owned_keys(s, citizen.id)
        others_after = await owned_keys(s, other.id)
        for name, table in tables.items():
            pk = list(table.primary_key.columns)
            present = {tuple(r) for r in (await s.execute(select(*pk))).all()}
            left = before.get(name, set()) & present
            if name == "broadcast_deliveries":  # the delivered one stays, anonymous: the report's count
                [anonymous] = left
                row = (await s.execute(select(table).where(pk[0] == anonymous[0]))).mappings().one()
                assert (row["user_id"], row["chat_id"], row["message_id"], row["state"]) == (None, 0, None, SENT)
                continue
            assert not left, f"{name} still holds {len(left)} row(s) about the citizen"
            assert not after.get(name), f"{name} still refers to the citizen"
        delivered = await s.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == SENT))
        assert delivered == 1
        assert others_after == others_before  # the other citizen lost nothing
    assert any('"privacy.forgotten"' in line for line in log_scan.since_mark())

    # The staff group's copies (the ticket post with their name and redacted messages, the relayed message) are
    # deleted from Telegram after the commit, by the scheduler's next tick.
    async def group_copies() -> list[dict[str, Any]]:
        return [m for m in (await sandbox.chat_record(group.chat_id))["messages"] if m["from_bot"]]

    assert len(await group_copies()) >= 2
    for _ in range(300):
        if all(m["deleted"] for m in await group_copies()):
            break
        await asyncio.sleep(0.1)
    assert all(m["deleted"] for m in await group_copies()), await group_copies()
    async with unit_of_work(runtime.sessions) as s:
        assert await s.scalar(select(func.count()).select_from(StaffCopyDeletion)) == 0


async def test_delete_my_data_intent_asks_first_and_keep_it_keeps_everything(
    sandbox: SandboxClient, bots: BotRunner, rasa: RasaServer, db_url: str
) -> None:
    runtime = await bots.start(db_url, rasa_url=rasa.url)
    giang = await sandbox.user(5003, first_name="Giang", language_code="vi")
    await giang.send("lệ phí làm hộ chiếu")
    await giang.press(await until_button(giang, "👎"), "👎")
    await one(giang)
    await giang.send("không nói nộp ở đâu")  # the comment is kept in the review queue
    await one(giang)
    await giang.send("xoá dữ liệu của tôi")
    ask = await until_button(giang, "Giữ lại")
    await giang.press(ask, "Giữ lại")
    kept = await one(giang)
    assert "không xoá gì" in kept.body
    async with unit_of_work(runtime.sessions) as s:
        assert await s.get(User, giang.id) is not None
        assert await s.scalar(select(func.count()).select_from(NluReview).where(NluReview.user_id == giang.id))
    await giang.send("xoa du lieu cua toi")  # typed without diacritics
    ask = await until_button(giang, "🗑 Xoá hết")
    await giang.press(ask, "🗑 Xoá hết")
    assert "Đã xoá" in (await one(giang)).body
    async with unit_of_work(runtime.sessions) as s:
        assert await s.get(User, giang.id) is None
        assert await s.scalar(select(func.count()).select_from(NluReview)) == 0


async def test_the_scheduled_purge_drops_review_texts_past_retention(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    runtime = await bots.start(db_url, review_retention_days=30)
    [job] = [j for j in runtime.scheduler.get_jobs() if j.id == "purge"]
    purge: Callable[[], Any] = job.func  # as the scheduler runs it: tracked for shutdown (core/scheduler.py)
    assert inspect.unwrap(purge) == runtime.purge  # the job the scheduler runs every hour
    now = dt.datetime.now(dt.UTC)
    async with unit_of_work(runtime.sessions) as s:
        for age_days, text in ((31, "old"), (29, "recent"), (400, "ancient")):
            s.add(
                NluReview(
                    user_id=None, text=text, intent=None, reason="fallback", created_at=now - dt.timedelta(age_days)
                )
            )
    await asyncio.wait_for(purge(), timeout=30)
    async with unit_of_work(runtime.sessions) as s:
        assert (await s.scalars(select(NluReview.text))).all() == ["recent"]


async def test_the_scheduled_purge_drops_reminder_drafts_never_confirmed(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    runtime = await bots.start(db_url, reminder_draft_hours=2)
    [job] = [j for j in runtime.scheduler.get_jobs() if j.id == "purge"]
    now = dt.datetime.now(dt.UTC)
    async with unit_of_work(runtime.sessions) as s:
        for user_id, age in (
            (501, dt.timedelta(hours=2, minutes=5)),
            (502, dt.timedelta(hours=1)),
            (503, dt.timedelta(days=9)),
        ):
            s.add(User(id=user_id, chat_id=user_id, lang="vi"))
            await s.flush()
            s.add(
                ReminderDraft(
                    user_id=user_id, token=f"t{user_id}", stage="ask", task="gọi [phone]", created_at=now - age
                )
            )
    await asyncio.wait_for(job.func(), timeout=30)
    async with unit_of_work(runtime.sessions) as s:
        assert (await s.scalars(select(ReminderDraft.user_id))).all() == [502]  # only the one still usable
