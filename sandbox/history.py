"""Plausible history for the local sandbox's database, so the staff console (and /stats) has something to show:
a few weeks of message and conversation counts, portal errors by kind, handover tickets answered by staff (some
opened in the evening), reminders sent, snoozed and stopped, 👍/👎 on answers with comments, followed dossiers, two
broadcasts and a review queue.
Everything is made up here; no row names a real person.

Usage (repo root, after the bot has created the schema):
  python -m sandbox.history [--days 30] [--database-url URL]   (default: the sandbox's var/sandbox.db)
`make run` does it by itself for SANDBOX_HISTORY_DAYS days (30; 0 for none) once the bot is up."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import ROOT
from store.db import make_engine, make_sessionmaker, unit_of_work
from store.models import NluReview, User
from store.models_dossier import DossierFollow
from store.models_handover import (
    CLOSED,
    ConversationCount,
    Feedback,
    MessageCount,
    PortalErrorCount,
    StyleCount,
    Ticket,
    TicketMessage,
)
from store.models_news import DONE, Broadcast, Delivery
from store.models_reminders import CANCELLED, SENT, SOURCE_CITIZEN, STOPPED, Reminder

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FIRST_USER = 2_000_001  # far from the sandbox's simulated citizens (1001-1010)
USERS = 40
# intent -> typical messages on a weekday
INTENTS = {
    "eid_activate": 24, "procedure_info": 20, "eid_otp_problem": 12, "check_status": 14, "eid_info": 9,
    "eid_forgot_password": 8, "human_handover": 3, "greet": 10, "thank": 6,
}  # fmt: skip
REVIEW = [  # what citizens type that the model is unsure of: already in the redacted form the router stores
    ("lam lai the can cuoc bi mat o dau", "procedure_info", 0.31, "fallback"),
    ("app bao loi khi quet chip", "eid_activate", 0.42, "ambiguous"),
    ("doi so dien thoai tren vneid the nao", "eid_info", 0.33, "fallback"),
    ("sdt [phone] ko nhan dc ma", "eid_otp_problem", 0.29, "fallback"),
    ("ho so cua toi sao lau the", "check_status", 0.4, "ambiguous"),
    ("cho hoi lich tiep dan thu 7", "procedure_info", 0.22, "fallback"),
    ("tai khoan bi khoa tam thoi", "eid_forgot_password", 0.37, "ambiguous"),
    ("xin chao ad", "greet", 0.34, "fallback"),
]

FEEDBACK = [  # topic, answer key, share of 👍
    ("proc:cccd_renew", "procedures.cccd_renew.fee", 0.45),
    ("proc:cccd_renew", "procedures.cccd_renew.where", 0.8),
    ("guide:eid_activate", "guides.eid_activate.done", 0.7),
    ("eid_info", "eid.info", 0.85),
    ("status", "status:3", 0.6),
]
COMMENTS = {  # what a citizen answers to "what was missing?", already redacted
    "procedures.cccd_renew.fee": ["lệ phí khác với ở bộ phận một cửa", "không nói nộp trực tuyến có rẻ hơn không"],
    "procedures.cccd_renew.where": ["xã tôi sáp nhập rồi, giờ nộp ở đâu"],
    "guides.eid_activate.done": ["làm tới bước quét chip thì lỗi", "máy cũ không có NFC thì sao"],
    "eid.info": ["muốn biết mức 2 khác mức 1 chỗ nào"],
    "status:3": ["hồ sơ trễ hẹn mà không báo lý do"],
}


async def _add_counts(s: AsyncSession, day: dt.date, intent: str, handled: int, fallbacks: int) -> None:
    row = await s.get(MessageCount, (day, intent))
    if row is None:
        s.add(MessageCount(day=day, intent=intent, handled=handled, fallbacks=fallbacks))
    else:
        row.handled += handled
        row.fallbacks += fallbacks


# (style, share of the day's messages, share of its fallbacks): unaccented and teencode messages fall back most
STYLE_MIX = (("vi_accented", 0.45, 0.30), ("vi_plain", 0.40, 0.50), ("en", 0.15, 0.20))


async def _add_styles(s: AsyncSession, day: dt.date, messages: int, fallbacks: int) -> None:
    """The day's messages split by style of writing (deterministic shares, so no random stream shifts)."""
    left_n, left_f = messages, fallbacks
    for i, (style, share, lost_share) in enumerate(STYLE_MIX):
        last = i == len(STYLE_MIX) - 1
        n = left_n if last else round(messages * share)
        f = left_f if last else min(n, round(fallbacks * lost_share))
        left_n, left_f = left_n - n, left_f - f
        row = await s.get(StyleCount, (day, style))
        if row is None:
            s.add(StyleCount(day=day, style=style, handled=n, fallbacks=f))
        else:
            row.handled += n
            row.fallbacks += f


# portal error kind (portal/errors.py KINDS) -> (chance on a given day, most on such a day): mostly slow answers
PORTAL_ERRORS = {
    "timeout": (0.5, 3), "server_error": (0.2, 2), "connection": (0.1, 1), "rate_limited": (0.05, 2),
    "bad_response": (0.05, 1),
}  # fmt: skip
OUTAGE_BACK = 9  # days ago: the portal was down for an hour (5xx, then the breaker open), and its token refused
OUTAGE = {"server_error": 6, "circuit_open": 14, "timeout": 2, "auth": 1}


async def _add_conversations(s: AsyncSession, day: dt.date, n: int) -> None:
    row = await s.get(ConversationCount, day)
    if row is None:
        s.add(ConversationCount(day=day, conversations=n))
    else:
        row.conversations += n


async def _add_portal_errors(s: AsyncSession, day: dt.date, by_kind: dict[str, int]) -> int:
    for kind, n in by_kind.items():
        row = await s.get(PortalErrorCount, (day, kind))
        if row is None:
            s.add(PortalErrorCount(day=day, kind=kind, errors=n))
        else:
            row.errors += n
    return sum(by_kind.values())


async def generate(db_url: str, days: int = 30, now: dt.datetime | None = None, seed: int = 6) -> dict[str, int]:
    """Write `days` days of history ending today; returns how many rows of each kind were added."""
    rnd = random.Random(seed)  # noqa: S311 - made-up history, not a secret: the same seed gives the same rows
    extra = random.Random(seed + 1)  # noqa: S311 - its own stream, so the older figures stay as they were
    counters = random.Random(seed + 2)  # noqa: S311 - conversations and portal errors, the same way
    now = now or dt.datetime.now(dt.UTC)
    today = now.astimezone(TZ).date()
    made = {"messages": 0, "conversations": 0, "portal_errors": 0, "tickets": 0, "reminders": 0, "deliveries": 0,
            "review": 0}  # fmt: skip
    engine = make_engine(db_url)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as s:
            users = list(range(FIRST_USER, FIRST_USER + USERS))
            for uid in users:
                if await s.get(User, uid) is None:
                    s.add(User(id=uid, chat_id=uid, lang="vi", created_at=now - dt.timedelta(days=days)))
            await s.flush()
            for back in range(days):
                day = today - dt.timedelta(days=back)
                busy = 1.0 if day.weekday() < 5 else 0.4
                day_total = 0
                for intent, typical in INTENTS.items():
                    n = max(0, round(rnd.gauss(typical * busy, typical * 0.25)))
                    if n:
                        await _add_counts(s, day, intent, n, 0)
                        made["messages"] += n
                        day_total += n
                lost = max(0, round(rnd.gauss(9 * busy, 3)))
                await _add_counts(s, day, "", lost, lost)
                made["messages"] += lost
                await _add_styles(s, day, day_total + lost, lost)
                # two to three messages a conversation; every day with messages had at least one
                talks = max(1, round((day_total + lost) / counters.uniform(2.2, 3.2))) if day_total + lost else 0
                await _add_conversations(s, day, talks)
                made["conversations"] += talks
                errors = dict(OUTAGE) if back == OUTAGE_BACK else {}
                for kind, (chance, most) in PORTAL_ERRORS.items():
                    if counters.random() < chance * busy:
                        errors[kind] = errors.get(kind, 0) + counters.randint(1, most)
                made["portal_errors"] += await _add_portal_errors(s, day, errors)
                for _ in range(rnd.choice((0, 1, 1, 2)) if busy == 1.0 else 0):
                    opened = dt.datetime.combine(day, dt.time(rnd.randint(8, 16), rnd.randint(0, 59)), TZ)
                    if opened > now:
                        continue
                    answered = opened + dt.timedelta(minutes=rnd.choice((2, 4, 6, 9, 15, 25, 45)))
                    t = Ticket(user_id=rnd.choice(users), status=CLOSED, origin="menu", created_at=opened,
                               posted_at=opened, taken_at=answered, closed_at=answered + dt.timedelta(minutes=20),
                               close_reason="staff", rating=rnd.choice((None, 4, 5, 5, 3)))  # fmt: skip
                    s.add(t)
                    await s.flush()
                    s.add(TicketMessage(ticket_id=t.id, direction="post", chat_id=-1, message_id=t.id, at=opened))
                    s.add(TicketMessage(ticket_id=t.id, direction="staff", chat_id=-1, message_id=-t.id, at=answered))
                    made["tickets"] += 1
                if busy == 1.0 and extra.random() < 0.3:  # an evening request, answered the next morning
                    opened = dt.datetime.combine(day, dt.time(extra.randint(18, 21), extra.randint(0, 59)), TZ)
                    answered = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(7, 40), TZ)
                    if answered <= now:
                        t = Ticket(user_id=extra.choice(users), status=CLOSED, origin="menu", opened_in_hours=False,
                                   created_at=opened, posted_at=opened, taken_at=answered,
                                   closed_at=answered + dt.timedelta(minutes=15), close_reason="staff")  # fmt: skip
                        s.add(t)
                        await s.flush()
                        s.add(TicketMessage(ticket_id=t.id, direction="post", chat_id=-1, message_id=t.id, at=opened))
                        s.add(TicketMessage(ticket_id=t.id, direction="staff", chat_id=-1, message_id=-t.id,
                                            at=answered))  # fmt: skip
                        made["tickets"] += 1
                for k in range(rnd.randint(0, 6)):
                    at = dt.datetime.combine(day, dt.time(7 + k * 2, 0), TZ).astimezone(dt.UTC)
                    if at > now:
                        continue
                    sent = Reminder(user_id=rnd.choice(users), source=SOURCE_CITIZEN, kind="custom",
                                    task="nộp hồ sơ", remind_at=at, due_at=at, sent_at=at, state=SENT,
                                    group_key=f"history:{day}:{k}", created_at=at, updated_at=at)  # fmt: skip
                    s.add(sent)
                    made["reminders"] += 1
                    outcome = extra.random()
                    if outcome < 0.15:  # "remind me later": a repeat an hour on, sent too
                        await s.flush()
                        later = at + dt.timedelta(hours=1)
                        if later <= now:
                            s.add(Reminder(user_id=sent.user_id, source=SOURCE_CITIZEN, kind="custom", task=sent.task,
                                           remind_at=later, due_at=later, sent_at=later, state=SENT,
                                           group_key=sent.group_key, dedupe_key=f"next:{sent.id}", parent_id=sent.id,
                                           created_at=at, updated_at=later))  # fmt: skip
                            made["reminders"] += 1
                    elif outcome < 0.25:  # the next one of the series, stopped or cancelled before it was due
                        s.add(Reminder(user_id=sent.user_id, source=SOURCE_CITIZEN, kind="custom", task=sent.task,
                                       remind_at=at + dt.timedelta(days=7), due_at=at + dt.timedelta(days=7),
                                       state=STOPPED if outcome < 0.2 else CANCELLED, group_key=sent.group_key,
                                       created_at=at, updated_at=at))  # fmt: skip
                for k in range(extra.randint(0, 5) if busy == 1.0 else 1):
                    topic, answer, liked = extra.choice(FEEDBACK)
                    at = dt.datetime.combine(day, dt.time(9 + k, extra.randint(0, 59)), TZ).astimezone(dt.UTC)
                    if at > now:
                        continue
                    vote = 1 if extra.random() < liked else -1
                    review_id = None
                    if vote == -1:  # the comment lives in the review row; a maintainer has already looked at it
                        comment = extra.choice(COMMENTS[answer] + [""])
                        row = NluReview(user_id=extra.choice(users), text=f"[{answer}] {comment}".strip(),
                                        intent=topic, confidence=0.0, ranking="[]", reason="feedback",
                                        created_at=at, status="dismissed")  # fmt: skip
                        s.add(row)
                        await s.flush()
                        review_id = row.id
                    s.add(Feedback(user_id=extra.choice(users), topic=topic, answer=answer, offered_at=at, vote=vote,
                                   voted_at=at, review_id=review_id))  # fmt: skip
            for back, topic in ((min(days - 1, 12), "eid"), (min(days - 1, 3), "")):
                at = now - dt.timedelta(days=back, hours=2)
                b = Broadcast(created_by=0, status=DONE, text="Lịch cấp căn cước lưu động", topics=topic,
                              total=USERS, created_at=at, started_at=at,
                              finished_at=at + dt.timedelta(seconds=USERS * 2))  # fmt: skip
                s.add(b)
                await s.flush()
                for i, uid in enumerate(users):
                    state = "blocked" if i % 13 == 5 else ("unknown" if i == 7 else "sent")
                    s.add(Delivery(broadcast_id=b.id, user_id=uid, chat_id=uid, state=state, attempts=1))
                    made["deliveries"] += 1
            for i, uid in enumerate(users[:6]):
                code = f"000.00.00.H00-{today:%y%m%d}-{i:04d}"
                if await s.scalar(select(DossierFollow.id).where(DossierFollow.user_id == uid)) is None:
                    # not polled while the sandbox runs: the portal emulator does not know these codes
                    s.add(DossierFollow(user_id=uid, code=code, next_poll_at=now + dt.timedelta(days=365)))
            for i, (text, intent, conf, reason) in enumerate(REVIEW):
                runner = rnd.choice([x for x in INTENTS if x != intent])
                ranking = [["nlu_fallback", conf]] if reason == "fallback" else []
                ranking += [[intent, conf], [runner, round(conf - 0.05, 2)]]
                s.add(NluReview(user_id=rnd.choice(users), text=text,
                                intent="nlu_fallback" if reason == "fallback" else intent, confidence=conf,
                                ranking=json.dumps(ranking), reason=reason,
                                created_at=now - dt.timedelta(hours=3 * i + 1)))  # fmt: skip
                made["review"] += 1
    finally:
        await engine.dispose()
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--database-url", default=f"sqlite+aiosqlite:///{ROOT / 'var' / 'sandbox.db'}")
    args = ap.parse_args(argv)
    made = asyncio.run(generate(args.database_url, args.days))
    print("sandbox history: " + ", ".join(f"{n} {k}" for k, n in made.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
