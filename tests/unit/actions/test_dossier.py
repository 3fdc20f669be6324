"""The dossier-status capability: what the citizen sees and what the database holds, with the real emulator."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from actions.base import Context, Services
from actions.dossier import (
    DossierCapability,
    decode_start_payload,
    deep_link,
    encode_start_payload,
    mask_name,
    purge_lookups,
    render_change,
)
from core.settings import Settings
from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Entity, Incoming, Reply, Understanding
from portal.breaker import CircuitBreaker, State
from portal.budget import LookupBudget
from portal.client import PortalClient
from portal.poller import DossierPoller
from sandbox.portal.server import PortalEmulator, load_seed
from store.all_models import Base
from store.models import User
from store.models_dossier import DossierFollow, DossierLookup, DossierPrompt
from store.models_handover import PortalErrorCount

PROCESSING = "000.00.12.H22-240101-0003"
SUPPLEMENT = "H22.38-240615-0001"
FEE = "000.00.15.H22-240620-0007"
RETURNED = "000.00.12.H22-240801-0020"
RECEIVED = "000.00.12.H22-240103-0002"
BY_STATUS = {
    1: "000.00.12.H22-240102-0001",
    2: RECEIVED,
    3: "000.00.12.H22-240104-0004",
    4: PROCESSING,
    5: SUPPLEMENT,
    6: FEE,
    7: "000.00.12.H22-240701-0012",
    8: "000.00.12.H22-240705-0009",
    9: "38.98.H29-210519-0013",
    10: RETURNED,
}
USER_ID = 42
NOW = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
DIGITS = {d.code: d.phone[-4:] for d in load_seed().dossiers}  # what each applicant would type


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


@pytest.fixture
async def emu() -> AsyncIterator[PortalEmulator]:
    emulator = PortalEmulator()
    await emulator.start("127.0.0.1", 0)
    yield emulator
    await emulator.stop()


@pytest.fixture
async def portal(emu: PortalEmulator) -> AsyncIterator[PortalClient]:
    client = PortalClient(
        emu.base_url,
        emu.token_url,
        "citizen-assistant",
        "change-me",
        max_attempts=2,
        backoff_base_s=0.01,
        breaker=CircuitBreaker(failure_threshold=2, reset_timeout_s=60),
    )
    yield client
    await client.aclose()


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")

    @event.listens_for(engine.sync_engine, "connect")
    def _fk(dbapi_conn: Any, _: Any) -> None:  # SQLite enforces ON DELETE CASCADE only when asked
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def ctx(engine: AsyncEngine, content: Content, portal: PortalClient) -> AsyncIterator[Context]:
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        user = User(id=USER_ID, chat_id=USER_ID, lang="vi")
        session.add(user)
        await session.flush()
        yield Context(
            content=content,
            settings=Settings.model_construct(),  # defaults, whatever .env holds
            session=session,
            user=user,
            now=NOW,
            services=Services(portal=portal),
        )


def roomy() -> LookupBudget:
    """A lookup budget these tests do not run out of (the budget has its own tests)."""
    return LookupBudget(1000.0, 1000)


@pytest.fixture
def cap() -> DossierCapability:
    return DossierCapability(max_follows=3, poll_interval_s=1800, budget=roomy())


def said(content: Content, key: str, lang: str = "vi", **values: object) -> str:
    return content.text(f"dossier.{key}", lang, **values)


async def ask(cap: DossierCapability, ctx: Context, text: str, entity: str | None = None) -> list[Reply]:
    entities = (Entity("dossier_code", entity),) if entity is not None else ()
    inc = Incoming(USER_ID, USER_ID, ctx.lang, text=text, nlu=Understanding("check_status", 0.93, entities))
    return await cap.on_intent(inc, ctx)


async def press(cap: DossierCapability, ctx: Context, data: str) -> list[Reply]:
    inc = Incoming(USER_ID, USER_ID, ctx.lang, callback=callbacks.decode(data))
    return await cap.on_callback(inc, ctx)


async def type_text(cap: DossierCapability, ctx: Context, text: str) -> list[Reply]:
    return await cap.on_text(Incoming(USER_ID, USER_ID, ctx.lang, text=text), ctx)


async def verified(cap: DossierCapability, ctx: Context, code: str) -> Reply:
    """Look the code up, press [Details and follow] and type the applicant's phone digits: the full card."""
    await ask(cap, ctx, code)
    (question,) = await press(cap, ctx, callbacks.encode("ds_verify", code))
    assert question.text == said(ctx.content, "verify_ask", ctx.lang, code=code)
    (card,) = await type_text(cap, ctx, DIGITS[code])
    return card


async def follow(cap: DossierCapability, ctx: Context, code: str) -> Reply:
    await verified(cap, ctx, code)
    (reply,) = await press(cap, ctx, callbacks.encode("ds_follow", code))
    return reply


def own_buttons(reply: Reply) -> list[Button]:
    """The dossier capability's buttons, without the [👍] [👎] row the first answer of a topic carries."""
    return [b for row in reply.buttons for b in row if not b.data.startswith("fb_")]


def button_data(reply: Reply) -> list[str]:
    return [b.data for b in own_buttons(reply)]


def button_labels(reply: Reply) -> list[str]:
    return [b.label for b in own_buttons(reply)]


async def follow_rows(ctx: Context) -> list[DossierFollow]:
    return list((await ctx.session.scalars(select(DossierFollow).order_by(DossierFollow.id))).all())


# ---------------------------------------------------------------------------------------------- lookups


async def test_a_bare_code_shows_only_what_the_portal_makes_public(
    cap: DossierCapability, ctx: Context, emu: PortalEmulator
) -> None:
    (reply,) = await ask(cap, ctx, "tra cứu hồ sơ 000.00.12.H22-240101-0003")
    c = ctx.content
    assert reply.text.splitlines() == [
        said(c, "card_title", code=PROCESSING),
        said(c, "card_procedure", procedure="Đăng ký thường trú"),
        said(c, "card_status", status="Đang xử lý"),
        "",
        said(c, "card_public"),
    ]
    for private in ("N***", "Người nộp", "Công an phường", "01/2024", "Cơ quan", "👉"):
        assert private not in reply.text
    assert button_data(reply) == [f"ds_verify|{PROCESSING}", "ds_ask"]
    assert emu.verifications == {}  # the bot sent no second factor it was not given


async def test_the_full_card_needs_the_phone_digits(cap: DossierCapability, ctx: Context) -> None:
    reply = await verified(cap, ctx, PROCESSING)
    c = ctx.content
    assert reply.text.splitlines()[:5] == [
        said(c, "card_title", code=PROCESSING),
        said(c, "card_procedure", procedure="Đăng ký thường trú"),
        said(c, "card_applicant", name="N*** V** A"),
        said(c, "card_status", status="Đang xử lý"),
        said(c, "card_next", next=said(c, "next_4")),
    ]
    assert "Ngày tiếp nhận: 01/01/2024" in reply.text
    assert "Ngày hẹn trả kết quả: 10/01/2024" in reply.text
    assert "Cơ quan giải quyết: Công an phường Hòa Bình" in reply.text
    assert "Nguyễn Văn An" not in reply.text and "Nguyễn" not in reply.text
    assert reply.buttons[0][0].label == "🔔 Theo dõi hồ sơ này"
    assert callbacks.decode(reply.buttons[0][0].data) == ("ds_follow", (PROCESSING,))
    assert button_labels(reply)[-1] == "🔎 Tra cứu hồ sơ khác"


async def test_the_first_status_answer_asks_for_feedback_once(cap: DossierCapability, ctx: Context) -> None:
    (first,) = await ask(cap, ctx, "tra cứu hồ sơ 000.00.12.H22-240101-0003")
    assert [b.label for b in first.buttons[-1]] == ["👍", "👎"]
    assert callbacks.decode(first.buttons[-1][1].data) == ("fb_down", ("status", "status:4"))
    (again,) = await ask(cap, ctx, "tra cứu hồ sơ 000.00.12.H22-240101-0003")
    assert not any(b.data.startswith("fb_") for row in again.buttons for b in row)


async def test_entity_from_the_nlu_is_normalised(cap: DossierCapability, ctx: Context) -> None:
    (reply,) = await ask(cap, ctx, "ma ho so h22.38 – 240615 – 0001", entity="h22.38 – 240615 – 0001")
    assert said(ctx.content, "card_title", code=SUPPLEMENT) in reply.text


@pytest.mark.parametrize(("status", "code"), sorted(BY_STATUS.items()))
@pytest.mark.parametrize("lang", ["vi", "en"])
async def test_every_status_has_its_label_and_next_step(
    status: int, code: str, lang: str, cap: DossierCapability, ctx: Context
) -> None:
    ctx.user.lang = lang
    reply = await verified(cap, ctx, code)
    label = said(ctx.content, f"status_{status}", lang)
    assert said(ctx.content, "card_status", lang, status=label) in reply.text
    assert said(ctx.content, f"next_{status}", lang) in reply.text
    final = status in (3, 7, 8, 10)
    assert any(d.startswith("ds_follow|") for d in button_data(reply)) is not final  # nothing to follow


async def test_what_is_missing_by_when_and_the_fee(cap: DossierCapability, ctx: Context) -> None:
    reply = await verified(cap, ctx, SUPPLEMENT)
    lines = reply.text.splitlines()
    start = lines.index("📎 <b>Cần bổ sung:</b>")
    assert lines[start + 1 : start + 4] == [
        "• Giấy tờ chứng minh chỗ ở hợp pháp (hợp đồng thuê nhà)",
        "• Văn bản đồng ý của chủ hộ",
        "Hạn bổ sung: <b>25/06/2024</b>",
    ]
    reply = await verified(cap, ctx, FEE)
    assert "💰 <b>Cần nộp: 135.000 đồng</b>" in reply.text
    assert "(Lệ phí cấp đổi giấy phép lái xe)" in reply.text
    assert "Hạn nộp: <b>24/06/2024</b>" in reply.text
    ctx.user.lang = "en"
    (reply,) = await ask(cap, ctx, FEE)  # verified a moment ago: the full card again, without the digits
    assert "💰 <b>To pay: 135,000 VND</b>" in reply.text
    assert "Status: <b>Payment requested (fees or other financial obligations)</b>" in reply.text


async def test_dates_are_shown_in_vietnam_time(cap: DossierCapability, ctx: Context, emu: PortalEmulator) -> None:
    d = emu.dossier(PROCESSING)
    d.received = dt.datetime(2024, 1, 1, 18, 30, tzinfo=dt.UTC)  # 01:30 on 2 January in Vietnam
    reply = await verified(cap, ctx, PROCESSING)
    assert "Ngày tiếp nhận: 02/01/2024" in reply.text


async def test_portal_text_is_escaped(cap: DossierCapability, ctx: Context, emu: PortalEmulator) -> None:
    emu.dossier(PROCESSING).procedure = "<b>Đăng ký</b> & <script>"
    (reply,) = await ask(cap, ctx, PROCESSING)
    assert "Thủ tục: &lt;b&gt;Đăng ký&lt;/b&gt; &amp; &lt;script&gt;" in reply.text


async def test_invalid_code_explains_where_to_find_it(cap: DossierCapability, ctx: Context) -> None:
    (reply,) = await ask(cap, ctx, "hồ sơ 000.00.12.H22-241399-0003", entity="000.00.12.H22-241399-0003")
    assert reply.text == said(ctx.content, "invalid_code")
    assert "Giấy tiếp nhận hồ sơ và hẹn trả kết quả" in reply.text
    assert "<code>000.00.12.H22-240101-0003</code>" in reply.text


async def test_unknown_code_is_answered_politely(cap: DossierCapability, ctx: Context) -> None:
    code = "000.00.12.H22-240101-9999"
    (reply,) = await ask(cap, ctx, f"tra cứu {code}")
    assert reply.text == said(ctx.content, "not_found", code=code)
    assert button_data(reply) == ["ds_ask"]


async def test_portal_down_is_one_quick_message(cap: DossierCapability, ctx: Context, emu: PortalEmulator) -> None:
    emu.fail(503)
    (reply,) = await ask(cap, ctx, PROCESSING)
    assert reply.text == said(ctx.content, "portal_down")
    assert reply.buttons == ()
    calls = emu.count("dossiers")
    started = time.monotonic()
    (reply,) = await ask(cap, ctx, RECEIVED)
    assert time.monotonic() - started < 0.1  # the breaker is open: no waiting on a dead portal
    assert emu.count("dossiers") == calls
    assert reply.text == said(ctx.content, "portal_down")


async def test_malformed_answer_is_a_polite_error(cap: DossierCapability, ctx: Context, emu: PortalEmulator) -> None:
    emu.malformed(count=1)
    (reply,) = await ask(cap, ctx, PROCESSING)
    assert reply.text == said(ctx.content, "portal_error")


# ---------------------------------------------------------------------------------------------- waiting for a code


async def test_question_without_code_asks_then_the_next_message_answers(cap: DossierCapability, ctx: Context) -> None:
    (reply,) = await ask(cap, ctx, "hồ sơ của tôi đến đâu rồi")
    assert reply.text == said(ctx.content, "ask_code")
    assert await cap.wants_text(ctx)
    assert await ctx.session.get(DossierPrompt, USER_ID) is not None  # kept in the database, not in memory

    (reply,) = await type_text(cap, ctx, "mã là h22.38 – 240615 – 0001 nhé")
    assert said(ctx.content, "card_title", code=SUPPLEMENT) in reply.text
    assert not await cap.wants_text(ctx)
    assert await ctx.session.get(DossierPrompt, USER_ID) is None


async def test_asking_offers_the_followed_dossiers(cap: DossierCapability, ctx: Context) -> None:
    await follow(cap, ctx, PROCESSING)
    await follow(cap, ctx, SUPPLEMENT)
    (reply,) = await ask(cap, ctx, "hồ sơ của tôi đến đâu rồi")
    assert reply.text == f"{said(ctx.content, 'ask_code')}\n\n{said(ctx.content, 'ask_code_followed')}"
    assert button_data(reply) == [f"ds_pick|{PROCESSING}", f"ds_pick|{SUPPLEMENT}"]
    assert button_labels(reply) == [f"{PROCESSING} · Đang xử lý", f"{SUPPLEMENT} · Cần bổ sung giấy tờ"]
    (picked,) = await press(cap, ctx, button_data(reply)[1])
    assert said(ctx.content, "card_title", code=SUPPLEMENT) in picked.text


async def test_while_waiting_a_mistyped_code_is_explained_and_waiting_goes_on(
    cap: DossierCapability, ctx: Context
) -> None:
    await ask(cap, ctx, "kiểm tra hồ sơ")
    (reply,) = await type_text(cap, ctx, "000.00.12.H22-240101-003")
    assert reply.text == said(ctx.content, "invalid_code")
    assert await cap.wants_text(ctx)


async def test_while_waiting_another_topic_goes_back_to_the_router(cap: DossierCapability, ctx: Context) -> None:
    await ask(cap, ctx, "kiểm tra hồ sơ")
    assert await type_text(cap, ctx, "cách kích hoạt vneid") == []
    assert not await cap.wants_text(ctx)


async def test_waiting_for_a_code_expires(cap: DossierCapability, ctx: Context) -> None:
    await ask(cap, ctx, "kiểm tra hồ sơ")
    ctx.now = NOW + dt.timedelta(minutes=11)
    assert not await cap.wants_text(ctx)


async def test_look_up_another_button_asks_for_a_code(cap: DossierCapability, ctx: Context) -> None:
    (reply,) = await press(cap, ctx, "ds_ask")
    assert reply.text == said(ctx.content, "ask_code")
    assert await cap.wants_text(ctx)


# ---------------------------------------------------------------------------------------------- following


async def test_follow_list_pick_unfollow(ctx: Context) -> None:
    handed: list[tuple[int, str, list[tuple[str, dt.datetime]]]] = []

    async def on_deadlines(_: object, user_id: int, code: str, deadlines: list[tuple[str, dt.datetime]]) -> None:
        handed.append((user_id, code, deadlines))

    cap = DossierCapability(max_follows=3, on_deadlines=on_deadlines, budget=roomy())
    reply = await follow(cap, ctx, SUPPLEMENT)
    assert reply.text == said(ctx.content, "followed", code=SUPPLEMENT)
    assert button_data(reply) == [f"ds_unfollow|{SUPPLEMENT}"]
    (row,) = await follow_rows(ctx)
    assert (row.user_id, row.code, row.last_status) == (USER_ID, SUPPLEMENT, 5)
    assert row.fingerprint is not None and len(row.fingerprint) == 64
    assert NOW < row.next_poll_at <= NOW + dt.timedelta(seconds=1800)
    assert handed == [
        (
            USER_ID,
            SUPPLEMENT,
            [
                ("supplement", dt.datetime(2024, 6, 25, 10, 0, tzinfo=dt.UTC)),
                ("appointment", dt.datetime(2024, 6, 20, 9, 30, tzinfo=dt.UTC)),
            ],
        )
    ]

    (card,) = await ask(cap, ctx, SUPPLEMENT)
    assert said(ctx.content, "card_following") in card.text
    assert button_data(card) == [f"ds_unfollow|{SUPPLEMENT}", "ds_list", "ds_ask"]
    assert "📋 Hồ sơ đang theo dõi (1)" in button_labels(card)

    (listing,) = await press(cap, ctx, "ds_list")
    assert listing.text == said(ctx.content, "list_title", count=1, limit=3)
    assert button_data(listing) == [f"ds_pick|{SUPPLEMENT}", "ds_ask"]

    (reply,) = await press(cap, ctx, f"ds_unfollow|{SUPPLEMENT}")
    assert reply.text == said(ctx.content, "unfollowed", code=SUPPLEMENT)
    assert await follow_rows(ctx) == []  # the code is not kept once unfollowed
    assert handed[-1] == (USER_ID, SUPPLEMENT, [])
    (reply,) = await press(cap, ctx, f"ds_unfollow|{SUPPLEMENT}")
    assert reply.text == said(ctx.content, "not_following", code=SUPPLEMENT)
    (listing,) = await press(cap, ctx, "ds_list")
    assert listing.text == said(ctx.content, "list_empty")


async def test_follow_limit_per_citizen(cap: DossierCapability, ctx: Context) -> None:
    for code in (BY_STATUS[1], BY_STATUS[2], BY_STATUS[4]):
        reply = await follow(cap, ctx, code)
        assert reply.text == said(ctx.content, "followed", code=code)
    (reply,) = await press(cap, ctx, callbacks.encode("ds_follow", BY_STATUS[5]))
    assert reply.text == said(ctx.content, "follow_limit", limit=3)
    assert "ds_list" in button_data(reply)
    assert [r.code for r in await follow_rows(ctx)] == [BY_STATUS[1], BY_STATUS[2], BY_STATUS[4]]


async def test_following_twice_keeps_one_row(cap: DossierCapability, ctx: Context) -> None:
    await follow(cap, ctx, PROCESSING)
    (reply,) = await press(cap, ctx, callbacks.encode("ds_follow", PROCESSING))
    assert reply.text == said(ctx.content, "already_following", code=PROCESSING)
    assert len(await follow_rows(ctx)) == 1


async def test_closed_or_unknown_dossiers_are_not_followed(cap: DossierCapability, ctx: Context) -> None:
    reply = await follow(cap, ctx, RETURNED)
    assert reply.text == said(ctx.content, "follow_final", code=RETURNED)
    unknown = "000.00.12.H22-240101-9999"
    (reply,) = await ask(cap, ctx, unknown)
    assert reply.text == said(ctx.content, "not_found", code=unknown)
    (reply,) = await press(cap, ctx, callbacks.encode("ds_verify", unknown))
    (reply,) = await type_text(cap, ctx, "1234")
    assert reply.text == said(ctx.content, "not_found", code=unknown)
    assert await follow_rows(ctx) == []


async def test_follow_while_the_portal_is_down_is_kept_and_polled_at_once(
    cap: DossierCapability, ctx: Context, emu: PortalEmulator
) -> None:
    await verified(cap, ctx, PROCESSING)
    emu.fail(503)
    (reply,) = await press(cap, ctx, callbacks.encode("ds_follow", PROCESSING))
    assert reply.text == said(ctx.content, "followed_portal_down", code=PROCESSING)
    (row,) = await follow_rows(ctx)
    assert (row.fingerprint, row.last_status, row.next_poll_at) == (None, None, NOW)
    assert row.access_key == emu.dossier_key(PROCESSING)  # so the poller reads the full dossier later


async def test_a_state_seen_in_a_lookup_is_not_announced_again(
    cap: DossierCapability, ctx: Context, engine: AsyncEngine, emu: PortalEmulator, portal: PortalClient
) -> None:
    await follow(cap, ctx, RECEIVED)
    emu.advance(RECEIVED)  # 2 → 4
    (card,) = await ask(cap, ctx, RECEIVED)  # the citizen looks before the poller does
    assert "Đang xử lý" in card.text
    await ctx.session.commit()

    sent: list[str] = []

    async def notify(user_id: int, chat_id: int, dossier: Any, lang: str) -> None:
        sent.append(dossier.code)

    sessions = async_sessionmaker(engine, expire_on_commit=False)
    poller = DossierPoller(sessions, portal, notify, budget_rps=1000, now=lambda: NOW + dt.timedelta(hours=1))
    assert (await poller.run_once()).requests == 1
    assert sent == []
    emu.advance(RECEIVED)  # 4 → 9: this one is news
    poller = DossierPoller(sessions, portal, notify, budget_rps=1000, now=lambda: NOW + dt.timedelta(hours=2))
    assert (await poller.run_once()).notified == 1
    assert sent == [RECEIVED]


async def test_looking_up_a_followed_dossier_that_closed_ends_the_follow(
    cap: DossierCapability, ctx: Context, emu: PortalEmulator
) -> None:
    await follow(cap, ctx, BY_STATUS[9])
    emu.advance(BY_STATUS[9])  # 9 → 10: result returned
    (card,) = await press(cap, ctx, callbacks.encode("ds_pick", BY_STATUS[9]))
    assert "Đã trả kết quả" in card.text
    assert card.text.endswith(said(ctx.content, "change_ended"))
    assert button_data(card) == ["ds_ask"]
    assert await follow_rows(ctx) == []


async def test_deleting_the_citizen_deletes_their_follows(cap: DossierCapability, ctx: Context) -> None:
    await follow(cap, ctx, PROCESSING)
    await ask(cap, ctx, "kiểm tra hồ sơ")
    await ctx.session.flush()
    await ctx.session.execute(delete(User).where(User.id == USER_ID))
    ctx.session.expunge_all()
    assert await follow_rows(ctx) == []
    assert await ctx.session.scalar(select(func.count()).select_from(DossierLookup)) == 0
    assert await ctx.session.scalar(select(func.count()).select_from(DossierPrompt)) == 0


async def test_bad_button_arguments_are_refused(cap: DossierCapability, ctx: Context) -> None:
    inc = Incoming(USER_ID, USER_ID, "vi", callback=("ds_follow", ("not-a-code",)))
    (reply,) = await cap.on_callback(inc, ctx)
    assert reply.text == said(ctx.content, "bad_button")
    assert await follow_rows(ctx) == []


# ---------------------------------------------------------------------------------------------- notices, links, names


async def test_change_notice(content: Content, portal: PortalClient) -> None:
    dossier = await portal.get_dossier(PROCESSING)
    notice = render_change(content, dossier, "en")
    assert notice.text.startswith(said(content, "change_title", "en"))
    assert "Status: <b>Being processed</b>" in notice.text
    assert button_data(notice) == [f"ds_unfollow|{PROCESSING}"]
    closed = render_change(content, await portal.get_dossier(RETURNED), "vi")
    assert closed.text.endswith(said(content, "change_ended"))
    assert closed.buttons == ()


async def test_deep_link(cap: DossierCapability, ctx: Context, emu: PortalEmulator) -> None:
    for code in emu.codes():
        payload = encode_start_payload(code)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", payload)  # what Telegram allows in a start parameter
        assert decode_start_payload(payload) == code
    assert deep_link("@ProvinceAssistantBot", PROCESSING) == (
        "https://t.me/ProvinceAssistantBot?start=dossier_000_00_12_H22-240101-0003"
    )
    inc = Incoming(USER_ID, USER_ID, "vi", text="/start dossier_000_00_12_H22-240101-0003")
    (reply,) = await cap.on_deep_link("dossier_000_00_12_H22-240101-0003", inc, ctx)
    assert said(ctx.content, "card_title", code=PROCESSING) in reply.text
    assert await cap.on_deep_link("news_hanoi", inc, ctx) == []
    (reply,) = await cap.on_deep_link("dossier_garbage", inc, ctx)
    assert reply.text == said(ctx.content, "invalid_code")


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("Nguyễn Văn An", "N*** V** A"),
        ("Lê Hoàng Cường", "L* H*** C"),
        ("  Đặng   Thu Giang ", "Đ*** T** G"),
        ("Tôn Nữ Thị Phương Thảo", "T** N* T** P*** T"),
        ("An", "A"),
        ("", ""),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_every_status_is_worded_in_both_languages(content: Content) -> None:
    for status in range(1, 11):
        for key in (f"status_{status}", f"next_{status}"):
            entry = content.entry(f"dossier.{key}")
            assert entry.vi.strip() and entry.en.strip() and entry.vi != entry.en


# ---------------------------------------------------------------------------------------------- enumeration


async def test_following_needs_the_phone_digits_and_wrong_ones_lock_the_code(
    cap: DossierCapability, ctx: Context, emu: PortalEmulator
) -> None:
    (card,) = await ask(cap, ctx, SUPPLEMENT)
    assert not any(d.startswith("ds_follow|") for d in button_data(card))
    # A [Follow] press made up for a looked-up code asks for the digits instead of following.
    (reply,) = await press(cap, ctx, callbacks.encode("ds_follow", SUPPLEMENT))
    assert reply.text == said(ctx.content, "verify_ask", code=SUPPLEMENT)
    assert await follow_rows(ctx) == []
    (reply,) = await type_text(cap, ctx, "12345")
    assert reply.text == said(ctx.content, "verify_format")
    wrong = "0000" if DIGITS[SUPPLEMENT] != "0000" else "1111"
    (reply,) = await type_text(cap, ctx, wrong)
    assert reply.text == said(ctx.content, "verify_wrong", left=2)
    (reply,) = await type_text(cap, ctx, wrong)
    assert reply.text == said(ctx.content, "verify_wrong", left=1)
    (reply,) = await type_text(cap, ctx, wrong)
    assert reply.text == said(ctx.content, "verify_locked", code=SUPPLEMENT, minutes=30)
    assert emu.verifications == {"failed": 3}
    assert not await cap.wants_text(ctx)
    # Locked: even the right digits are not sent to the portal until the lock ends.
    (reply,) = await press(cap, ctx, callbacks.encode("ds_verify", SUPPLEMENT))
    assert reply.text == said(ctx.content, "verify_locked", code=SUPPLEMENT, minutes=30)
    assert emu.verifications == {"failed": 3}
    (card,) = await ask(cap, ctx, SUPPLEMENT)
    assert "Giấy tờ chứng minh" not in card.text  # the public view only
    ctx.now = NOW + dt.timedelta(minutes=31)
    card = await verified(cap, ctx, SUPPLEMENT)
    assert "• Giấy tờ chứng minh chỗ ở hợp pháp (hợp đồng thuê nhà)" in card.text
    assert f"ds_follow|{SUPPLEMENT}" in button_data(card)
    (reply,) = await press(cap, ctx, callbacks.encode("ds_follow", SUPPLEMENT))
    assert reply.text == said(ctx.content, "followed", code=SUPPLEMENT)
    (row,) = await follow_rows(ctx)
    assert row.access_key == emu.dossier_key(SUPPLEMENT)
    # Nothing of the digits is kept: not in the lookup row, not in the prompt.
    (lookup,) = (await ctx.session.scalars(select(DossierLookup))).all()
    assert DIGITS[SUPPLEMENT] not in repr(vars(lookup)) and SUPPLEMENT not in lookup.code_hash


async def test_sequential_codes_stop_at_the_quota_and_the_portal_sees_no_more(
    ctx: Context, emu: PortalEmulator
) -> None:
    cap = DossierCapability(lookups_per_hour=10, budget=roomy())
    replies = [(await ask(cap, ctx, f"000.00.12.H22-240101-{n:04d}"))[0] for n in range(1, 16)]
    assert emu.count("dossiers") == 10
    assert [r.text for r in replies[10:]] == [said(ctx.content, "quota", limit=10)] * 5
    # Codes already looked up stay free; the quota counts new codes only, and by the hour.
    (again,) = await ask(cap, ctx, PROCESSING)
    assert said(ctx.content, "card_title", code=PROCESSING) in again.text
    assert emu.count("dossiers") == 11
    hashes = (await ctx.session.scalars(select(DossierLookup.code_hash))).all()
    assert len(hashes) == 10 and not any("H22" in h for h in hashes)  # stored as keyed hashes, not codes
    ctx.now = NOW + dt.timedelta(minutes=61)
    (later,) = await ask(cap, ctx, "000.00.12.H22-240101-0015")
    assert later.text == said(ctx.content, "not_found", code="000.00.12.H22-240101-0015")


async def test_a_burst_from_many_citizens_is_held_at_the_budget_and_the_breaker_stays_closed(
    ctx: Context, emu: PortalEmulator, portal: PortalClient
) -> None:
    cap = DossierCapability(budget=LookupBudget(1.0, 5, clock=lambda: 0.0))  # a burst within one instant
    # The portal copes with 5 requests, then is overwhelmed: every request beyond them gets 503.
    emu.slow(0.0, count=5)
    emu.fail(503)
    replies: list[Reply] = []
    for n in range(40):
        citizen = User(id=1000 + n, chat_id=1000 + n, lang="vi")
        ctx.session.add(citizen)
        replies.extend(await ask(cap, dataclasses.replace(ctx, user=citizen), PROCESSING))
    cards = [r for r in replies if said(ctx.content, "card_title", code=PROCESSING) in r.text]
    assert len(cards) == 5
    assert [r.text for r in replies if r not in cards] == [said(ctx.content, "busy")] * 35
    assert emu.count("dossiers") == 5  # the rest of the burst never reached the portal
    assert portal.breaker.state is State.CLOSED  # so everyone else's lookups and the poller carry on


async def test_a_forged_pick_for_a_code_never_reached_shows_nothing(
    cap: DossierCapability, ctx: Context, emu: PortalEmulator
) -> None:
    (reply,) = await press(cap, ctx, callbacks.encode("ds_pick", PROCESSING))
    assert reply.text == said(ctx.content, "bad_button")
    (reply,) = await press(cap, ctx, callbacks.encode("ds_verify", PROCESSING))
    assert reply.text == said(ctx.content, "bad_button")
    (reply,) = await press(cap, ctx, callbacks.encode("ds_follow", PROCESSING))
    assert reply.text == said(ctx.content, "bad_button")
    assert emu.count("dossiers") == 0
    # Once the citizen looked it up themselves, the button works (the public view).
    await ask(cap, ctx, PROCESSING)
    (reply,) = await press(cap, ctx, callbacks.encode("ds_pick", PROCESSING))
    assert said(ctx.content, "card_title", code=PROCESSING) in reply.text
    with pytest.raises(callbacks.BadCallback):  # payloads stay validated before any capability sees them
        callbacks.decode("ds_pick|000.00.12.H22-240101-0003|<script>")
    (reply,) = await cap.on_callback(Incoming(USER_ID, USER_ID, "vi", callback=("ds_pick", ("not-a-code",))), ctx)
    assert reply.text == said(ctx.content, "bad_button")


async def test_the_channel_prefetch_gates_and_counts_before_the_transaction(
    tmp_path: Any, content: Content, emu: PortalEmulator, portal: PortalClient
) -> None:
    """The bot looks dossiers up before an update's transaction opens (`prefetch`): the same quota, reach and
    second-factor rules hold there, and the handler then answers from what was fetched without asking again."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/prefetch.db")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as s, s.begin():
        s.add(User(id=USER_ID, chat_id=USER_ID, lang="vi"))
    cap = DossierCapability(lookups_per_hour=3, budget=roomy(), sessions=sessions, hash_secret="k" * 32)
    services = Services(portal=portal)

    async def update(text: str | None = None, data: str | None = None) -> list[Reply]:
        callback = callbacks.decode(data) if data else None
        fetched = await cap.prefetch(text, callback, None, services, user_id=USER_ID)
        async with sessions() as session, session.begin():
            user = await session.get(User, USER_ID)
            assert user is not None
            now = dt.datetime.now(dt.UTC)
            ctx = Context(content, Settings.model_construct(), session, user, now, services, fetched)
            inc = Incoming(USER_ID, USER_ID, "vi", text=text, callback=callback, nlu=Understanding("check_status", 0.9))
            if callback is not None:
                return await cap.on_callback(inc, ctx)
            if await cap.wants_text(ctx):
                return await cap.on_text(inc, ctx)
            return await cap.on_intent(inc, ctx)

    replies = [(await update(f"000.00.12.H22-240101-{n:04d}"))[0] for n in range(1, 6)]
    assert emu.count("dossiers") == 3
    assert [r.text for r in replies[3:]] == [said(content, "quota", limit=3)] * 2
    assert said(content, "card_title", code=PROCESSING) in replies[2].text
    (forged,) = await update(data=callbacks.encode("ds_pick", SUPPLEMENT))
    assert forged.text == said(content, "bad_button") and emu.count("dossiers") == 3
    (question,) = await update(data=callbacks.encode("ds_verify", PROCESSING))
    assert question.text == said(content, "verify_ask", code=PROCESSING)
    (card,) = await update(DIGITS[PROCESSING])
    assert "N*** V** A" in card.text and f"ds_follow|{PROCESSING}" in button_data(card)
    assert emu.count("dossiers") == 4 and emu.verifications == {"ok": 1}  # asked once, before the transaction
    (followed,) = await update(data=callbacks.encode("ds_follow", PROCESSING))
    assert followed.text == said(content, "followed", code=PROCESSING)
    assert emu.count("dossiers") == 5  # the full view read once with the dossier key
    await engine.dispose()


def test_the_lookup_budget_is_a_token_bucket() -> None:
    clock = [0.0]
    budget = LookupBudget(2.0, 3, clock=lambda: clock[0])
    assert [budget.take() for _ in range(4)] == [True, True, True, False]  # the burst, then nothing
    clock[0] = 0.5  # one token back at 2 per second
    assert [budget.take(), budget.take()] == [True, False]
    clock[0] = 100.0  # idle for long: never more than the burst
    assert sum(budget.take() for _ in range(10)) == 3
    with pytest.raises(ValueError):
        LookupBudget(0.0, 1)


async def test_looked_up_codes_are_forgotten_a_day_after_their_last_use(cap: DossierCapability, ctx: Context) -> None:
    await ask(cap, ctx, PROCESSING)
    await ask(cap, ctx, RECEIVED)
    ctx.now = NOW + dt.timedelta(hours=20)
    await ask(cap, ctx, RECEIVED)  # used again: kept longer
    await ctx.session.flush()
    await purge_lookups(ctx.session, NOW + dt.timedelta(hours=25))
    ctx.now = NOW + dt.timedelta(hours=25)
    assert await ctx.session.scalar(select(func.count()).select_from(DossierLookup)) == 1
    (reply,) = await press(cap, ctx, callbacks.encode("ds_pick", PROCESSING))
    assert reply.text == said(ctx.content, "bad_button")  # no longer a code this citizen reached


# ---------------------------------------------------------------------------------------------- portal errors counted

# 18:00 UTC is 01:00 the next day in Vietnam: errors are counted under the local day
LATE = dt.datetime(2026, 3, 1, 18, 0, tzinfo=dt.UTC)
LOCAL_DAY = dt.date(2026, 3, 2)


@contextlib.asynccontextmanager
async def on_database(db_url: str, content: Content, portal: PortalClient) -> AsyncIterator[Context]:
    """A citizen's context on a fresh database of the kind `db_url` names (SQLite file or PostgreSQL)."""
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            user = User(id=USER_ID, chat_id=USER_ID, lang="vi")
            session.add(user)
            await session.flush()
            yield Context(content, Settings.model_construct(), session, user, LATE, Services(portal=portal))
    finally:
        await engine.dispose()


def portal_client(emu: PortalEmulator, breaker: CircuitBreaker | None = None, **options: Any) -> PortalClient:
    base = options.pop("base_url", emu.base_url)
    token_url = f"{base}/oauth/token" if base != emu.base_url else emu.token_url
    secret = options.pop("client_secret", "change-me")
    breaker = breaker or CircuitBreaker(failure_threshold=10, reset_timeout_s=60)
    return PortalClient(
        base, token_url, "citizen-assistant", secret, max_attempts=2, backoff_base_s=0.01, breaker=breaker, **options
    )


async def error_counts(ctx: Context) -> dict[tuple[dt.date, str], int]:
    rows = await ctx.session.execute(select(PortalErrorCount.day, PortalErrorCount.kind, PortalErrorCount.errors))
    return {(day, kind): n for day, kind, n in rows.all()}


Fault = Callable[[PortalEmulator], object]


@pytest.mark.parametrize(
    ("kind", "reply_key", "fault", "options"),
    [
        pytest.param("server_error", "portal_down", lambda emu: emu.fail(503), {}, id="5xx"),
        pytest.param("rate_limited", "portal_down", lambda emu: emu.rate_limit(0, count=None), {}, id="429"),
        pytest.param(
            "timeout", "portal_down", lambda emu: emu.slow(2.0), {"read_timeout": 0.2, "deadline_s": 1.0}, id="timeout"
        ),
        pytest.param("connection", "portal_down", lambda emu: None, {"base_url": "http://127.0.0.1:9"}, id="refused"),
        pytest.param("bad_response", "portal_error", lambda emu: emu.malformed(), {}, id="truncated-body"),
        pytest.param("bad_response", "portal_error", lambda emu: emu.malformed(variant="schema"), {}, id="schema"),
        pytest.param("auth", "portal_error", lambda emu: None, {"client_secret": "wrong"}, id="credentials-refused"),
        pytest.param("auth", "portal_error", lambda emu: emu.fail(401), {}, id="fresh-token-rejected"),
    ],
)
async def test_portal_errors_are_counted_by_kind_and_local_day(
    db_url: str,
    content: Content,
    emu: PortalEmulator,
    kind: str,
    reply_key: str,
    fault: Fault,
    options: dict[str, Any],
) -> None:
    """Each failure the emulator can be made to give lands under its kind, once per lookup (not per attempt: the
    client tries twice), on the local day; the citizen gets the usual answer."""
    fault(emu)
    portal = portal_client(emu, **options)
    try:
        async with on_database(db_url, content, portal) as ctx:
            cap = DossierCapability(budget=roomy())
            for code in (PROCESSING, RECEIVED):
                (reply,) = await ask(cap, ctx, code)
                assert reply.text == said(content, reply_key)
            assert await error_counts(ctx) == {(LOCAL_DAY, kind): 2}
    finally:
        await portal.aclose()


async def test_an_open_breaker_is_counted_and_the_portal_s_answers_are_not(
    db_url: str, content: Content, emu: PortalEmulator
) -> None:
    clock = [0.0]
    portal = portal_client(emu, CircuitBreaker(failure_threshold=2, reset_timeout_s=60, clock=lambda: clock[0]))
    try:
        async with on_database(db_url, content, portal) as ctx:
            cap = DossierCapability(budget=roomy())
            emu.fail(503, count=2)  # both attempts of the first lookup fail: the breaker opens
            await ask(cap, ctx, PROCESSING)
            calls = emu.count("dossiers")
            (reply,) = await ask(cap, ctx, RECEIVED)
            assert reply.text == said(content, "portal_down") and emu.count("dossiers") == calls  # not asked
            clock[0] = 61.0  # the cool-down is over: the next lookup is the probe
            unknown = "000.00.12.H22-240101-9999"
            (reply,) = await ask(cap, ctx, unknown)
            assert reply.text == said(content, "not_found", code=unknown)
            await ask(cap, ctx, SUPPLEMENT)
            await press(cap, ctx, callbacks.encode("ds_verify", SUPPLEMENT))
            (reply,) = await type_text(cap, ctx, "0000" if DIGITS[SUPPLEMENT] != "0000" else "1111")
            assert reply.text == said(content, "verify_wrong", left=2)
            assert await error_counts(ctx) == {(LOCAL_DAY, "server_error"): 1, (LOCAL_DAY, "circuit_open"): 1}
    finally:
        await portal.aclose()
