"""The staff console over HTTP, against the real bot: a link asked of the bot through the Telegram emulator signs
a staff member in once; non-staff users, stale and replayed links, forged cookies, removed staff and POSTs without
the CSRF token are refused; the dashboard's figures and CSVs are the database's; labels end up in a Rasa YAML."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import httpx
import pytest
import yaml
from sqlalchemy import delete, select, update

from actions.stats import STYLES
from console import auth, figures, review
from console.server import ConsoleConfigError, ConsoleServer
from core.settings import Settings
from nlu.client import NluClient
from nlu.figures import Figures, field_set_hash
from nlu.server import RasaServer, latest_model, start_rasa
from nlu.tools.common import MODELS
from portal.errors import KINDS as PORTAL_ERROR_KINDS
from sandbox import history
from sandbox.telegram.client import SandboxClient
from store.db import make_engine, make_sessionmaker, migrate, unit_of_work
from store.models import NluReview, User
from store.models_console import ConsoleLink
from store.models_dossier import DossierFollow
from store.models_handover import (
    CLOSED,
    WAITING,
    ConversationCount,
    Feedback,
    MessageCount,
    PortalErrorCount,
    StyleCount,
    Ticket,
    TicketMessage,
)
from store.models_news import Broadcast, Delivery
from store.models_reminders import CANCELLED, PENDING, SENT, STOPPED, Reminder
from store.models_staff import AuditEntry, StaffMember
from store.queues import queue_depths
from tests.support.base import RASA_TOKEN
from tests.support.bots import BotRunner
from tests.support.console import ADMIN_ID, SECRET, ask_link, make_staff, seed_review, start_console_bot, table

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def client() -> aiohttp.ClientSession:
    # unsafe=True: the cookie jar otherwise refuses cookies for an IP address such as 127.0.0.1
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, link: str) -> aiohttp.ClientResponse:
    base, _, token = link.partition("/signin?t=")
    async with http.get(link) as landing:
        assert landing.status == 200 and "Đăng nhập" in await landing.text()
    async with http.post(f"{base}/signin", data={"t": token}, allow_redirects=False) as r:
        await r.read()
        return r


async def csrf_of(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(f"{base}/review") as r:
        html = await r.text()
    marker = 'name="csrf" value="'
    return html[html.index(marker) + len(marker) :].split('"', 1)[0]


async def test_sign_in_by_link_once_and_refusals(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path
) -> None:
    runtime, base = await start_console_bot(bots, db_url, tmp_path / "nlu")
    admin = await sandbox.user(ADMIN_ID, first_name="Quản trị")
    citizen = await sandbox.user(7702, first_name="Dân")

    # A citizen asking for a link gets the unknown-command answer, and no link exists for them.
    link, body = await ask_link(citizen)
    assert link is None and "/console" not in body
    async with unit_of_work(runtime.sessions) as s:
        assert (await s.scalars(select(ConsoleLink).where(ConsoleLink.user_id == citizen.id))).all() == []

    link, body = await ask_link(admin)
    assert link is not None and link.startswith(base + "/signin?t=") and "một lần" in body
    token = link.partition("?t=")[2]
    async with unit_of_work(runtime.sessions) as s:
        [row] = (await s.scalars(select(ConsoleLink))).all()
        assert row.token_hash != token and len(row.token_hash) == 64  # only the hash is stored
        assert row.used_at is None and row.expires_at - row.created_at == dt.timedelta(minutes=5)

    async with client() as http:
        r = await sign_in(http, link)
        assert r.status == 303 and r.headers["Location"] == "/"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
        async with http.get(f"{base}/") as page:
            assert page.status == 200 and "Số liệu" in await page.text()
            assert "script-src 'nonce-" in page.headers["Content-Security-Policy"]
    async with unit_of_work(runtime.sessions) as s:
        [entry] = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "console.signin"))).all()
        assert entry.actor_id == ADMIN_ID

    # The same link a second time (another browser): refused, and its landing page already says so.
    async with client() as other:
        async with other.get(link) as landing:
            assert landing.status == 403 and "không còn hiệu lực" in await landing.text()
        async with other.post(f"{base}/signin", data={"t": token}, allow_redirects=False) as replay:
            assert replay.status == 403 and "Set-Cookie" not in replay.headers
        async with other.get(f"{base}/") as page:
            assert page.status == 401

    # A stale link: issued, never used, past its expiry.
    stale, _ = await ask_link(admin)
    assert stale is not None
    async with unit_of_work(runtime.sessions) as s:
        await s.execute(
            update(ConsoleLink)
            .where(ConsoleLink.used_at.is_(None))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    token = stale.partition("?t=")[2]
    async with client() as late, late.post(f"{base}/signin", data={"t": token}, allow_redirects=False) as r:
        assert r.status == 403 and "Set-Cookie" not in r.headers

    # Forged cookies: a made-up one, one signed with another key, and a genuine one with its user id changed.
    now = dt.datetime.now(dt.UTC)
    genuine, _ = auth.sign(SECRET.encode(), ADMIN_ID, now, 1)
    other_key, _ = auth.sign(b"another-key-another-key-another-key", ADMIN_ID, now, 1)
    uid, rest = genuine.split(".", 1)
    for forged in ("7701.9999999999.abc.def", other_key, f"7702.{rest}", genuine.replace(uid, "7702", 1)):
        async with aiohttp.ClientSession(cookies={auth.COOKIE: forged}) as http, http.get(f"{base}/") as page:
            assert page.status == 401, forged


async def test_removed_staff_and_csrf_are_refused(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path
) -> None:
    runtime, base = await start_console_bot(bots, db_url, tmp_path / "nlu")
    clerk = await sandbox.user(7703, first_name="Cán bộ")
    await make_staff(runtime, clerk.id)
    [review_id, *_] = await seed_review(runtime, dt.datetime.now(dt.UTC))
    link, _ = await ask_link(clerk)
    assert link is not None
    async with client() as http:
        assert (await sign_in(http, link)).status == 303
        csrf = await csrf_of(http, base)
        # A state change without the token (a form on another site would send one like this): refused, no change.
        for headers, data in (({}, {"action": "dismiss"}), ({"X-CSRF-Token": "nope"}, {"action": "dismiss"})):
            async with http.post(f"{base}/review/{review_id}", data=data, headers=headers) as r:
                assert r.status == 403 and "CSRF" in await r.text()
        async with unit_of_work(runtime.sessions) as s:
            assert (await s.get(NluReview, review_id)).status == "open"  # type: ignore[union-attr]
        async with http.post(
            f"{base}/review/{review_id}",
            data={"action": "dismiss", "csrf": csrf},
            headers={"Accept": "application/json"},
        ) as r:
            assert r.status == 200 and (await r.json()) == {"ok": True, "status": "dismissed"}

        # Removed from the staff: the very next request is refused, with the same cookie.
        async with unit_of_work(runtime.sessions) as s:
            await s.execute(delete(StaffMember).where(StaffMember.user_id == clerk.id))
        async with http.get(f"{base}/") as page:
            assert page.status == 403 and "không còn quyền" in await page.text()
    async with unit_of_work(runtime.sessions) as s:
        actions = [e.action for e in (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()]
    assert actions == ["console.signin", "console.review_dismiss"]


async def test_dashboard_figures_are_the_database_s(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path
) -> None:
    runtime, base = await start_console_bot(bots, db_url, tmp_path / "nlu")
    admin = await sandbox.user(ADMIN_ID, first_name="Quản trị")
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(TZ).date()
    async with unit_of_work(runtime.sessions) as s:
        for uid in (7801, 7802, 7803):
            s.add(User(id=uid, chat_id=uid, lang="vi"))
        for day, intent, handled, fallbacks in [
            (today, "eid_activate", 6, 0),
            (today, "", 3, 3),
            (today, "human_handover", 1, 0),
            (today - dt.timedelta(days=2), "procedure_info", 4, 0),
            (today - dt.timedelta(days=40), "eid_activate", 50, 0),  # outside 30 days
        ]:
            s.add(MessageCount(day=day, intent=intent, handled=handled, fallbacks=fallbacks))
        for day, style, handled, fallbacks in [
            (today, "vi_accented", 4, 1),
            (today, "vi_plain", 5, 2),
            (today - dt.timedelta(days=2), "vi_plain", 3, 0),
            (today, "en", 1, 0),
            (today - dt.timedelta(days=40), "en", 9, 9),  # outside 30 days
        ]:
            s.add(StyleCount(day=day, style=style, handled=handled, fallbacks=fallbacks))
        for day, begun in [(today, 5), (today - dt.timedelta(days=2), 3), (today - dt.timedelta(days=40), 50)]:
            s.add(ConversationCount(day=day, conversations=begun))
        for day, kind, errors in [
            (today, "timeout", 2),
            (today, "server_error", 1),
            (today - dt.timedelta(days=2), "circuit_open", 4),
            (today - dt.timedelta(days=2), "gone_fishing", 1),  # a kind this console does not know: "other"
            (today - dt.timedelta(days=40), "timeout", 9),  # outside 30 days
        ]:
            s.add(PortalErrorCount(day=day, kind=kind, errors=errors))
        await s.flush()
        tickets = []
        # opened earlier today in the province's time, whatever the hour the test runs at (a ticket 300 minutes
        # ago at 01:00 there would be yesterday's)
        since_midnight = now - dt.datetime.combine(today, dt.time(), tzinfo=TZ)
        for uid, minutes_ago, answer_after, in_hours in [
            (7801, 300, 4, True), (7802, 200, 20, False), (7803, 100, None, True),
        ]:  # fmt: skip
            opened = now - min(dt.timedelta(minutes=minutes_ago), since_midnight * (minutes_ago / 400))
            t = Ticket(
                user_id=uid, open_user_id=uid if answer_after is None else None, opened_in_hours=in_hours,
                status=WAITING if answer_after is None else CLOSED, created_at=opened, posted_at=opened,
            )  # fmt: skip
            s.add(t)
            await s.flush()
            tickets.append(t.id)
            if answer_after is not None:
                for k, direction in enumerate(("post", "staff", "staff")):
                    at = opened + dt.timedelta(minutes=answer_after + 5 * (k - 1)) if direction == "staff" else opened
                    s.add(TicketMessage(ticket_id=t.id, direction=direction, chat_id=1, message_id=k, at=at))
        b = Broadcast(
            created_by=ADMIN_ID, status="done", text="x", total=4, created_at=now - dt.timedelta(hours=1),
            started_at=now - dt.timedelta(minutes=55), finished_at=now - dt.timedelta(minutes=50),
        )  # fmt: skip
        # still sending, composed before `b`: its time so far runs to its last delivery
        started = now - dt.timedelta(minutes=10)
        running = Broadcast(created_by=7705, status="running", text="y", total=3,
                            created_at=now - dt.timedelta(hours=2), started_at=started)  # fmt: skip
        s.add_all([b, running])
        await s.flush()
        deliveries: list[tuple[int | None, str]] = [
            (7801, "sent"),
            (7802, "sent"),
            (7803, "blocked"),
            (None, "unknown"),
        ]
        for recipient, state in deliveries:
            s.add(Delivery(broadcast_id=b.id, user_id=recipient, chat_id=recipient or 0, state=state))
        # The last recipient waits for a retry an hour away (after a 429, say), so the bot's own delivery engine,
        # running in this test, leaves the broadcast running instead of finishing it while the test reads it.
        for recipient, seconds in ((7801, 20), (7802, 45), (7803, None)):
            sent = None if seconds is None else started + dt.timedelta(seconds=seconds)
            retry = now + dt.timedelta(hours=1) if sent is None else None
            s.add(Delivery(broadcast_id=running.id, user_id=recipient, chat_id=recipient, next_attempt_at=retry,
                           state="pending" if sent is None else "sent", sent_at=sent))  # fmt: skip
        # the second staff member who approved `b` (a large audience), and an approval of another broadcast
        s.add(AuditEntry(actor_id=7704, action="broadcast.approve", detail=b.audit_detail(),
                         at=now - dt.timedelta(minutes=58)))  # fmt: skip
        s.add(AuditEntry(actor_id=7706, action="broadcast.approve", detail=f"#{b.id}0 area=province topics=*",
                         at=now - dt.timedelta(minutes=57)))  # fmt: skip

        # 👍/👎 today (earlier today in the province's time) and one 40 days ago; comments live in the 👎's review
        # row, "[<answer>] <text>", and "[<answer>]" alone when the citizen skipped the question
        fee, guide = (
            ("proc:cccd_renew", "procedures.cccd_renew.fee"),
            ("guide:eid_activate", "guides.eid_activate.done"),
        )
        votes: list[tuple[tuple[str, str], int | None, str | None, float]] = [
            (fee, -1, "phí ghi sai", 0.9),
            (fee, -1, "không nói nộp ở đâu", 0.7),
            (fee, -1, None, 0.6),  # skipped the question
            (fee, -1, "thiếu lệ phí nộp trực tuyến", 0.5),
            (fee, -1, "số tiền cũ rồi", 0.3),  # the latest three are shown
            (fee, 1, None, 0.2),
            (guide, 1, None, 0.8),
            (guide, 1, None, 0.4),
            (guide, -1, None, 0.35),  # a citizen who said no to the review queue: no review row at all
            (("eid_info", "eid.info"), 1, None, 0.1),
            (("eid_info", "eid.info"), None, None, 0.05),  # offered, never voted
        ]
        for k, ((topic, answer), vote, comment, back) in enumerate(votes):
            at = now - since_midnight * back
            review_id = None
            if vote == -1 and topic == fee[0]:
                text = f"[{answer}]" + (f" {comment}" if comment else "")
                row = NluReview(user_id=7801, text=text, intent=topic, confidence=0.0, ranking="[]",
                                reason="feedback", created_at=at)  # fmt: skip
                s.add(row)
                await s.flush()
                review_id = row.id
            s.add(Feedback(user_id=7801 + k % 3, topic=topic, answer=answer, offered_at=at, vote=vote,
                           voted_at=at if vote else None, review_id=review_id))  # fmt: skip
        long_ago = now - dt.timedelta(days=40)
        s.add(Feedback(user_id=7802, topic="eid_info", answer="eid.info", offered_at=long_ago, vote=-1,
                       voted_at=long_ago))  # fmt: skip

        # reminders: one sent and snoozed today, one stopped and two cancelled today; older ones outside the period
        earlier = now - since_midnight * 0.5
        sent_one = Reminder(user_id=7801, source="citizen", kind="custom", remind_at=earlier, due_at=earlier,
                            sent_at=earlier, state=SENT, group_key="g1")  # fmt: skip
        s.add(sent_one)
        await s.flush()
        for uid, state, at, parent in [
            (7801, PENDING, earlier, sent_one.id),  # "remind me later" on the sent one
            (7802, STOPPED, earlier, None),
            (7802, CANCELLED, earlier, None),
            (7803, CANCELLED, earlier, None),
            (7803, STOPPED, long_ago, None),
            (7803, PENDING, long_ago, sent_one.id),
        ]:
            s.add(Reminder(user_id=uid, source="citizen", kind="custom", remind_at=at, due_at=at, state=state,
                           group_key=f"g{uid}", parent_id=parent, created_at=at, updated_at=at))  # fmt: skip
        for uid, code in ((7801, "000.00.00.H00-250101-0001"), (7802, "000.00.00.H00-250101-0002")):
            s.add(DossierFollow(user_id=uid, code=code, next_poll_at=now))
    link, _ = await ask_link(admin)
    assert link is not None
    async with client() as http:
        assert (await sign_in(http, link)).status == 303
        async with http.get(f"{base}/?days=30") as page:
            html = await page.text()
        async with http.get(f"{base}/csv/daily.csv?days=30") as r:
            assert r.headers["Content-Disposition"].startswith('attachment; filename="daily_')
            daily = (await r.text()).splitlines()
        async with http.get(f"{base}/csv/intents.csv?days=30") as r:
            intents = (await r.text()).splitlines()
        async with http.get(f"{base}/csv/styles.csv?days=30") as r:
            styles = (await r.text()).splitlines()
        async with http.get(f"{base}/csv/conversations.csv?days=30") as r:
            assert r.headers["Content-Disposition"].startswith('attachment; filename="conversations_')
            conversations = (await r.text()).splitlines()
        async with http.get(f"{base}/csv/portal_errors?days=30") as r:
            portal_errors = (await r.text()).splitlines()
        async with http.get(f"{base}/csv/broadcasts.csv?days=30") as r:
            casts = list(csv.reader((await r.text()).splitlines()))
        async with http.get(f"{base}/csv/feedback?days=30") as r:
            assert r.headers["Content-Disposition"].startswith('attachment; filename="feedback_')
            feedback = list(csv.reader((await r.text()).splitlines()))
    # the fallback share by style of writing: 1 of 4 accented, 2 of 8 plain, 0 of 1 English (the 40-day-old row
    # left out)
    styles_table = html[html.index('<table id="styles">') :].split("</table>", 1)[0]
    for label, n, share in (
        ("Tiếng Việt có dấu", 4, "25 %"),
        ("Không dấu, viết tắt", 8, "25 %"),
        ("Tiếng Anh", 1, "0 %"),
    ):
        assert f'<td>{label}</td><td class="n">{n}</td><td class="n">{share}</td>' in styles_table
    assert styles == ["style,messages,not_understood", "en,1,0", "vi_accented,4,1", "vi_plain,8,2"]
    assert len(daily) == 31 and daily[0].startswith("day,messages,fallbacks,handover_asked,understood")
    assert daily[0].endswith(",feedback_up,feedback_down,reminders_snoozed,reminders_stopped,reminders_cancelled")
    # today: 10 messages, 3 not understood, 1 asking for a person: 6 understood; 4 👍, 6 👎; 1 reminder sent,
    # 1 snoozed, 1 stopped, 2 cancelled
    assert daily[-1] == f"{today.isoformat()},10,3,1,6,0.6000,3,1,4,6,1,1,2"
    assert daily[-3] == f"{(today - dt.timedelta(days=2)).isoformat()},4,0,0,4,1.0000,0,0,0,0,0,0,0"
    assert intents == ["intent,messages", "eid_activate,6", "procedure_info,4", "human_handover,1"]
    assert casts[0][-5:] == ["created_by", "approved_by", "started_at", "ended_at", "duration_s"]
    assert casts[1][0] == str(b.id) and casts[1][4:11] == ["4", "2", "1", "1", "0", "0", "0"]
    assert casts[1][11:13] == [str(ADMIN_ID), "7704"] and casts[1][-1] == "300"
    assert casts[2][0] == str(running.id) and casts[2][11:13] == ["7705", ""] and casts[2][-1] == "45"
    assert feedback == [
        ["topic", "answer", "up", "down", "latest_comments"],
        [*fee, "1", "5", "số tiền cũ rồi | thiếu lệ phí nộp trực tuyến | không nói nộp ở đâu"],
        [*guide, "2", "1", ""],
        ["eid_info", "eid.info", "1", "0", ""],
    ]
    # conversations: 5 seeded today (the admin asking the bot for the sign-in link begins none: staff are at
    # work); 3 two days ago; every other day of the 30 a zero
    older = (today - dt.timedelta(days=2)).isoformat()
    assert conversations[0] == "day,conversations" and len(conversations) == 31
    assert conversations[-1] == f"{today.isoformat()},5" and conversations[-3] == f"{older},3"
    assert {line.split(",")[1] for line in conversations[1:-3] + conversations[-2:-1]} == {"0"}
    assert '<div class="kpi" id="kpi-conversations"><b>8</b>' in html
    chart = html[html.index("<h2>Lượt trò chuyện mỗi ngày</h2>") :].split("</figure>", 1)[0]
    assert chart.count('<rect class="bar"') == 30
    assert (
        f"<title>{today:%d/%m}: 5</title>" in chart
        and f"<title>{today - dt.timedelta(days=2):%d/%m}: 3</title>" in chart
    )
    # portal errors per day and kind: the days with errors, latest first, and the period's totals
    labels = table(html, "portal-errors")[0][1:-1]
    assert len(labels) == len(PORTAL_ERROR_KINDS) == 8

    def by_kind(**n: int) -> list[str]:
        return [str(n.get(kind, 0)) for kind in PORTAL_ERROR_KINDS]

    assert table(html, "portal-errors")[1:] == [
        [f"{today:%d/%m/%Y}", *by_kind(timeout=2, server_error=1), "3"],
        [f"{today - dt.timedelta(days=2):%d/%m/%Y}", *by_kind(circuit_open=4, other=1), "5"],
        ["Cả khoảng", *by_kind(timeout=2, server_error=1, circuit_open=4, other=1), "8"],
    ]
    assert "8 lượt tra cứu không có câu trả lời dùng được trong khoảng" in html
    assert portal_errors == [
        "day,kind,errors",
        f"{older},circuit_open,4",
        f"{older},other,1",
        f"{today.isoformat()},timeout,2",
        f"{today.isoformat()},server_error,1",
    ]
    assert '<div class="kpi" id="kpi-messages"><b>14</b>' in html
    assert '<div class="kpi" id="kpi-understood"><b>71%</b>' in html  # 10 of 14
    assert '<div class="kpi" id="kpi-open"><b>1</b>' in html
    # waits to the first staff answer: 4 and 20 minutes -> median 12, p90 (nearest rank) 20
    assert "<b>12 phút</b>" in html and "p90 20 phút" in html
    assert html.count('<rect class="bar"') == 5 * 30  # five charts, one bar per day
    # split by office hours: the 4-minute wait and the unanswered ticket in hours, the 20-minute one outside
    assert table(html, "handover") == [
        ["", "Tất cả", "Trong giờ", "Ngoài giờ"],
        ["Yêu cầu mở trong khoảng", "3", "2", "1"],
        ["Đã có cán bộ trả lời", "2", "1", "1"],
        ["Chưa có câu trả lời", "1", "1", "0"],
        ["Chờ tới câu trả lời đầu tiên, trung vị", "12 phút", "4 phút", "20 phút"],
        ["Chờ tới câu trả lời đầu tiên, p90", "20 phút", "4 phút", "20 phút"],
        ["Đang mở lúc này", "1", ""],
    ]
    assert [row[-1] for row in table(html, "reminders")] == ["1", "1", "1", "2", "2"]
    rows = table(html, "feedback")
    assert [row[1:] for row in rows] == [["Hữu ích 👍", "Chưa tốt 👎"], ["1", "5"], ["2", "1"], ["1", "0"]]
    assert rows[1][0] == (
        "procedures.cccd_renew.fee proc:cccd_renew số tiền cũ rồi thiếu lệ phí nộp trực tuyến không nói nộp ở đâu"
    )
    assert rows[2][0] == "guides.eid_activate.done guide:eid_activate" and rows[3][0] == "eid.info eid_info"
    assert "hữu ích 👍 4 · chưa tốt 👎 6 trong khoảng" in html and 'href="/csv/feedback.csv?days=30"' in html
    cast_rows = table(html, "broadcasts")
    assert cast_rows[0][4:6] == ["Người gửi", "Thời gian gửi"]
    assert cast_rows[1][0] == str(b.id) and cast_rows[1][4:6] == [f"#{ADMIN_ID} duyệt: #7704", "5 phút"]
    assert cast_rows[2][0] == str(running.id) and cast_rows[2][4:6] == ["#7705", "45 giây (đang gửi)"]


async def test_labels_are_exported_as_rasa_yaml(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path
) -> None:
    runtime, base = await start_console_bot(bots, db_url, tmp_path / "nlu")
    admin = await sandbox.user(ADMIN_ID, first_name="Quản trị")
    ids = await seed_review(runtime, dt.datetime.now(dt.UTC))
    link, _ = await ask_link(admin)
    assert link is not None
    async with client() as http:
        assert (await sign_in(http, link)).status == 303
        csrf = await csrf_of(http, base)
        for review_id, intent in zip(ids, ("procedure_info", "eid_activate", "eid_otp_problem"), strict=False):
            async with http.post(
                f"{base}/review/{review_id}", data={"action": "label", "intent": intent, "csrf": csrf}
            ) as r:
                assert r.status == 200 and r.url.path == "/review"
        async with http.post(
            f"{base}/review/{ids[3]}", data={"action": "label", "intent": "no_such", "csrf": csrf}
        ) as r:
            assert r.status == 400
        async with http.post(f"{base}/review/export", data={"csrf": csrf}) as r:
            assert r.status == 200 and "Đã ghi 3 tin" in await r.text()
    [written] = list((tmp_path / "nlu").glob("review_*.yml"))
    draft = yaml.safe_load(written.read_text(encoding="utf-8"))
    groups = {block["intent"]: block["examples"].splitlines() for block in draft["nlu"]}
    assert groups == {
        "procedure_info": ["- lam lai can cuoc bi mat o dau vay"],
        "eid_activate": ["- tai app vneid cho may ba toi the nao"],
        "eid_otp_problem": ["- so dien thoai [phone] khong nhan otp"],
    }
    assert draft["version"] == "3.1" and "# labelled eid_activate: 1" in written.read_text(encoding="utf-8")
    async with unit_of_work(runtime.sessions) as s:
        states = {r.id: (r.status, r.label) for r in (await s.scalars(select(NluReview))).all()}
    assert [states[i] for i in ids] == [
        ("exported", "procedure_info"), ("exported", "eid_activate"), ("exported", "eid_otp_problem"), ("open", None),
    ]  # fmt: skip


async def test_the_models_page_is_for_admins_only(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path
) -> None:
    runtime, base = await start_console_bot(bots, db_url, tmp_path / "nlu")
    admin = await sandbox.user(ADMIN_ID, first_name="Quản trị")
    clerk = await sandbox.user(7703, first_name="Cán bộ")
    await make_staff(runtime, clerk.id)
    await seed_review(runtime, dt.datetime.now(dt.UTC))
    admin_link, _ = await ask_link(admin)
    clerk_link, _ = await ask_link(clerk)
    assert admin_link and clerk_link
    async with client() as http:
        assert (await sign_in(http, clerk_link)).status == 303
        async with http.get(f"{base}/") as page:
            assert 'href="/models"' not in await page.text()
        async with http.get(f"{base}/models") as page:
            assert page.status == 403 and "quản trị viên" in await page.text()
    async with client() as http:
        assert (await sign_in(http, admin_link)).status == 303
        async with http.get(f"{base}/") as page:
            assert 'href="/models"' in await page.text()
        async with http.get(f"{base}/models") as page:
            assert page.status == 200
            html = await page.text()
    assert "không trả lời" in html  # nothing listens where this test's bot looks for the NLU server
    for model in MODELS.glob("nlu-*.tar.gz"):
        assert model.name in html
    assert '<td>open</td><td>fallback</td><td class="n">3</td>' in html
    assert '<td>open</td><td>ambiguous</td><td class="n">1</td>' in html


@pytest.fixture(scope="module")
def swap_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RasaServer, Path]]:
    """A Rasa server of this module's own (swapping the session server's model would change what other tests talk
    to), started from a models directory of three copies of the trained model. The copies parse alike; what tells
    them apart is the figures an evaluation recorded beside each, which is what the swap guard reads."""
    models = tmp_path_factory.mktemp("models")
    model = latest_model()
    assert model is not None, "make test trains the model first"
    for name in (RUNNING, BETTER, WORSE):
        shutil.copy2(model, models / name)
    server = start_rasa(RASA_TOKEN, model=models / RUNNING)
    try:
        yield server, models
    finally:
        server.stop()


RUNNING, BETTER, WORSE = "nlu-aaaaaaaaaaaa.tar.gz", "nlu-bbbbbbbbbbbb.tar.gz", "nlu-cccccccccccc.tar.gz"


def record(models: Path, name: str, field_accuracy: float, confident_wrong: float) -> None:
    Figures(
        model=name,
        evaluated_at=dt.datetime(2026, 12, 6, 2, 0, tzinfo=dt.UTC),
        field_set=field_set_hash(),
        field_n=632,
        heldout_accuracy=0.978,
        field_accuracy=field_accuracy,
        field_confident_wrong=confident_wrong,
        field_accuracy_by_style={"vi_accented": field_accuracy, "vi_plain": field_accuracy, "en": field_accuracy},
    ).write(models / name)


async def test_the_swap_button_loads_a_candidate_only_when_it_is_not_worse_on_the_field_set(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path, swap_models: tuple[RasaServer, Path]
) -> None:
    server, models = swap_models
    nlu = NluClient(server.url, RASA_TOKEN)
    try:  # the module's server may run another copy after the first database's run
        assert await nlu.load_model(str(models / RUNNING)) is None
    finally:
        await nlu.aclose()
    record(models, RUNNING, 0.9225, 0.0459)
    record(models, BETTER, 0.9301, 0.0400)
    record(models, WORSE, 0.9310, 0.0510)  # more accurate, but more often confidently wrong
    runtime, base = await start_console_bot(bots, db_url, tmp_path / "nlu", rasa_url=server.url, nlu_models_dir=models)
    admin = await sandbox.user(ADMIN_ID, first_name="Quản trị")
    clerk = await sandbox.user(7704, first_name="Cán bộ")
    await make_staff(runtime, clerk.id)
    admin_link, _ = await ask_link(admin)
    clerk_link, _ = await ask_link(clerk)
    assert admin_link and clerk_link

    async def running() -> str:
        async with httpx.AsyncClient() as http:
            status = (await http.get(f"{server.url}/status", params={"token": RASA_TOKEN})).json()
        return Path(status["model_file"]).name

    async with client() as http:  # a staff member who is not an admin cannot swap, even with a valid CSRF token
        assert (await sign_in(http, clerk_link)).status == 303
        csrf = await csrf_of(http, base)
        async with http.post(f"{base}/models/swap", data={"model": BETTER, "csrf": csrf}) as r:
            assert r.status == 403
    async with client() as http:
        assert (await sign_in(http, admin_link)).status == 303
        async with http.get(f"{base}/models", params={"candidate": WORSE}) as page:
            html = await page.text()
        assert "92.2 %" in html and "93.1 %" in html and "5.1 %" in html  # the two side by side
        assert "nhiều câu trả lời sai mà tự tin hơn" in html and 'id="swap" disabled' in html
        csrf = await csrf_of(http, base)
        async with http.post(f"{base}/models/swap", data={"model": WORSE, "csrf": csrf}) as r:
            assert r.status == 409 and "tự tin hơn" in await r.text()
        async with http.post(f"{base}/models/swap", data={"model": "../../etc/passwd", "csrf": csrf}) as r:
            assert r.status == 404
        async with http.post(f"{base}/models/swap", data={"model": BETTER}) as r:
            assert r.status == 403  # no CSRF token
        assert await running() == RUNNING

        async with http.get(f"{base}/models", params={"candidate": BETTER}) as page:
            html = await page.text()
        assert "có thể thay" in html and 'id="swap" disabled' not in html
        async with http.post(f"{base}/models/swap", data={"model": BETTER, "csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"/models?swapped={BETTER}"
            landing = r.headers["Location"]
        assert await running() == BETTER
        async with http.get(f"{base}{landing}") as page:
            html = await page.text()
        assert f"chuyển sang <code>{BETTER}</code>" in html
        assert "mô hình này đang chạy" not in html  # the default candidate is another file, not the running one
    async with unit_of_work(runtime.sessions) as s:
        audit = [(a.actor_id, a.action, a.detail) for a in (await s.scalars(select(AuditEntry))).all()]
    swaps = [a for a in audit if a[1].startswith("console.model_swap")]
    assert swaps == [
        (ADMIN_ID, "console.model_swap_refused", f"{WORSE}: nhiều câu trả lời sai mà tự tin hơn mô hình đang chạy"),
        (ADMIN_ID, "console.model_swap", f"{RUNNING} -> {BETTER}"),
    ]


async def test_the_hourly_purge_drops_links_a_day_past_expiry(
    sandbox: SandboxClient, bots: BotRunner, db_url: str, tmp_path: Path
) -> None:
    runtime, _ = await start_console_bot(bots, db_url, tmp_path / "nlu")
    now = dt.datetime.now(dt.UTC)
    async with unit_of_work(runtime.sessions) as s:
        old = await auth.new_link(s, ADMIN_ID, now - dt.timedelta(days=2), 5)
        recent = await auth.new_link(s, ADMIN_ID, now - dt.timedelta(hours=2), 5)
    await runtime.purge()
    async with unit_of_work(runtime.sessions) as s:
        kept = set((await s.scalars(select(ConsoleLink.token_hash))).all())
    assert kept == {auth.link_hash(recent)} and auth.link_hash(old) not in kept


async def test_without_a_console_port_staff_are_told_it_is_off(
    sandbox: SandboxClient, bots: BotRunner, db_url: str
) -> None:
    runtime = await bots.start(db_url, admin_ids=[ADMIN_ID])
    admin = await sandbox.user(ADMIN_ID, first_name="Quản trị")
    link, body = await ask_link(admin)
    assert link is None and "chưa được bật" in body
    assert runtime.console is None
    async with unit_of_work(runtime.sessions) as s:
        assert (await s.scalars(select(ConsoleLink))).all() == []


async def test_sandbox_history_gives_the_dashboard_something_to_show(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}"
    await migrate(url)
    now = dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC)
    made = await history.generate(url, days=30, now=now)
    engine = make_engine(url)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as s:
            dash = await figures.compute(s, figures.Period.ending(now, TZ, 30))
            queue = await review.open_items(s)
    finally:
        await engine.dispose()
    assert dash.messages == made["messages"] > 0
    assert sum(d.tickets for d in dash.days) == made["tickets"] == len(dash.waits_s) > 0
    assert sum(d.reminders for d in dash.days) == made["reminders"] > 0
    assert len(dash.broadcasts) == 2 and sum(sum(b.states.values()) for b in dash.broadcasts) == made["deliveries"]
    assert len(queue) == made["review"] == 8 and all(item.top for item in queue)
    assert dash.by_hours[True].waits_s and dash.by_hours[False].waits_s  # evening tickets, answered next morning
    assert dash.total("reminders_snoozed") > 0 and dash.total("reminders_stopped") > 0
    assert dash.dossiers_followed == 6
    # every message of the history in one style of writing, and every fallback too
    assert sum(n for n, _ in dash.styles.values()) == made["messages"] and set(dash.styles) == set(STYLES)
    assert sum(f for _, f in dash.styles.values()) == sum(d.fallbacks for d in dash.days) > 0
    # conversations: a few messages each, at least one on every day with messages
    assert dash.total("conversations") == made["conversations"] > 0
    assert all(0 < d.conversations <= d.messages for d in dash.days if d.messages)
    # portal errors: every kind the history writes is one the dashboard shows, the outage day among them
    assert sum(d.portal_errors_total for d in dash.days) == made["portal_errors"] > 0
    assert {k for d in dash.days for k in d.portal_errors} <= set(PORTAL_ERROR_KINDS)
    assert dash.portal_error_total("circuit_open") > 0 and dash.portal_error_total("auth") > 0
    assert dash.feedback and any(f.comments for f in dash.feedback)
    assert all(b.duration_s == 80 for b in dash.broadcasts)


async def test_queue_depths_count_what_waits(db_url: str) -> None:
    """The health figures the dashboard shows: pending deliveries of unfinished broadcasts, open review rows."""
    await migrate(db_url)
    engine = make_engine(db_url)
    try:
        async with unit_of_work(make_sessionmaker(engine)) as s:
            running = Broadcast(created_by=1, status="running", text="x", total=5)
            done = Broadcast(created_by=1, status="done", text="y", total=4)
            s.add_all([running, done])
            await s.flush()
            for i, state in enumerate(["pending", "pending", "pending", "sent", "sending"]):
                s.add(Delivery(broadcast_id=running.id, user_id=None, chat_id=i, state=state))
            for i in range(4):
                s.add(Delivery(broadcast_id=done.id, user_id=None, chat_id=i, state="sent"))
            for status in ("open", "open", "labelled", "exported", "dismissed"):
                s.add(NluReview(text="t", intent=None, confidence=0.1, ranking="[]", reason="fallback", status=status))
        async with unit_of_work(make_sessionmaker(engine)) as s:
            depths = await queue_depths(s)
    finally:
        await engine.dispose()
    assert depths["deliveries_pending"] == 3 and depths["review_queue"] == 2


def test_the_console_does_not_start_without_a_secret() -> None:
    for secret in (None, "short"):
        settings = Settings.model_validate({"console_port": 8090, "console_secret": secret})
        with pytest.raises(ConsoleConfigError, match="CONSOLE_SECRET"):
            ConsoleServer(settings, None, dependencies=None, queue_depths=None)  # type: ignore[arg-type]
