"""The procedure picker on a phone: groups first, a few procedures per group, and answers for the newer procedures."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import store.models_guides  # noqa: F401  (registers the tables on Base.metadata)
from kernel import callbacks
from kernel.content import Content
from kernel.content_schema import MAX_GROUP, procedures_section
from kernel.types import Reply
from tests.unit.actions.test_guides import Harness, button, labels

GROUP_LABELS = {
    "vi": ["Hộ tịch", "Cư trú", "Căn cước", "Giao thông", "Bảo hiểm"],
    "en": ["Civil status", "Residence", "ID card", "Driving licence", "Insurance"],
}


def payloads(reply: Reply) -> list[str]:
    return [b.data for row in reply.buttons for b in row]


@pytest.mark.parametrize("lang", ["vi", "en"])
async def test_a_bare_question_shows_a_few_groups_not_every_procedure(
    db: AsyncEngine, content: Content, lang: str
) -> None:
    bot = Harness(db, content, lang=lang)
    [reply] = await bot.intent("procedure_info")
    shown = labels(reply)
    assert len(shown) == len(GROUP_LABELS[lang]) <= MAX_GROUP
    for expected, label in zip(GROUP_LABELS[lang], shown, strict=True):
        assert expected in label
    assert ("Chọn một nhóm" if lang == "vi" else "Pick a group") in reply.text


async def test_every_procedure_sits_in_a_short_group_with_a_way_back(db: AsyncEngine, content: Content) -> None:
    bot = Harness(db, content)
    [groups] = await bot.intent("procedure_info")
    section = procedures_section(content)
    reached: list[str] = []
    for data in payloads(groups):
        [page] = await bot.press(data)
        procedures = [d for d in payloads(page) if d.startswith("p_show|")]
        assert 1 <= len(procedures) <= MAX_GROUP
        assert labels(page)[-1] == "◀️ Các nhóm thủ tục"  # back to the groups, last
        reached += [d.split("|")[1] for d in procedures]
        assert all(len(d.encode()) <= callbacks.MAX_BYTES for d in payloads(page))
    assert sorted(reached) == sorted(section.order)  # each procedure once, none lost
    [residence] = await bot.press("p_list|residence")
    assert "<b>🏠 Cư trú" in residence.text
    for name in ("Khai báo tạm vắng", "Thông báo lưu trú", "Tách hộ", "Xác nhận thông tin về cư trú"):
        assert name in labels(residence)
    [back] = await bot.press(button(residence, "Các nhóm thủ tục"))
    assert labels(back) == labels(groups)


async def test_other_procedures_returns_to_the_group_of_the_answer(db: AsyncEngine, content: Content) -> None:
    bot = Harness(db, content)
    [answer] = await bot.intent("procedure_info", procedure="vehicle_registration", aspect="where")
    assert "Đăng ký xe, cấp biển số" in answer.text
    assert button(answer, "Thủ tục khác").data == "p_list|transport"
    [page] = await bot.press(button(answer, "Thủ tục khác"))
    assert labels(page)[:2] == ["Đổi, cấp lại giấy phép lái xe", "Đăng ký xe, cấp biển số (xe máy, ô tô)"]


async def test_an_unknown_group_in_a_payload_falls_back_to_the_groups(db: AsyncEngine, content: Content) -> None:
    bot = Harness(db, content)
    [reply] = await bot.press("p_list|nosuch")
    assert "Hộ tịch" in labels(reply)[0]


@pytest.mark.parametrize(
    ("pid", "aspect", "expected"),
    [
        ("temporary_absence", "duration", "không quá <b>2 ngày làm việc</b>"),
        ("household_split", "fee", "• Nộp trực tuyến: <b>5.000 đồng</b>"),
        ("household_split", "fee", "• Nộp trực tiếp: <b>10.000 đồng</b>"),
        ("stay_notice", "fee", "• Mỗi lần nộp: <b>miễn phí</b>"),
        ("residence_confirm", "where", "không phụ thuộc nơi bạn cư trú"),
    ],
)
async def test_new_procedures_answer_with_their_checked_facts(
    db: AsyncEngine, content: Content, pid: str, aspect: str, expected: str
) -> None:
    bot = Harness(db, content)
    [reply] = await bot.intent("procedure_info", procedure=pid, aspect=aspect)
    assert expected in reply.text
    assert "Kiểm tra ngày 06/12/2026" in reply.text or "kiểm tra ngày 06/12/2026" in reply.text


async def test_a_fact_read_only_in_secondary_sources_asks_to_check_and_carries_no_date(
    db: AsyncEngine, content: Content
) -> None:
    bot = Harness(db, content)
    [reply] = await bot.intent("procedure_info", procedure="id_card", aspect="where")
    assert "Công an cấp xã" in reply.text and "kiểm tra trên Cổng dịch vụ công khi nộp" in reply.text
    assert "Kiểm tra ngày" not in reply.text and "Quyết định 5710/QĐ-BCA-C06" in reply.text


async def test_id_card_fee_quotes_the_full_rate_after_the_2026_reduction(content: Content) -> None:
    section = procedures_section(content)
    december = {(r.for_, r.amount_vnd) for r in section.rules_on("id_card", dt.date(2026, 12, 31))}
    january = {(r.for_, r.amount_vnd) for r in section.rules_on("id_card", dt.date(2027, 1, 1))}
    assert december == {("id_exchange", 25000), ("id_reissue", 35000), ("id_from_cccd", 15000)}
    assert january == {("id_exchange", 50000), ("id_reissue", 70000), ("id_from_cccd", 30000)}
    # The amounts were not read in the circulars themselves: no checked date, the answer asks to check.
    assert all(r.checked is None for r in section.rules_on("id_card", dt.date(2026, 12, 6)))
