"""The guides, procedures and renewal content validates against its schema, and the schema catches mistakes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from kernel.content import DEFAULT_DIR, Content
from kernel.content_schema import (
    ASPECTS,
    CHECK_ON_PORTAL,
    FACT_ASPECTS,
    SectionError,
    guides_section,
    procedures_section,
    validate_all,
)

OWN_FILES = ("guides.yml", "eid.yml", "troubleshoot.yml", "procedures.yml", "renewal.yml")
NLU_PROCEDURES = {
    "birth_registration",
    "death_registration",
    "permanent_residence",
    "temporary_residence",
    "criminal_record",
    "driving_licence",
    "marriage_registration",
    "passport",
    "birth_group",
    "death_group",
    "id_card",
    "temporary_absence",
    "stay_notice",
    "household_split",
    "residence_update",
    "residence_confirm",
    "marital_status",
    "civil_extract",
    "certified_copy",
    "vehicle_registration",
    "health_insurance",
    "unemployment_benefit",
    "household_business",
}


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


def _copy_own(tmp_path: Path, edit: dict[str, Any] | None = None) -> Content:
    """Load this area's files from a scratch copy, after `edit[file](data)` changed one of them."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in OWN_FILES:
        data = yaml.safe_load((DEFAULT_DIR / name).read_text(encoding="utf-8"))
        if edit and name in edit:
            edit[name](data)
        (tmp_path / name).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return Content.load(tmp_path)


def test_all_content_is_valid(content: Content) -> None:
    assert validate_all(content) == []


def test_every_nlu_procedure_has_every_aspect(content: Content) -> None:
    section = procedures_section(content)
    assert set(section.order) >= NLU_PROCEDURES
    for pid in section.order:
        for aspect in ASPECTS:
            entry = content.entry(f"procedures.{pid}.{aspect}")
            assert entry.vi.strip() and entry.en.strip()
        for aspect in FACT_ASPECTS:
            entry = content.entry(f"procedures.{pid}.{aspect}")
            assert entry.source, f"{pid}.{aspect} needs a source"
            if entry.checked is None:  # unconfirmed: the citizen is told to check where they apply
                assert CHECK_ON_PORTAL[0] in entry.vi.lower() and CHECK_ON_PORTAL[1] in entry.en.lower(), pid


def test_no_internal_marker_reaches_a_citizen(content: Content) -> None:
    """Working notes (GUESS, "chưa đối chiếu"…) once showed in source lines; none is left in any text."""
    words = ("guess", "todo", "fixme", "xxx", "chưa đối chiếu", "unverified")
    for key in content.keys():  # noqa: SIM118
        entry = content.entry(key)
        shown = f"{entry.vi} {entry.en} {entry.source or ''}".lower()
        assert not any(w in shown for w in words), key


def test_hotline_and_facts_match_the_research(content: Content) -> None:
    assert "1900 0368" in content.text("troubleshoot.hotline.s1_call", "vi")
    assert "8–20" in content.text("eid.activate.s4_password", "vi")
    assert "6 chữ số" in content.text("eid.activate.s5_passcode", "vi")
    procs = procedures_section(content)
    day = dt.date(2026, 12, 5)
    residence = {(r.applies, r.amount_vnd) for r in procs.rules_on("permanent_residence", day)}
    assert residence == {("any", 20000), ("online", 10000)}
    assert all(r.checked == day and "75/2022" in r.source for r in procs.rules_on("permanent_residence", day))
    # Children are exempt from the residence fee (Circular 75/2022 Art. 4), so the birth group quotes no charge.
    assert "10.000" not in content.text("procedures.birth_group.fee", "vi")
    assert "miễn lệ phí" in content.text("procedures.birth_group.fee", "vi")
    # The 115,000 online driving-licence rate ended with 2025; the passport's 10% online reduction too, while its
    # half rate (Circular 64/2025) runs to the end of 2026.
    assert {r.amount_vnd for r in procs.rules_on("driving_licence", day)} == {135000}
    assert {r.amount_vnd for r in procs.rules_on("passport", day)} == {100000, 200000}
    assert {r.amount_vnd for r in procs.rules_on("passport", dt.date(2027, 1, 1))} == {200000, 400000}
    assert {r.amount_vnd for r in procs.rules_on("criminal_record", day)} == {200000, 100000}
    assert all("16/2025" in r.source for r in procs.rules_on("criminal_record", day))
    # Since 1 July 2026 the police issue criminal-record certificates, and no one may ask for form no. 2.
    assert "phiếu do cơ quan công an cấp" in content.text("procedures.criminal_record.where", "vi")
    assert "số 1 hay số 2" not in content.text("procedures.criminal_record.mistakes", "vi")
    assert "thương binh" not in content.text("procedures.death_group.where", "vi")
    assert "59/2022" not in (content.entry("troubleshoot.locked.s1_why").source or "")


def test_vietnamese_addresses_the_citizen_as_ban(content: Content) -> None:
    """One polite form of address throughout; no "anh/chị", "quý khách", "em"."""
    own = ("guides.", "eid.", "troubleshoot.", "procedures.", "renewal.")
    for key in content.keys():  # noqa: SIM118
        if key.startswith(own):
            vi = content.text(key, "vi").lower()
            for other in ("anh/chị", "quý khách", "anh chị", "ông/bà"):
                assert other not in vi, f"{key} uses {other!r}"


def test_unknown_branch_is_rejected(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["guides"]["level1"]["steps"][0]["troubleshoot"] = "no_such_branch"

    with pytest.raises(SectionError, match="no_such_branch"):
        guides_section(_copy_own(tmp_path, {"guides.yml": edit}))


def test_troubleshooting_loop_is_rejected(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["guides"]["hotline"]["troubleshoot"] = "otp"  # otp -> hotline -> otp

    with pytest.raises(SectionError, match="loop"):
        guides_section(_copy_own(tmp_path, {"guides.yml": edit}))


def test_main_guide_cannot_be_a_branch_target(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["guides"]["otp"]["troubleshoot"] = "level2"

    with pytest.raises(SectionError, match="not a troubleshooting branch"):
        guides_section(_copy_own(tmp_path, {"guides.yml": edit}))


def test_missing_text_and_missing_fact_source_are_reported(tmp_path: Path) -> None:
    def drop_text(data: dict[str, Any]) -> None:
        del data["texts"]["otp.s2_phone"]

    def drop_source(data: dict[str, Any]) -> None:
        del data["texts"]["passport.fee"]["source"]

    problems = validate_all(_copy_own(tmp_path, {"troubleshoot.yml": drop_text, "procedures.yml": drop_source}))
    assert "missing text 'troubleshoot.otp.s2_phone'" in problems
    assert "fact 'procedures.passport.fee' lacks `source`" in problems


def test_placeholder_mismatch_and_unused_text_are_reported(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["texts"]["btn_return"]["en"] = "Back to step {number}"
        data["texts"]["forgotten"] = {"vi": "x", "en": "x"}

    problems = validate_all(_copy_own(tmp_path, {"guides.yml": edit}))
    assert any("guides.btn_return" in p and "placeholders differ" in p for p in problems)
    assert "text 'guides.forgotten' is never used" in problems


def test_procedure_ids_must_fit_callbacks(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["procedures"]["order"].append("Bad-Id")

    with pytest.raises(SectionError):
        procedures_section(_copy_own(tmp_path, {"procedures.yml": edit}))


def test_internal_markers_are_rejected(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["texts"]["passport.fee"]["source"] = "Thông tư 25/2021/TT-BTC (GUESS)"
        data["texts"]["passport.where"]["en"] = "The immigration office (TODO: confirm)"
        data["texts"]["passport.how"]["vi"] += " (chưa đối chiếu)"
        data["fees"]["passport"][0]["source"] = "Thông tư 25/2021/TT-BTC, unverified"

    problems = validate_all(_copy_own(tmp_path, {"procedures.yml": edit}))
    assert "text 'procedures.passport.fee': internal marker 'GUESS' in `source`" in problems
    assert "text 'procedures.passport.where': internal marker 'TODO' in `en`" in problems
    assert "text 'procedures.passport.how': internal marker 'chưa đối chiếu' in `vi`" in problems
    assert "fee rule fees.passport[0]: internal marker 'unverified' in `source`" in problems


def test_unchecked_fact_must_ask_to_check_on_the_portal(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        entry = data["texts"]["permanent_residence.fee"]
        del entry["checked"]
        entry["vi"], entry["en"] = "20.000 đồng.", "20,000 VND."

    problems = validate_all(_copy_own(tmp_path, {"procedures.yml": edit}))
    assert (
        "fact 'procedures.permanent_residence.fee' has no `checked` date and does not ask to check on the portal"
        in problems
    )


def test_fee_rules_are_validated(tmp_path: Path) -> None:
    def overlap(data: dict[str, Any]) -> None:
        data["fees"]["driving_licence"].append(
            {"amount_vnd": 100000, "applies": "online", "from": dt.date(2025, 6, 1), "source": "Thông tư X"}
        )

    with pytest.raises(SectionError, match="overlap"):
        procedures_section(_copy_own(tmp_path / "a", {"procedures.yml": overlap}))

    def backwards(data: dict[str, Any]) -> None:
        rule = data["fees"]["passport"][2]
        rule["from"], rule["until"] = dt.date(2026, 1, 1), dt.date(2025, 1, 1)

    with pytest.raises(SectionError, match="ends"):
        procedures_section(_copy_own(tmp_path / "b", {"procedures.yml": backwards}))

    def unknown(data: dict[str, Any]) -> None:
        data["fees"]["no_such_procedure"] = [{"amount_vnd": 1, "applies": "any", "source": "x"}]

    with pytest.raises(SectionError, match="no_such_procedure"):
        procedures_section(_copy_own(tmp_path / "c", {"procedures.yml": unknown}))

    def missing_label(data: dict[str, Any]) -> None:
        data["fees"]["passport"][0]["for"] = "urgent"

    problems = validate_all(_copy_own(tmp_path / "d", {"procedures.yml": missing_label}))
    assert "missing text 'procedures.fee_for.urgent'" in problems
