"""Pydantic schemas for the guide, procedure and renewal content, and one check over all of it."""

from __future__ import annotations

import datetime as dt
import re
import string
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from kernel.content import Content

# Ids travel inside callback payloads (<= 64 bytes, see kernel.callbacks), so they stay short and plain.
Ident = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,29}$")]
TextKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")]
Aspect = Literal["documents", "fee", "duration", "how", "where"]

ASPECTS: tuple[Aspect, ...] = ("documents", "fee", "duration", "how", "where")
# Aspects that are facts (money, time limits): their texts must carry a source and the date it was checked.
FACT_ASPECTS: tuple[Aspect, ...] = ("fee", "duration")
PROCEDURE_EXTRA_TEXTS = ("name", "who", "mistakes")
# Working notes that must never reach a citizen: a fact not yet confirmed is reworded ("check on the portal when you
# apply") and loses its `checked` date, it is not shipped with a marker in its text or its source.
INTERNAL_MARKERS = re.compile(r"\b(GUESS|TODO|FIXME|XXX|unverified)\b|chưa đối chiếu", re.IGNORECASE)
# What a fact without a `checked` date must tell the citizen instead (vi, en): the amount or time limit is theirs
# to confirm where they apply. Matched case-insensitively.
CHECK_ON_PORTAL = ("kiểm tra trên cổng dịch vụ công khi nộp", "check on the portal when you apply")
# The content files this area owns; the placeholder check runs over them.
OWN_STEMS = ("guides", "eid", "troubleshoot", "procedures", "renewal")
MAX_DETOUR_DEPTH = 6  # guide + nested troubleshooting branches; keeps the stored stack short
MAX_GROUP = 8  # procedure buttons a phone screen shows without scrolling past the answer


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepDef(_Strict):
    text: TextKey
    troubleshoot: Ident | None = None
    # Question aspects (NLU `aspect` values, e.g. where) this step answers: "level 2 where?" opens the guide here.
    answers: list[Ident] = Field(default_factory=list)


class GuideDef(_Strict):
    kind: Literal["main", "branch"]
    title: TextKey
    button: TextKey
    steps: list[StepDef] = Field(min_length=1, max_length=20)
    done: TextKey
    troubleshoot: Ident | None = None  # default branch for steps that name none
    next: list[Ident] = Field(default_factory=list)

    def branch_for(self, step: int) -> str | None:
        """The troubleshooting branch for 1-based `step`, or None when there is nowhere further to go."""
        return self.steps[step - 1].troubleshoot or self.troubleshoot

    def step_for(self, aspect: str | None) -> int:
        """The 1-based step that answers `aspect`, or 1 (the start) when no step does."""
        for i, step in enumerate(self.steps, start=1):
            if aspect is not None and aspect in step.answers:
                return i
        return 1


class MenuOption(_Strict):
    guide: Ident | None = None
    menu: Ident | None = None
    label: TextKey | None = None  # defaults to the guide's button label

    @model_validator(mode="after")
    def _one_target(self) -> MenuOption:
        if (self.guide is None) == (self.menu is None):
            raise ValueError("a menu option names exactly one of `guide` or `menu`")
        if self.menu is not None and self.label is None:
            raise ValueError("an option opening a menu needs a `label`")
        return self


class MenuDef(_Strict):
    text: TextKey
    options: list[MenuOption] = Field(min_length=1)


class GuidesSection(_Strict):
    guides: dict[Ident, GuideDef]
    menus: dict[Ident, MenuDef]

    @model_validator(mode="after")
    def _references(self) -> GuidesSection:
        if "main" not in self.menus:
            raise ValueError("menus must define `main` (what [Menu] opens)")
        for gid, guide in self.guides.items():
            for target in [guide.troubleshoot, *(s.troubleshoot for s in guide.steps)]:
                if target is None:
                    continue
                if target not in self.guides:
                    raise ValueError(f"guide {gid}: unknown troubleshooting branch {target!r}")
                if self.guides[target].kind != "branch":
                    raise ValueError(f"guide {gid}: {target!r} is not a troubleshooting branch")
            for nxt in guide.next:
                if nxt not in self.guides:
                    raise ValueError(f"guide {gid}: unknown next guide {nxt!r}")
        for mid, menu in self.menus.items():
            for opt in menu.options:
                if opt.guide is not None and opt.guide not in self.guides:
                    raise ValueError(f"menu {mid}: unknown guide {opt.guide!r}")
                if opt.menu is not None and opt.menu not in self.menus:
                    raise ValueError(f"menu {mid}: unknown menu {opt.menu!r}")
        for gid in self.guides:
            if self.detour_depth(gid, ()) > MAX_DETOUR_DEPTH:
                raise ValueError(f"guide {gid}: troubleshooting detours nest deeper than {MAX_DETOUR_DEPTH}")
        return self

    def detour_depth(self, gid: str, seen: tuple[str, ...]) -> int:
        """How many guides deep [It didn't work] can take a user starting in `gid`; rejects loops."""
        if gid in seen:
            raise ValueError(f"troubleshooting branches loop: {' > '.join((*seen, gid))}")
        guide = self.guides[gid]
        targets = {t for t in [guide.troubleshoot, *(s.troubleshoot for s in guide.steps)] if t}
        return 1 + max((self.detour_depth(t, (*seen, gid)) for t in targets), default=0)

    def text_keys(self) -> set[str]:
        keys: set[str] = set()
        for guide in self.guides.values():
            keys |= {guide.title, guide.button, guide.done, *(s.text for s in guide.steps)}
        for menu in self.menus.values():
            keys.add(menu.text)
            keys |= {o.label for o in menu.options if o.label}
        return keys


Channel = Literal["online", "offline", "any"]


class FeeRule(_Strict):
    """One amount of a procedure's fee, for one way of applying, over the dates a legal text sets it."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    amount_vnd: int = Field(ge=0)
    applies: Channel
    # What the amount is for when a procedure has several (new passport, re-issue…): text procedures.fee_for.<for>.
    for_: Ident | None = Field(default=None, alias="for")
    from_: dt.date | None = Field(default=None, alias="from")  # None: in force since before the bot existed
    until: dt.date | None = None  # the last day it applies (inclusive); None: no end set
    source: str = Field(min_length=1)
    checked: dt.date | None = None  # None: not confirmed; the answer then asks to check the amount on the portal

    @model_validator(mode="after")
    def _dates(self) -> FeeRule:
        if self.from_ is not None and self.until is not None and self.until < self.from_:
            raise ValueError(f"fee rule ends ({self.until}) before it starts ({self.from_})")
        return self

    def in_force(self, day: dt.date) -> bool:
        return (self.from_ is None or self.from_ <= day) and (self.until is None or day <= self.until)


def _overlap(a: FeeRule, b: FeeRule) -> bool:
    start_a, start_b = a.from_ or dt.date.min, b.from_ or dt.date.min
    end_a, end_b = a.until or dt.date.max, b.until or dt.date.max
    return start_a <= end_b and start_b <= end_a


class ProceduresSection(_Strict):
    order: list[Ident] = Field(min_length=1)
    aspects: list[Aspect] = Field(min_length=1)
    # Dated fee amounts per procedure, so the answer quotes the amount in force on the day it is asked.
    fees: dict[Ident, list[FeeRule]] = Field(default_factory=dict)
    # The picker's groups (label procedures.group.<id>), each at most MAX_GROUP buttons; empty: one flat list.
    groups: dict[Ident, list[Ident]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> ProceduresSection:
        if len(set(self.order)) != len(self.order):
            raise ValueError("procedure ids repeat in `order`")
        if set(self.aspects) != set(ASPECTS):
            raise ValueError(f"`aspects` must list exactly {ASPECTS}")
        for pid, rules in self.fees.items():
            if pid not in self.order:
                raise ValueError(f"fees: unknown procedure {pid!r}")
            for i, a in enumerate(rules):
                for b in rules[i + 1 :]:
                    # Two amounts for the same thing and the same way of applying on one day: which to quote?
                    if (a.for_, a.applies) == (b.for_, b.applies) and _overlap(a, b):
                        raise ValueError(f"fees.{pid}: two {a.applies} rules for {a.for_ or 'the fee'} overlap")
        if self.groups:
            grouped = [pid for members in self.groups.values() for pid in members]
            if sorted(grouped) != sorted(self.order):
                missing, extra = set(self.order) - set(grouped), set(grouped) - set(self.order)
                raise ValueError(
                    f"`groups` must hold every procedure of `order` once (missing {sorted(missing)}, "
                    f"unknown {sorted(extra)}, or repeated)"
                )
            for gid, members in self.groups.items():
                if not 1 <= len(members) <= MAX_GROUP:
                    raise ValueError(f"group {gid!r} needs 1 to {MAX_GROUP} procedures, not {len(members)}")
        return self

    def group_of(self, pid: str) -> str | None:
        """The picker group holding `pid`, or None without groups."""
        return next((gid for gid, members in self.groups.items() if pid in members), None)

    def rules_on(self, pid: str, day: dt.date) -> list[FeeRule]:
        """The fee rules of `pid` in force on `day`, in the order the content lists them."""
        return [r for r in self.fees.get(pid, []) if r.in_force(day)]

    def text_keys(self) -> set[str]:
        names = (*self.aspects, *PROCEDURE_EXTRA_TEXTS)
        keys = {f"procedures.{pid}.{name}" for pid in self.order for name in names}
        keys |= {f"procedures.fee_for.{r.for_}" for rules in self.fees.values() for r in rules if r.for_}
        keys |= {f"procedures.group.{gid}" for gid in self.groups}
        return keys

    def fact_keys(self) -> set[str]:
        return {f"procedures.{pid}.{aspect}" for pid in self.order for aspect in FACT_ASPECTS}


class SectionError(ValueError):
    """A content section is missing or does not match its schema."""


def guides_section(content: Content) -> GuidesSection:
    raw = content.raw.get("guides") or {}
    try:
        return GuidesSection.model_validate({"guides": raw.get("guides"), "menus": raw.get("menus")})
    except ValidationError as exc:
        raise SectionError(f"guides.yml: {exc}") from exc


def procedures_section(content: Content) -> ProceduresSection:
    raw = content.raw.get("procedures") or {}
    block = raw.get("procedures")
    if isinstance(block, dict):
        block = {**block, "fees": raw.get("fees") or {}}
    try:
        return ProceduresSection.model_validate(block)
    except ValidationError as exc:
        raise SectionError(f"procedures.yml: {exc}") from exc


# Texts the Python code looks up by a fixed key (the rest are named by the sections above).
CODE_KEYS = (
    *(
        f"guides.{k}"
        for k in [
            "step_header",
            "btn_done",
            "btn_fail",
            "btn_back",
            "btn_menu",
            "btn_resume",
            "btn_return",
            "detour_note",
            "branch_done",
            "branch_done_alone",
            "no_progress",
            "resumed",
        ]
    ),
    *(
        f"procedures.{k}"
        for k in [
            "ask_procedure",
            "ask_aspect",
            "checked_line",
            "source_line",
            "btn_all",
            "btn_groups",
            "ask_group",
            "aspect.mistakes",
            "fee_today",
            "fee_line",
            "fee_line_for",
            "fee_free",
            "fee_checked",
            "fee_unchecked",
            "fee_channel.online",
            "fee_channel.offline",
            "fee_channel.any",
        ]
    ),
    *(f"procedures.aspect.{a}" for a in ASPECTS),
    "eid.info",
    "eid.level2_unlocks",
    *(
        f"renewal.{k}"
        for k in [
            "intro",
            "ask_birth",
            "ask_birth_year",
            "ask_birth_month",
            "ask_birth_day",
            "ask_issue",
            "ask_issue_month",
            "ask_issue_day",
            "bad_date",
            "birth_in_future",
            "issue_impossible",
            "expired_session",
            "rule",
            "result_due",
            "result_overdue",
            "result_lifetime",
            "old_card",
            "old_card_lifetime",
            "where",
            "remind_offer",
            "btn_remind",
            "btn_restart",
            "btn_back",
            "btn_month",
            "btn_decade",
            "btn_procedure",
            "btn_when",
        ]
    ),
)
FIXED_FACT_KEYS = ("renewal.rule", "renewal.old_card", "renewal.old_card_lifetime", "eid.info")


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def validate_all(content: Content) -> list[str]:
    """Every problem with this area's content, as readable lines; an empty list means all is well."""
    problems: list[str] = []
    needed: set[str] = set(CODE_KEYS)
    facts: set[str] = set(FIXED_FACT_KEYS)
    try:
        needed |= guides_section(content).text_keys()
    except SectionError as exc:
        problems.append(str(exc))
    try:
        procs = procedures_section(content)
        needed |= procs.text_keys()
        facts |= procs.fact_keys()
    except SectionError as exc:
        problems.append(str(exc))
    problems += [f"missing text {key!r}" for key in sorted(needed) if not content.has(key)]
    for key in sorted(facts):
        if content.has(key):
            entry = content.entry(key)
            if not entry.source:
                problems.append(f"fact {key!r} lacks `source`")
            elif entry.checked is None and not _asks_to_check(entry.vi, entry.en):
                problems.append(f"fact {key!r} has no `checked` date and does not ask to check on the portal")
    problems += _marker_problems(content)
    own = re.compile(rf"^({'|'.join(OWN_STEMS)})\.")
    own_keys = [key for key in content.keys() if own.match(key)]  # noqa: SIM118 (Content is no mapping)
    if not problems:  # with a broken section every text it names would look unused
        problems += [f"text {key!r} is never used" for key in own_keys if key not in needed]
    for key in own_keys:
        entry = content.entry(key)
        try:
            vi, en = _placeholders(entry.vi), _placeholders(entry.en)
        except ValueError as exc:  # an unbalanced brace would crash at render time
            problems.append(f"text {key!r}: {exc}")
            continue
        if vi != en:
            problems.append(f"text {key!r}: placeholders differ between vi {sorted(vi)} and en {sorted(en)}")
        if entry.checked is not None and not entry.source:
            problems.append(f"text {key!r}: `checked` without a `source`")
        if entry.source and entry.checked is None and not _asks_to_check(entry.vi, entry.en, loose=True):
            problems.append(f"text {key!r}: an unconfirmed fact must ask the citizen to check it")
    return problems


def _asks_to_check(vi: str, en: str, *, loose: bool = False) -> bool:
    """Whether an unconfirmed fact tells the citizen to confirm it where they apply (loosely: to check it at all)."""
    if loose:
        return "kiểm tra" in vi.lower() and "check" in en.lower()
    return CHECK_ON_PORTAL[0] in vi.lower() and CHECK_ON_PORTAL[1] in en.lower()


def _marker_problems(content: Content) -> list[str]:
    """Internal markers (GUESS, TODO, "chưa đối chiếu"…) in any text or source a citizen can be shown."""
    problems: list[str] = []
    for key in content.keys():  # noqa: SIM118 (Content is no mapping)
        entry = content.entry(key)
        for field, value in (("vi", entry.vi), ("en", entry.en), ("source", entry.source or "")):
            if m := INTERNAL_MARKERS.search(value):
                problems.append(f"text {key!r}: internal marker {m.group(0)!r} in `{field}`")
    raw_fees = (content.raw.get("procedures") or {}).get("fees") or {}
    if isinstance(raw_fees, dict):
        for pid, rules in raw_fees.items():
            for i, rule in enumerate(rules if isinstance(rules, list) else []):
                source = str(rule.get("source", "")) if isinstance(rule, dict) else ""
                if m := INTERNAL_MARKERS.search(source):
                    problems.append(f"fee rule fees.{pid}[{i}]: internal marker {m.group(0)!r} in `source`")
    return problems
