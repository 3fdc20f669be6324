"""The guides, procedures and renewal content validates against its schema, and the schema catches mistakes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from actions.content import DEFAULT_DIR, Content
from actions.content_schema import (
    ASPECTS,
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
}


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


def _copy_own(tmp_path: Path, edit: dict[str, Any] | None = None) -> Content:
    """Load this area's files from a scratch copy, after `edit[file](data)` changed one of them."""
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
            assert entry.source and entry.checked is not None, f"{pid}.{aspect} needs source and checked"


def test_guesses_are_worded_cautiously(content: Content) -> None:
    """Facts the research could not confirm (marked GUESS in their source) never read as certain."""
    guesses = [k for k in content.keys() if (content.entry(k).source or "").find("GUESS") >= 0]  # noqa: SIM118
    assert guesses, "the residence deadlines, for one, are unconfirmed"
    cautious_vi = ("tối đa", "khoảng", "chưa", "kiểm tra")
    cautious_en = ("up to", "about", "not ", "no official", "check")
    for key in guesses:
        entry = content.entry(key)
        assert any(w in entry.vi.lower() for w in cautious_vi), key
        assert any(w in entry.en.lower() for w in cautious_en), key


def test_hotline_and_facts_match_the_research(content: Content) -> None:
    assert "1900 0368" in content.text("troubleshoot.hotline.s1_call", "vi")
    assert "8–20" in content.text("eid.activate.s4_password", "vi")
    assert "6 chữ số" in content.text("eid.activate.s5_passcode", "vi")
    fee = content.entry("procedures.permanent_residence.fee")
    assert "10.000" in fee.vi and "20.000" in fee.vi and "10,000" in fee.en
    assert fee.checked == dt.date(2026, 11, 29) and "75/2022" in (fee.source or "")
    assert "200.000" in content.text("procedures.criminal_record.fee", "vi")


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
        del data["texts"]["passport.fee"]["checked"]

    problems = validate_all(_copy_own(tmp_path, {"troubleshoot.yml": drop_text, "procedures.yml": drop_source}))
    assert "missing text 'troubleshoot.otp.s2_phone'" in problems
    assert "fact 'procedures.passport.fee' lacks `source` or `checked`" in problems


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
