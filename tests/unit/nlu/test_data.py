"""Checks on the NLU training data, held-out set and domain that run without Rasa (bot environment)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from core.text import fold, fold_with_offsets

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data" / "nlu"
HELDOUT = ROOT / "data" / "nlu_heldout" / "test.yml"

CONTRACT_INTENTS = {
    "greet", "goodbye", "thank", "affirm", "deny", "help", "human_handover", "out_of_scope",
    "change_language", "eid_info", "eid_activate", "eid_otp_problem", "eid_face_nfc_problem",
    "eid_forgot_password", "eid_change_phone", "eid_account_locked", "procedure_info", "check_status",
    "set_reminder", "list_reminders", "cancel_reminder", "id_card_renewal", "subscribe_news",
    "unsubscribe_news", "delete_my_data", "resume_guide",
}  # fmt: skip
ENTITY_VALUES = {
    "procedure": {
        "birth_registration", "death_registration", "permanent_residence", "temporary_residence",
        "criminal_record", "driving_licence", "marriage_registration", "passport", "id_card", "temporary_absence",
        "stay_notice", "household_split", "residence_update", "residence_confirm", "marital_status", "civil_extract",
        "certified_copy", "vehicle_registration", "health_insurance", "unemployment_benefit", "household_business",
    },
    "aspect": {"documents", "fee", "duration", "how", "where"},
    "eid_level": {"1", "2"},
}  # fmt: skip
ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<name>[^)]+)\)|(?P<json>\{[^}]+\}))")


def plain(example: str) -> str:
    return ANNOTATION.sub(lambda m: m.group("text"), example)


def annotated(example: str) -> list[tuple[str, str, str | None]]:
    """(entity, annotated text, explicit value or None) for every annotation in an example."""
    out: list[tuple[str, str, str | None]] = []
    for m in ANNOTATION.finditer(example):
        if m.group("name"):
            out.append((m.group("name"), m.group("text"), None))
        else:
            spec = json.loads(m.group("json"))
            out.append((spec["entity"], m.group("text"), spec.get("value")))
    return out


def key(text: str) -> str:
    return " ".join(fold(plain(text)).replace("?", " ").split())


def has_diacritics(text: str) -> bool:
    return fold(text) != text.lower()


def load_items(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]


def examples_of(items: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for item in items:
        if "intent" in item:
            out[item["intent"]].extend(
                line[2:].strip() for line in item["examples"].splitlines() if line.startswith("- ")
            )
    return out


@pytest.fixture(scope="module")
def training() -> dict[str, list[str]]:
    merged: dict[str, list[str]] = defaultdict(list)
    for path in sorted(DATA.glob("*.yml")):
        for intent, exs in examples_of(load_items(path)).items():
            merged[intent].extend(exs)
    return merged


@pytest.fixture(scope="module")
def heldout() -> dict[str, list[str]]:
    return examples_of(load_items(HELDOUT))


@pytest.fixture(scope="module")
def synonyms() -> dict[str, str]:
    """Folded variant -> canonical value, from every `synonym:` block."""
    table = {}
    for path in sorted(DATA.glob("*.yml")):
        for item in load_items(path):
            if "synonym" in item:
                for line in item["examples"].splitlines():
                    if line.startswith("- "):
                        table[fold(line[2:].strip())] = str(item["synonym"])
    return table


def test_domain_lists_exactly_the_trained_intents(training: dict[str, list[str]]) -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert set(domain["intents"]) == set(training)
    assert set(training) >= CONTRACT_INTENTS
    assert set(domain["entities"]) == {*ENTITY_VALUES, "dossier_code"}


def test_every_intent_has_25_varied_examples(training: dict[str, list[str]]) -> None:
    for intent, exs in training.items():
        texts = [plain(e) for e in exs]
        assert len(set(map(key, texts))) >= 25, intent
        # the three ways citizens type: with diacritics, without, and (teencode or English) in the rest
        assert sum(has_diacritics(t) for t in texts) >= 5, f"{intent}: too few examples with diacritics"
        assert sum(not has_diacritics(t) for t in texts) >= 8, f"{intent}: too few examples without"


def test_no_example_is_labelled_with_two_intents(training: dict[str, list[str]]) -> None:
    owner: dict[str, str] = {}
    for intent, exs in training.items():
        for e in exs:
            k = key(e)
            assert owner.setdefault(k, intent) == intent, f"{e!r} in {intent} and {owner[k]}"


def test_heldout_covers_every_intent_and_leans_unaccented(heldout: dict[str, list[str]]) -> None:
    assert set(heldout) == CONTRACT_INTENTS
    for intent, exs in heldout.items():
        assert len(exs) >= 8, intent
    texts = [plain(e) for exs in heldout.values() for e in exs]
    assert sum(not has_diacritics(t) for t in texts) / len(texts) >= 0.5


def test_heldout_never_appears_in_training(training: dict[str, list[str]], heldout: dict[str, list[str]]) -> None:
    # compared folded, so an unaccented copy of a training sentence does not count as unseen
    trained = {key(e) for exs in training.values() for e in exs}
    leaked = [e for exs in heldout.values() for e in exs if key(e) in trained]
    assert leaked == []


@pytest.mark.parametrize("edition", sorted(p.name for p in (ROOT / "data").glob("nlu_field*") if p.is_dir()))
def test_field_set_is_never_trained_on(training: dict[str, list[str]], edition: str) -> None:
    # data/nlu_field/ measures the model on messages written without seeing data/nlu/: one copied into training
    # (even without its diacritics) would make that figure flatter the model. The retired editions
    # (data/nlu_field_<date>/, the newest of them used to choose the blend and thresholds) stay out of training too.
    trained = {key(e) for exs in training.values() for e in exs}
    field = {path.name: examples_of(load_items(path)) for path in sorted((ROOT / "data" / edition).glob("*.yml"))}
    assert sorted(field) == ["en.yml", "vi_accented.yml", "vi_plain.yml"]
    per_intent: Counter[str] = Counter()
    for name, by_intent in field.items():
        assert set(by_intent) == CONTRACT_INTENTS, name
        leaked = [e for exs in by_intent.values() for e in exs if key(e) in trained]
        assert leaked == [], name
        per_intent.update({intent: len(exs) for intent, exs in by_intent.items()})
    assert min(per_intent.values()) >= 15, per_intent.most_common()[-3:]


def test_annotations_map_to_canonical_values(
    training: dict[str, list[str]], heldout: dict[str, list[str]], synonyms: dict[str, str]
) -> None:
    for exs in (*training.values(), *heldout.values()):
        for e in exs:
            for entity, text, explicit in annotated(e):
                if entity == "dossier_code":
                    continue
                assert entity in ENTITY_VALUES, e
                value = explicit if explicit is not None else synonyms.get(fold(text))
                assert value in ENTITY_VALUES[entity], f"{text!r} in {e!r} -> {value!r}"


def test_procedure_spellings_from_the_contract(synonyms: dict[str, str]) -> None:
    for spelling, value in {
        "nhập hộ khẩu": "permanent_residence", "nhap ho khau": "permanent_residence",
        "bằng lái": "driving_licence", "gplx": "driving_licence", "lý lịch tư pháp": "criminal_record",
        "ly lich tu phap": "criminal_record", "hộ chiếu": "passport", "khai sinh": "birth_registration",
        "tạm trú": "temporary_residence", "kết hôn": "marriage_registration", "khai tử": "death_registration",
        "mức 2": "2", "muc 2": "2", "level 2": "2", "mức hai": "2",
    }.items():  # fmt: skip
        assert synonyms.get(fold(spelling)) == value, spelling


def test_lookup_tables_cover_every_synonym_spelled_both_ways() -> None:
    items = load_items(DATA / "entities.yml")
    lookups = {i["lookup"]: {ln[2:].strip() for ln in i["examples"].splitlines() if ln.startswith("- ")}
               for i in items if "lookup" in i}  # fmt: skip
    by_value = {v: e for e, vs in ENTITY_VALUES.items() for v in vs}
    for item in items:
        if "synonym" in item:
            entity = by_value[str(item["synonym"])]
            for line in item["examples"].splitlines():
                variant = line[2:].strip()
                assert {variant, fold(variant)} <= lookups[entity], variant


def _dossier_regex() -> re.Pattern[str]:
    items = load_items(DATA / "entities.yml")
    (pattern,) = [i["examples"].split("- ", 1)[1].strip() for i in items if i.get("regex") == "dossier_code"]
    return re.compile(pattern, re.IGNORECASE)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("hồ sơ 000.00.12.H22-240101-0003 xong chưa", "000.00.12.H22-240101-0003"),
        ("38.98.H29-210519-0013", "38.98.H29-210519-0013"),
        ("ma (H22.38-240615-0001).", "H22.38-240615-0001"),
        ("tra h22.38-240615-0001 nhe", "h22.38-240615-0001"),
    ],
)
def test_dossier_code_regex_finds_codes_anywhere(text: str, code: str) -> None:
    assert [m.group(0) for m in _dossier_regex().finditer(text)] == [code]


@pytest.mark.parametrize("text", ["sdt 0912345678", "cccd 001099012345", "ngày 2024-01-01", "giá 10.000 đồng"])
def test_dossier_code_regex_ignores_phone_id_and_dates(text: str) -> None:
    assert _dossier_regex().search(text) is None


def test_fold_keeps_offsets_into_the_original_text() -> None:
    nfd = unicodedata.normalize("NFD", "Nhập Hộ Khẩu")
    folded, index = fold_with_offsets(nfd)
    assert folded == "nhap ho khau"
    start = folded.index("ho khau")
    assert unicodedata.normalize("NFC", nfd[index[start] : index[-1] + 1]) == "Hộ Khẩu"
    assert fold("ĐĂNG KÝ Định Danh") == "dang ky dinh danh"


def test_config_folds_diacritics_and_falls_back() -> None:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    names = [c["name"] for c in config["pipeline"]]
    assert names.index("nlu.components.diacritics.VietnameseDiacriticFolder") < names.index("CountVectorsFeaturizer")
    (fallback,) = [c for c in config["pipeline"] if c["name"] == "FallbackClassifier"]
    assert 0 < fallback["threshold"] < 1
    assert (ROOT / "nlu" / "__init__.py").read_text() == ""


def test_bot_thresholds_match_the_model_and_env_example() -> None:
    # Rasa and the router each apply the thresholds; if they differ, one silently overrides the other
    from core.settings import Settings

    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    (fallback,) = [c for c in config["pipeline"] if c["name"] == "FallbackClassifier"]
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines() if "=" in line
    )
    assert defaults["nlu_fallback_threshold"] == fallback["threshold"] == float(example["NLU_FALLBACK_THRESHOLD"])
    assert (
        defaults["nlu_ambiguity_threshold"]
        == fallback["ambiguity_threshold"]
        == float(example["NLU_AMBIGUITY_THRESHOLD"])
    )
    # a choice of two readings is offered a little below the point where the bot would answer outright
    assert 0 < defaults["nlu_ambiguity_floor"] <= defaults["nlu_fallback_threshold"]


def test_examples_are_not_paraphrase_clones(training: dict[str, list[str]]) -> None:
    # a crude guard against padding an intent with one sentence in many spellings: no folded text twice
    counts = Counter(key(e) for exs in training.values() for e in exs)
    assert [k for k, n in counts.items() if n > 1] == []
