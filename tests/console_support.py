"""Helpers for the console tests: a bot with the console on a free port, sign-in links asked of the bot through the
Telegram emulator, and the database rows the dashboard and the review queue read."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.app import Runtime
from sandbox.telegram.client import SimUser
from store.db import unit_of_work
from store.models import NluReview, User
from store.models_handover import CLOSED, MessageCount, Ticket, TicketMessage
from store.models_news import Broadcast, Delivery
from store.models_reminders import SENT, Reminder
from store.models_staff import StaffMember
from tests.conftest import BotRunner

SECRET = "console-test-secret-" + "x" * 32
ADMIN_ID = 7701


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
            t = Ticket(user_id=7900 + j, status=CLOSED, created_at=opened, posted_at=opened, closed_at=opened)
            s.add(t)
            await s.flush()
            s.add(TicketMessage(ticket_id=t.id, direction="staff", chat_id=1, message_id=j,
                                at=opened + dt.timedelta(minutes=3 + (j * 13) % 40)))  # fmt: skip
        for j in range(40):
            at = now - dt.timedelta(hours=5 * j + 1)
            s.add(Reminder(user_id=7900 + j % 12, source="citizen", kind="custom", remind_at=at, due_at=at,
                           sent_at=at, state=SENT, group_key=f"g{j}"))  # fmt: skip
        b = Broadcast(created_by=ADMIN_ID, status="done", text="Lịch cấp CCCD lưu động", total=12,
                      created_at=now - dt.timedelta(days=3), started_at=now - dt.timedelta(days=3))  # fmt: skip
        s.add(b)
        await s.flush()
        for j in range(12):
            state = "sent" if j < 9 else ("blocked" if j < 11 else "unknown")
            s.add(Delivery(broadcast_id=b.id, user_id=7900 + j, chat_id=7900 + j, state=state))
