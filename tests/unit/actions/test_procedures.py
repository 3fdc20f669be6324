"""The fee answer quotes the amounts in force on the day the citizen asks, in Vietnamese and English."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

import store.models_guides  # noqa: F401  (registers the tables on Base.metadata)
from actions.base import Context
from actions.procedures import ProceduresCapability
from core.settings import Settings
from kernel.content import DEFAULT_DIR, Content
from kernel.types import Entity, Incoming, Understanding
from store.models import User

USER = 4242
# Files the procedures answer reads; loaded from a scratch copy so other areas' work in progress can't break these.
FILES = ("procedures.yml", "common.yml", "handover.yml")


def _vn(day: dt.date, hour: int) -> dt.datetime:
    """`hour` o'clock on `day` in Vietnam (UTC+7), as the aware UTC time the bot's clock gives."""
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.timezone(dt.timedelta(hours=7))).astimezone(dt.UTC)


def _content(tmp_path: Path, edit: Any = None) -> Content:
    for name in FILES:
        data = yaml.safe_load((DEFAULT_DIR / name).read_text(encoding="utf-8"))
        if edit is not None and name == "procedures.yml":
            edit(data)
        (tmp_path / name).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return Content.load(tmp_path)


async def ask_fee(db: AsyncEngine, content: Content, pid: str, now: dt.datetime, lang: str = "vi") -> str:
    """What a citizen asking "<procedure> fee?" at `now` reads."""
    sessions = async_sessionmaker(db, expire_on_commit=False)
    async with sessions() as session:
        user = await session.get(User, USER)
        if user is None:
            user = User(id=USER, chat_id=USER, lang=lang)
            session.add(user)
            await session.flush()
        user.lang = lang
        ctx = Context(content, Settings(_env_file=None), session, user, now)  # type: ignore[call-arg]
        nlu = Understanding("procedure_info", 0.9, (Entity("procedure", pid), Entity("aspect", "fee")))
        [reply] = await ProceduresCapability(content).on_intent(Incoming(USER, USER, lang, text="…", nlu=nlu), ctx)
        await session.commit()
        return reply.text


async def test_expired_online_rate_is_quoted_until_its_last_day_only(db: AsyncEngine, tmp_path: Path) -> None:
    """The driving-licence online rate (115,000) ran to 31/12/2025: quoted that evening, gone the next morning."""
    content = _content(tmp_path)
    last_day = await ask_fee(db, content, "driving_licence", _vn(dt.date(2025, 12, 31), 23))
    assert "31/12/2025" in last_day
    assert "• Nộp trực tuyến: <b>115.000 đồng</b>" in last_day
    assert "• Nộp trực tiếp: <b>135.000 đồng</b>" in last_day
    # 00:30 on 1 January in Vietnam is still 31 December in UTC: the province's calendar decides.
    next_day = await ask_fee(db, content, "driving_licence", _vn(dt.date(2026, 1, 1), 0).replace(minute=30))
    assert "01/01/2026" in next_day
    assert "115.000" not in next_day
    assert "• Mỗi lần nộp: <b>135.000 đồng</b>" in next_day


@pytest.mark.parametrize(
    ("lang", "online_2025", "standard"),
    [
        ("vi", "• Mức thông thường, nộp trực tuyến: <b>170.000 đồng</b>", "Mức thông thường, mỗi lần nộp: <b>200.000"),
        ("en", "• Standard rate, applying online: <b>170,000 VND</b>", "Standard rate, per application: <b>200,000"),
    ],
)
async def test_criminal_record_online_rate_ends_with_2025(
    db: AsyncEngine, tmp_path: Path, lang: str, online_2025: str, standard: str
) -> None:
    """Circular 16/2025 charged 170,000 (80,000 reduced) online until 31/12/2025, then the full rate."""
    content = _content(tmp_path)
    before = await ask_fee(db, content, "criminal_record", _vn(dt.date(2025, 12, 31), 12), lang)
    after = await ask_fee(db, content, "criminal_record", _vn(dt.date(2026, 1, 1), 12), lang)
    assert online_2025 in before and ("80.000" in before or "80,000" in before)
    assert "170" not in after.split("\n\n")[1]  # the amounts block; the prose below still names the old rate
    assert standard in after
    assert ("kiểm tra ngày 05/12/2026" if lang == "vi" else "checked on 05/12/2026") in after


async def test_passport_fee_through_2026(db: AsyncEngine, tmp_path: Path) -> None:
    """90% online in early 2025 (Circular 63/2023), half for everyone from July 2025 to the end of 2026 (Circular
    64/2025), the full rate of Circular 25/2021 from 2027."""
    content = _content(tmp_path)
    june = await ask_fee(db, content, "passport", _vn(dt.date(2025, 6, 30), 12))
    assert "• Cấp mới, nộp trực tuyến: <b>180.000 đồng</b>" in june
    assert "• Cấp mới, nộp trực tiếp: <b>200.000 đồng</b>" in june
    december = await ask_fee(db, content, "passport", _vn(dt.date(2025, 12, 31), 12))
    assert "• Cấp mới, mỗi lần nộp: <b>100.000 đồng</b>" in december and "180.000" not in december
    assert "Mức thu theo Thông tư 64/2025/TT-BTC, Điều 1, kiểm tra ngày 05/12/2026." in december
    january = await ask_fee(db, content, "passport", _vn(dt.date(2027, 1, 1), 12))
    assert "• Cấp mới, mỗi lần nộp: <b>200.000 đồng</b>" in january and "100.000" not in january


async def test_unconfirmed_amounts_ask_to_check_and_carry_no_checked_date(db: AsyncEngine, tmp_path: Path) -> None:
    content = _content(tmp_path)
    text = await ask_fee(db, content, "passport", _vn(dt.date(2026, 12, 5), 9))
    assert "• Cấp mới, mỗi lần nộp: <b>100.000 đồng</b>" in text
    assert "• Cấp lại do hỏng hoặc mất, mỗi lần nộp: <b>200.000 đồng</b>" in text
    assert "180.000" not in text  # the 10% online reduction ended with 2025
    assert "kiểm tra trên Cổng dịch vụ công khi nộp" in text
    assert "Kiểm tra ngày" not in text and "kiểm tra ngày" not in text
    en = await ask_fee(db, content, "passport", _vn(dt.date(2026, 12, 5), 9), lang="en")
    assert "• New passport, per application: <b>100,000 VND</b>" in en
    assert "check on the portal when you apply" in en and "checked on" not in en.lower()


async def test_confirmed_amounts_show_the_day_they_were_checked(db: AsyncEngine, tmp_path: Path) -> None:
    content = _content(tmp_path)
    text = await ask_fee(db, content, "permanent_residence", _vn(dt.date(2026, 12, 5), 9))
    assert "• Nộp trực tuyến: <b>10.000 đồng</b>" in text and "• Nộp trực tiếp: <b>20.000 đồng</b>" in text
    assert "Mức thu theo Thông tư 75/2022/TT-BTC, Biểu mức thu, kiểm tra ngày 05/12/2026." in text
    assert "trẻ em (dưới 16 tuổi)" in text  # who is exempt is part of the answer


def _halved_until_end_of_2026(data: dict[str, Any]) -> None:
    """A reduction like those fee circulars set: half the online rate, ending on 31 December 2026."""
    data["fees"]["temporary_residence"] = [
        {"amount_vnd": 15000, "applies": "any", "source": "Thông tư A", "checked": dt.date(2026, 12, 5)},
        {"amount_vnd": 7000, "applies": "online", "until": dt.date(2026, 12, 31), "source": "Thông tư B"},
        {"amount_vnd": 14000, "applies": "online", "from": dt.date(2027, 1, 1), "source": "Thông tư A"},
    ]


@pytest.mark.parametrize(
    ("lang", "reduced", "full"),
    [
        ("vi", "• Nộp trực tuyến: <b>7.000 đồng</b>", "• Nộp trực tuyến: <b>14.000 đồng</b>"),
        ("en", "• Applying online: <b>7,000 VND</b>", "• Applying online: <b>14,000 VND</b>"),
    ],
)
async def test_a_reduction_stops_the_day_after_it_ends(
    db: AsyncEngine, tmp_path: Path, lang: str, reduced: str, full: str
) -> None:
    content = _content(tmp_path, _halved_until_end_of_2026)
    on_31_dec = await ask_fee(db, content, "temporary_residence", _vn(dt.date(2026, 12, 31), 20), lang)
    on_1_jan = await ask_fee(db, content, "temporary_residence", _vn(dt.date(2027, 1, 1), 8), lang)
    assert reduced in on_31_dec and full not in on_31_dec
    assert full in on_1_jan and reduced not in on_1_jan
    assert "Thông tư B" in on_31_dec and "Thông tư B" not in on_1_jan  # a rule's source goes with it


async def test_procedure_without_rules_keeps_its_prose(db: AsyncEngine, tmp_path: Path) -> None:
    content = _content(tmp_path)
    text = await ask_fee(db, content, "marriage_registration", _vn(dt.date(2026, 12, 5), 9))
    assert "miễn lệ phí" in text and "Lệ phí áp dụng vào ngày" not in text


async def test_id_card_fee_is_halved_until_the_end_of_2026(db: AsyncEngine, tmp_path: Path) -> None:
    """Circular 64/2025 halves the ID card fee from 1/7/2025 to 31/12/2026; Circular 73/2024 applies again in 2027."""
    content = _content(tmp_path)
    last_day = await ask_fee(db, content, "id_card", _vn(dt.date(2026, 12, 31), 20))
    assert "• Cấp đổi thẻ căn cước, mỗi lần nộp: <b>25.000 đồng</b>" in last_day
    assert "• Cấp lại thẻ căn cước (mất, hỏng), mỗi lần nộp: <b>35.000 đồng</b>" in last_day
    assert "Thông tư 64/2025/TT-BTC, Điều 1" in last_day and "kiểm tra trên Cổng dịch vụ công khi nộp" in last_day
    next_day = await ask_fee(db, content, "id_card", _vn(dt.date(2027, 1, 1), 8))
    amounts = next_day.split("\n\n")[1]
    assert "• Cấp đổi thẻ căn cước, mỗi lần nộp: <b>50.000 đồng</b>" in amounts and "25.000" not in amounts
    assert "• Cấp lại thẻ căn cước (mất, hỏng), mỗi lần nộp: <b>70.000 đồng</b>" in amounts
