"""Essential online procedures: who, documents, fee, time, how and where, each fact with its source and date."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import structlog

from actions.base import Capability, Context
from actions.feedback import offer_feedback
from kernel import callbacks
from kernel.content import Content
from kernel.content_schema import FeeRule, ProceduresSection, procedures_section
from kernel.types import Button, Incoming, Reply

log = structlog.get_logger(__name__)

LIST = "p_list"  # p_list: the groups as buttons (or all procedures without groups); p_list|<group>: one group
SHOW = "p_show"  # p_show|<procedure>|<aspect or "">: one aspect, or the overview when empty
CALLBACKS = (LIST, SHOW)
callbacks.register(*CALLBACKS)

MISTAKES = "mistakes"  # shown like an aspect, though the NLU has no such entity value
_ASPECTS_PER_ROW = 2


def checked_line(ctx: Context, key: str) -> str | None:
    """ "Checked on dd/mm/yyyy. Source: …" for a confirmed fact, "Source: …" for an unconfirmed one, else None."""
    entry = ctx.content.entry(key)
    if not entry.source:
        return None
    if entry.checked is None:  # no date we cannot stand behind; the text itself asks to check on the portal
        return ctx.t("procedures.source_line", source=entry.source)
    return ctx.t("procedures.checked_line", date=entry.checked.strftime("%d/%m/%Y"), source=entry.source)


def local_day(ctx: Context) -> dt.date:
    """The day the question is asked in the province (a fee ending on 31/12 still applies at 23:00 there)."""
    return ctx.now.astimezone(ZoneInfo(ctx.settings.timezone)).date()


def _amount(ctx: Context, vnd: int) -> str:
    if vnd == 0:
        return ctx.t("procedures.fee_free")
    grouped = f"{vnd:,}"
    return f"{grouped.replace(',', '.')} đồng" if ctx.lang == "vi" else f"{grouped} VND"


def fee_lines(ctx: Context, rules: list[FeeRule], day: dt.date) -> str | None:
    """The amounts in force on `day`, one line each, then the sources they rest on; None when no rule applies."""
    if not rules:
        return None
    # "any" next to an online rate for the same thing is what you pay in person.
    online = {r.for_ for r in rules if r.applies == "online"}
    lines = [ctx.t("procedures.fee_today", date=day.strftime("%d/%m/%Y"))]
    for rule in rules:
        channel = "offline" if rule.applies == "any" and rule.for_ in online else rule.applies
        values = {"channel": ctx.t(f"procedures.fee_channel.{channel}"), "amount": _amount(ctx, rule.amount_vnd)}
        if rule.for_:
            lines.append(ctx.t("procedures.fee_line_for", what=ctx.t(f"procedures.fee_for.{rule.for_}"), **values))
        else:  # the channel opens the line: "Nộp trực tuyến: …"
            values["channel"] = values["channel"][:1].upper() + values["channel"][1:]
            lines.append(ctx.t("procedures.fee_line", **values))
    cited: list[str] = []
    for rule in rules:
        if rule.checked is not None:
            line = ctx.t("procedures.fee_checked", date=rule.checked.strftime("%d/%m/%Y"), source=rule.source)
        else:
            line = ctx.t("procedures.fee_unchecked", source=rule.source)
        if line not in cited:
            cited.append(line)
    return "\n".join(lines) + "\n" + "\n".join(cited)


class ProceduresCapability(Capability):
    """Answers `procedure_info` (entities `procedure`, `aspect`); owns the p_* callbacks."""

    intents: tuple[str, ...] = ("procedure_info",)
    callbacks: tuple[str, ...] = CALLBACKS

    def __init__(self, content: Content) -> None:
        self.section: ProceduresSection = procedures_section(content)

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        nlu = inc.nlu
        pid = nlu.entity("procedure") if nlu else None
        aspect = nlu.entity("aspect") if nlu else None
        log.info("procedure_asked", procedure=pid, aspect=aspect)
        return [await self.answer(ctx, pid, aspect, edit=False)]

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action == SHOW and args:
            return [await self.answer(ctx, args[0], args[1] if len(args) > 1 else None, edit=True)]
        return [self._list(ctx, edit=True, group=args[0] if args else None)]

    async def answer(self, ctx: Context, pid: str | None, aspect: str | None, *, edit: bool) -> Reply:
        """One procedure's aspect (or its overview, or the picker when `pid` is unknown), with the feedback
        buttons; the renewal capability answers the ID card's aspects with it too."""
        if pid not in self.section.order:
            return self._list(ctx, edit=edit)
        assert pid is not None
        if aspect in self.section.aspects or aspect == MISTAKES:
            assert aspect is not None
            reply = self._aspect(ctx, pid, aspect, edit=edit)
        else:
            reply = self._overview(ctx, pid, edit=edit)
        return await offer_feedback(ctx, f"proc:{pid}", f"procedures.{pid}.{aspect or 'who'}", reply)

    def _list(self, ctx: Context, *, edit: bool, group: str | None = None) -> Reply:
        """The groups (a phone screen holds few buttons), or one group's procedures with a way back."""
        groups = self.section.groups
        if not groups:
            return Reply(ctx.t("procedures.ask_procedure"), self._procedure_rows(ctx, self.section.order), edit=edit)
        if group not in groups:  # also an unknown or stale group in a payload: start from the groups
            rows = tuple((Button(ctx.t(f"procedures.group.{gid}"), callbacks.encode(LIST, gid)),) for gid in groups)
            return Reply(ctx.t("procedures.ask_group"), rows, edit=edit)
        assert group is not None
        back = (Button(ctx.t("procedures.btn_groups"), callbacks.encode(LIST)),)
        text = f"<b>{ctx.t(f'procedures.group.{group}')}</b>\n\n{ctx.t('procedures.ask_procedure')}"
        return Reply(text, (*self._procedure_rows(ctx, groups[group]), back), edit=edit)

    @staticmethod
    def _procedure_rows(ctx: Context, pids: list[str]) -> tuple[tuple[Button, ...], ...]:
        return tuple((Button(ctx.t(f"procedures.{pid}.name"), callbacks.encode(SHOW, pid, "")),) for pid in pids)

    def _overview(self, ctx: Context, pid: str, *, edit: bool) -> Reply:
        key = f"procedures.{pid}.who"
        parts = [f"<b>{ctx.t(f'procedures.{pid}.name')}</b>", ctx.t(key), checked_line(ctx, key)]
        parts.append(ctx.t("procedures.ask_aspect"))
        text = "\n\n".join(p for p in parts if p)
        return Reply(text, self._aspect_buttons(ctx, pid, shown=None), edit=edit)

    def _aspect(self, ctx: Context, pid: str, aspect: str, *, edit: bool) -> Reply:
        key = f"procedures.{pid}.{aspect}"
        title = f"<b>{ctx.t(f'procedures.{pid}.name')}</b> — {ctx.t(f'procedures.aspect.{aspect}')}"
        parts: list[str | None] = [title]
        if aspect == "fee":
            day = local_day(ctx)
            parts.append(fee_lines(ctx, self.section.rules_on(pid, day), day))
        parts += [ctx.t(key), checked_line(ctx, key)]
        text = "\n\n".join(p for p in parts if p)
        return Reply(text, self._aspect_buttons(ctx, pid, shown=aspect), edit=edit)

    def _aspect_buttons(self, ctx: Context, pid: str, shown: str | None) -> tuple[tuple[Button, ...], ...]:
        """The other aspects (the answered one left out), common mistakes, and the procedure's group."""
        names = [a for a in (*self.section.aspects, MISTAKES) if a != shown]
        buttons = [Button(ctx.t(f"procedures.aspect.{a}"), callbacks.encode(SHOW, pid, a)) for a in names]
        rows = [tuple(buttons[i : i + _ASPECTS_PER_ROW]) for i in range(0, len(buttons), _ASPECTS_PER_ROW)]
        group = self.section.group_of(pid)  # "other procedures" opens the group this one is in
        rows.append((Button(ctx.t("procedures.btn_all"), callbacks.encode(LIST, *([group] if group else []))),))
        return tuple(rows)
