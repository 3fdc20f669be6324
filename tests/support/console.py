"""Helpers for the console tests: a bot with the console on a free port, sign-in links asked of the bot through the
Telegram emulator, and the database rows the dashboard and the review queue read."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.app import Runtime
from sandbox.telegram.client import SimUser
from store.db import unit_of_work
from store.models import NluReview, User
from store.models_dossier import DossierFollow
from store.models_handover import CLOSED, Feedback, MessageCount, Ticket, TicketMessage
from store.models_news import Broadcast, Delivery
from store.models_reminders import CANCELLED, SENT, STOPPED, Reminder
from store.models_staff import StaffMember
from tests.support.bots import BotRunner

SECRET = "console-test-secret-" + "x" * 32
ADMIN_ID = 7701


class _Table(HTMLParser):
    """The cells' text of one <table id=...>, row by row, as the page shows them (tags inside a cell become
    spaces)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0  # > 0 inside the table
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self.depth or ("id", self.table_id) in attrs):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []
        elif self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif self.cell is not None:
            self.cell.append(" ")

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table(html: str, table_id: str) -> list[list[str]]:
    parser = _Table(table_id)
    parser.feed(html)
    return parser.rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_console_bot(bots: BotRunner, db_url: str, export_dir: Path, **overrides: Any) -> tuple[Runtime, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runtime = await bots.start(
        db_url,
        admin_ids=[ADMIN_ID],
        console_port=port,
        console_url=base,
        console_secret=SECRET,
        console_export_dir=export_dir,
        **overrides,
    )
    return runtime, base


def link_in(body: str, entities: list[dict[str, object]]) -> str | None:
    for e in entities:
        if e.get("type") == "text_link" and "/signin?t=" in str(e.get("url")):
            return str(e["url"])
    found = re.search(r"https?://\S+/signin\?t=[\w-]+", body)
    return found.group(0) if found else None


async def ask_link(user: SimUser) -> tuple[str | None, str]:
    """Send /console as `user`; the link in the answer (None when refused) and the answer's text."""
    await user.command("console")
    [answer] = await user.wait_for(count=1, timeout=15)
    return link_in(answer.body, answer.entities), answer.body


async def make_staff(runtime: Runtime, user_id: int, role: str = "staff") -> None:
    async with unit_of_work(runtime.sessions) as s:
        s.add(StaffMember(user_id=user_id, role=role, added_by=ADMIN_ID))


async def seed_review(runtime: Runtime, now: dt.datetime) -> list[int]:
    """Three low-confidence messages as the router writes them: already redacted, with their rankings."""
    rows = [
        ("lam lai can cuoc bi mat o dau vay", "nlu_fallback", 0.31,
         [["nlu_fallback", 0.31], ["procedure_info", 0.29], ["eid_info", 0.2], ["greet", 0.05]], "fallback"),
        ("tai app vneid cho may ba toi the nao", "eid_activate", 0.41,
         [["eid_activate", 0.41], ["eid_info", 0.38], ["procedure_info", 0.1]], "ambiguous"),
        ("so dien thoai [phone] khong nhan otp", "nlu_fallback", 0.3,
         [["nlu_fallback", 0.3], ["eid_otp_problem", 0.28], ["eid_activate", 0.22]], "fallback"),
        ("asdf qwer zxcv", "nlu_fallback", 0.1, [["nlu_fallback", 0.1], ["greet", 0.05]], "fallback"),
    ]  # fmt: skip
    ids = []
    async with unit_of_work(runtime.sessions) as s:
        if await s.get(User, 7799) is None:
            s.add(User(id=7799, chat_id=7799, lang="vi"))
            await s.flush()
        for i, (text, intent, conf, ranking, reason) in enumerate(rows):
            row = NluReview(
                user_id=7799,
                text=text,
                intent=intent,
                confidence=conf,
                ranking=json.dumps(ranking),
                reason=reason,
                created_at=now - dt.timedelta(minutes=10 - i),
            )
            s.add(row)
            await s.flush()
            ids.append(row.id)
    return ids


async def seed_activity(runtime: Runtime, now: dt.datetime, days: int = 30) -> None:
    """A month of plausible activity, so the dashboard's charts have something to draw (screenshots, README)."""
    today = now.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    intents = ["eid_activate", "procedure_info", "eid_otp_problem", "check_status", "eid_info", "human_handover"]
    async with unit_of_work(runtime.sessions) as s:
        for uid in range(7900, 7912):
            if await s.get(User, uid) is None:
                s.add(User(id=uid, chat_id=uid, lang="vi"))
        await s.flush()
        for i in range(days):
            day = today - dt.timedelta(days=i)
            weekday = day.weekday() < 5
            for k, intent in enumerate(intents):
                n = (37 * (i + 3) + 11 * k) % 23 + (15 if weekday else 4) - 2 * k
                s.add(MessageCount(day=day, intent=intent, handled=max(1, n), fallbacks=0))
            s.add(MessageCount(day=day, intent="", handled=3 + (i * 7) % 9, fallbacks=3 + (i * 7) % 9))
        for j in range(12):
            opened = now - dt.timedelta(days=j * 2, hours=j)
            t = Ticket(user_id=7900 + j, status=CLOSED, created_at=opened, posted_at=opened, closed_at=opened,
                       opened_in_hours=j % 3 != 2)  # fmt: skip
            s.add(t)
            await s.flush()
            s.add(TicketMessage(ticket_id=t.id, direction="staff", chat_id=1, message_id=j,
                                at=opened + dt.timedelta(minutes=3 + (j * 13) % 40)))  # fmt: skip
        for j in range(40):
            at = now - dt.timedelta(hours=5 * j + 1)
            sent = Reminder(user_id=7900 + j % 12, source="citizen", kind="custom", remind_at=at, due_at=at,
                            sent_at=at, state=SENT, group_key=f"g{j}")  # fmt: skip
            s.add(sent)
            if j % 4 == 0:  # snoozed: a repeat of the sent one, due after the test (the dispatcher runs)
                await s.flush()
                later = now + dt.timedelta(days=1, hours=j)
                s.add(Reminder(user_id=sent.user_id, source="citizen", kind="custom", remind_at=later, due_at=later,
                               group_key=f"g{j}", parent_id=sent.id, created_at=at, updated_at=at))  # fmt: skip
            elif j % 7 == 3:
                s.add(Reminder(user_id=sent.user_id, source="citizen", kind="custom", remind_at=at, due_at=at,
                               state=STOPPED if j % 2 else CANCELLED, group_key=f"s{j}", created_at=at,
                               updated_at=at))  # fmt: skip
        for j in range(3):
            s.add(DossierFollow(user_id=7900 + j, code=f"000.00.00.H00-250101-000{j}", next_poll_at=now))
        # 👍/👎 on three answers; a 👎's comment is kept in its review row, already decided here so the review
        # queue holds only seed_review's messages
        for j, (topic, answer, vote, comment) in enumerate([
            ("proc:cccd_renew", "procedures.cccd_renew.fee", -1, "lệ phí trên trang khác với ở bộ phận một cửa"),
            ("proc:cccd_renew", "procedures.cccd_renew.fee", -1, "không nói có nộp trực tuyến được không"),
            ("proc:cccd_renew", "procedures.cccd_renew.fee", 1, None),
            ("guide:eid_activate", "guides.eid_activate.done", 1, None),
            ("guide:eid_activate", "guides.eid_activate.done", -1, None),
            ("guide:eid_activate", "guides.eid_activate.done", 1, None),
            ("eid_info", "eid.info", 1, None),
        ]):  # fmt: skip
            at = now - dt.timedelta(days=j, hours=2)
            review_id = None
            if comment is not None:
                row = NluReview(user_id=7900 + j, text=f"[{answer}] {comment}", intent=topic, confidence=0.0,
                                ranking="[]", reason="feedback", created_at=at, status="dismissed")  # fmt: skip
                s.add(row)
                await s.flush()
                review_id = row.id
            s.add(Feedback(user_id=7900 + j, topic=topic, answer=answer, offered_at=at, vote=vote, voted_at=at,
                           review_id=review_id))  # fmt: skip
        started = now - dt.timedelta(days=3)
        b = Broadcast(created_by=ADMIN_ID, status="done", text="Lịch cấp CCCD lưu động", total=12, created_at=started,
                      started_at=started, finished_at=started + dt.timedelta(minutes=2))  # fmt: skip
        s.add(b)
        await s.flush()
        for j in range(12):
            state = "sent" if j < 9 else ("blocked" if j < 11 else "unknown")
            s.add(Delivery(broadcast_id=b.id, user_id=7900 + j, chat_id=7900 + j, state=state))
