"""The province's units (data/areas.yml): the file, finding a unit by part of its name, another province's file,
and the migration that carries subscriptions and broadcasts from the old districts and wards to the new units."""

import asyncio
import datetime as dt
from pathlib import Path

import pytest
import yaml
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from broadcast.audience import AREAS_FILE, Areas, AreasFileError, Audience, load_areas
from store.area_migration import MIGRATION_FILE, load_mapping
from store.db import alembic_config, make_engine, make_sessionmaker, unit_of_work
from store.models_news import Broadcast, Delivery, NewsArea, NewsSubscription

AREAS = load_areas()

# The ids data/areas.yml had before the reorganisation (districts, and the wards it listed), as subscriptions and
# broadcasts stored them: every one must have a home after the migration.
OLD_DISTRICTS = {"bac_ninh", "tu_son", "yen_phong", "que_vo", "thuan_thanh", "tien_du", "gia_binh", "luong_tai"}
OLD_WARDS = {
    "bac_ninh": "dai_phuc dap_cau hap_linh hoa_long khac_niem khuc_xuyen kim_chan kinh_bac nam_son phong_khe "
    "suoi_hoa thi_cau tien_an van_an van_duong ve_an vo_cuong vu_ninh ninh_xa",
    "tu_son": "chau_khe dinh_bang dong_ngan dong_ky dong_nguyen huong_mac phu_chan phu_khe tam_son tan_hong "
    "trang_ha tuong_giang",
    "yen_phong": "tt_cho dung_liet dong_phong dong_tho dong_tien hoa_tien long_chau tam_da tam_giang thuy_hoa "
    "trung_nghia van_mon yen_phu yen_trung",
}


def names(found: object) -> list[str]:
    return [u.vi for u in found.units]  # type: ignore[attr-defined]


# ---- the file ---------------------------------------------------------------------------------------------


def test_the_province_has_99_units_33_wards_and_66_communes() -> None:
    assert AREAS.province.vi == "Tỉnh Bắc Ninh"
    assert len(AREAS.units) == 99
    assert sum(u.type == "phuong" for u in AREAS.units) == 33
    assert sum(u.type == "xa" for u in AREAS.units) == 66
    assert all(u.vi.startswith("Phường " if u.type == "phuong" else "Xã ") for u in AREAS.units)
    assert len({u.code for u in AREAS.units}) == 99
    # Tuấn Đạo commune, the one unit the resolution left as it was
    tuan_dao = AREAS.unit("tuan_dao")
    assert tuan_dao is not None and tuan_dao.en == "Tuan Dao Commune"


def test_every_old_id_has_new_units_that_exist() -> None:
    mapping = load_mapping()
    assert set(mapping.districts) == OLD_DISTRICTS
    stored = {f"{d}/{w}" for d, wards in OLD_WARDS.items() for w in wards.split()}
    assert set(mapping.wards) == stored
    assert mapping.targets() <= {u.id for u in AREAS.units}
    # the old province's 8 districts became 41 units, each formed from exactly one of them
    by_district = [u for units in mapping.districts.values() for u in units]
    assert len(by_district) == len(set(by_district)) == 41
    # a ward's unit is one of its district's units
    for key, unit in mapping.wards.items():
        assert unit in mapping.districts[key.split("/")[0]], key


def test_old_ids_map_to_the_units_the_resolution_formed() -> None:
    mapping = load_mapping()
    assert mapping.new_areas("tu_son", "dong_nguyen") == ["dong_nguyen"]
    assert mapping.new_areas("tu_son", "dinh_bang") == ["tu_son"]
    assert mapping.new_areas("bac_ninh", "ninh_xa") == ["kinh_bac"]  # via Tiền Ninh Vệ (2024), not Thuận Thành's
    assert mapping.new_areas("tu_son", None) == ["dong_nguyen", "phu_khe", "tam_son", "tu_son"]
    assert mapping.new_areas(None, None) == []  # the whole province stays the whole province
    assert mapping.new_areas("tu_son", "nowhere") == ["dong_nguyen", "phu_khe", "tam_son", "tu_son"]
    assert mapping.new_areas("atlantis", None) == []


# ---- finding a unit by part of its name -------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["tu son", "Từ Sơn", "tuson", "TU SON", "phường từ sơn", "p. Tu Son", " từ  sơn "])
def test_a_name_is_found_with_or_without_diacritics_spaces_or_type(typed: str) -> None:
    assert names(AREAS.search(typed)) == ["Phường Từ Sơn"]


def test_diacritics_typed_pick_the_unit_they_spell() -> None:
    assert names(AREAS.search("Phượng Sơn")) == ["Phường Phượng Sơn"]  # "phượng" is a name, not "phường"
    assert names(AREAS.search("Tân Sơn")) == ["Xã Tân Sơn"]
    found = AREAS.search("phuong son")  # without marks it may be either: Phượng Sơn first, then every "… Sơn"
    assert names(found)[0] == "Phường Phượng Sơn" and found.total > 1


def test_a_short_part_finds_at_most_eight_best_first_and_counts_the_rest() -> None:
    found = AREAS.search("son", limit=8)
    assert len(found.units) == 8 and found.total == 13
    assert names(found)[:2] == ["Xã Sơn Động", "Xã Sơn Hải"]  # names that begin with it come first
    assert "Phường Từ Sơn" in names(found)


def test_nothing_or_too_little_typed_finds_nothing() -> None:
    assert AREAS.search("zzz").total == 0
    assert AREAS.search("x").total == 0  # one letter would match half the province
    assert AREAS.search("?!").total == 0


def test_labels_name_units_in_each_language() -> None:
    assert AREAS.label([], "vi") == "Tỉnh Bắc Ninh"
    assert AREAS.label(["tu_son", "kinh_bac"], "vi") == "Phường Kinh Bắc, Phường Từ Sơn"
    assert AREAS.label(["tu_son"], "en") == "Tu Son Ward"


# ---- another province's file --------------------------------------------------------------------------------


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "areas.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def other_province() -> dict[str, object]:
    return {
        "province": {"id": "ha_tinh", "vi": "Tỉnh Hà Tĩnh", "en": "Hà Tĩnh province"},
        "source": "Nghị quyết số 1665/NQ-UBTVQH15 ngày 16/6/2025",
        "checked": dt.date(2026, 12, 5),
        "units": [
            {"id": "thanh_sen", "type": "phuong", "vi": "Phường Thành Sen", "en": "Thanh Sen Ward"},
            {"id": "thach_ha", "type": "xa", "vi": "Xã Thạch Hà", "en": "Thach Ha Commune"},
        ],
    }


def test_another_province_drops_in_its_own_file(tmp_path: Path) -> None:
    areas = load_areas(write(tmp_path, other_province()))
    assert isinstance(areas, Areas)
    assert names(areas.search("thanh sen")) == ["Phường Thành Sen"]
    assert areas.label([], "en") == "Hà Tĩnh province"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda d: d["units"].append(d["units"][0]), "unit id 'thanh_sen' appears twice"),
        (lambda d: d["units"][0].update(type="huyen"), "units.0.type"),
        (lambda d: d["units"][1].update(en="Thạch Hà"), "units.1.en"),
        (lambda d: d["units"][0].update(id="Thanh Sen"), "units.0.id"),
        (lambda d: d.pop("province"), "province: Field required"),
        (lambda d: d.update(units=[]), "units"),
    ],
)
def test_a_wrong_file_is_refused_at_start_saying_where(tmp_path: Path, change: object, said: str) -> None:
    data = other_province()
    change(data)  # type: ignore[operator]
    path = write(tmp_path, data)
    with pytest.raises(AreasFileError) as err:
        load_areas(path)
    assert str(path) in str(err.value) and said in str(err.value)


def test_a_missing_or_broken_file_is_refused_saying_why(tmp_path: Path) -> None:
    with pytest.raises(AreasFileError, match="cannot be read"):
        load_areas(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("units: [\n", encoding="utf-8")
    with pytest.raises(AreasFileError, match="not valid YAML"):
        load_areas(bad)


def test_the_shipped_files_are_the_ones_read() -> None:
    assert AREAS_FILE.name == "areas.yml" and MIGRATION_FILE.name == "areas_migration.yml"


# ---- the migration: old ids in a database become the new units ---------------------------------------------

REVISION = "5e0a7c1d2b84"
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)

# (user id, district, ward) as subscribers stored them before the reorganisation
OLD_SUBSCRIPTIONS = [
    (1, None, None),  # the whole province
    (2, "tu_son", None),  # a whole district
    (3, "tu_son", "dong_nguyen"),
    (4, "bac_ninh", "ninh_xa"),  # Bắc Ninh city's Ninh Xá, not the new Ninh Xá ward of Thuận Thành
    (5, "que_vo", None),
    (6, "yen_phong", "tt_cho"),
    (7, "bac_ninh", "tien_an"),
    (8, "tu_son", "not_a_ward"),  # unknown: widened to its district, never dropped
    (9, "atlantis", None),  # unknown district: widened to the whole province
]
EXPECTED = {
    1: set(),
    2: {"tu_son", "tam_son", "dong_nguyen", "phu_khe"},
    3: {"dong_nguyen"},
    4: {"kinh_bac"},
    5: {"que_vo", "phuong_lieu", "nhan_hoa", "dao_vien", "bong_lai", "chi_lang", "phu_lang"},
    6: {"yen_phong"},
    7: {"kinh_bac"},
    8: {"tu_son", "tam_son", "dong_nguyen", "phu_khe"},
    9: set(),
}
# (broadcast id, status, district, ward)
OLD_BROADCASTS = [
    (1, "scheduled", "tu_son", "dong_nguyen"),
    (2, "scheduled", "thuan_thanh", None),
    (3, "scheduled", None, None),
    (4, "done", "bac_ninh", "suoi_hoa"),
]


def _upgrade(url: str, to: str) -> None:
    command.upgrade(alembic_config(url), to)


async def test_migration_keeps_every_subscriber_and_retargets_scheduled_broadcasts(db_url: str) -> None:
    before = ScriptDirectory.from_config(alembic_config(db_url)).get_revision(REVISION).down_revision
    assert isinstance(before, str)
    await asyncio.to_thread(_upgrade, db_url, before)
    engine = make_engine(db_url)
    async with engine.begin() as conn:
        for uid, district, ward in OLD_SUBSCRIPTIONS:
            await conn.execute(
                text(
                    "INSERT INTO users (id, chat_id, lang, active, fallbacks_in_row, created_at, last_seen_at) "
                    "VALUES (:id, :id, 'vi', :yes, 0, :now, :now)"
                ),
                {"id": uid, "yes": True, "now": NOW},
            )
            await conn.execute(
                text(
                    "INSERT INTO news_subscriptions (user_id, district, ward, created_at, updated_at) "
                    "VALUES (:id, :d, :w, :now, :now)"
                ),
                {"id": uid, "d": district, "w": ward, "now": NOW},
            )
        for bid, status, district, ward in OLD_BROADCASTS:
            await conn.execute(
                text(
                    "INSERT INTO broadcasts (id, created_by, status, step, text, district, ward, topics, paid, "
                    "send_at, created_at, total) VALUES (:id, 10, :st, 'done', 'Thông báo', :d, :w, '', :no, "
                    ":at, :now, 0)"
                ),
                {"id": bid, "st": status, "d": district, "w": ward, "no": False, "at": NOW, "now": NOW},
            )
        # a delivery record of the sent one: rebuilding the broadcasts table would cascade-delete it on SQLite
        await conn.execute(
            text(
                "INSERT INTO broadcast_deliveries (id, broadcast_id, user_id, chat_id, lang, state, attempts) "
                "VALUES (1, 4, 3, 3, 'vi', 'sent', 1)"
            )
        )
    await engine.dispose()

    await asyncio.to_thread(_upgrade, db_url, "head")

    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        async with unit_of_work(sessions) as s:
            subscribed = set((await s.scalars(select(NewsSubscription.user_id))).all())
            assert subscribed == {uid for uid, _, _ in OLD_SUBSCRIPTIONS}  # nobody lost
            units: dict[int, set[str]] = {uid: set() for uid in subscribed}
            for row in (await s.scalars(select(NewsArea))).all():
                units[row.user_id].add(row.area)
            assert units == EXPECTED
            assert all(area in {u.id for u in AREAS.units} for areas in units.values() for area in areas)

            broadcasts = {b.id: b for b in (await s.scalars(select(Broadcast))).all()}
            assert broadcasts[1].area_list() == ["dong_nguyen"]
            assert broadcasts[2].area_list() == [
                "mao_dien",
                "ninh_xa",
                "song_lieu",
                "thuan_thanh",
                "tram_lo",
                "tri_qua",
            ]
            assert broadcasts[3].area_list() == []
            assert broadcasts[4].area_list() == ["kinh_bac"]
            assert (await s.scalars(select(Delivery.state).where(Delivery.broadcast_id == 4))).all() == ["sent"]

            # who the scheduled broadcasts now reach: the unit's subscribers, its old district's, the province's
            reach = await s.execute(Audience.of(broadcasts[1].area_list(), []).recipients())
            assert {r[0] for r in reach} == {1, 2, 3, 8, 9}
            assert await Audience.of(broadcasts[3].area_list(), []).count(s) == len(OLD_SUBSCRIPTIONS)
    finally:
        await engine.dispose()
