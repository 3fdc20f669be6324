"""How reminders read: local times ("08:00 thứ Sáu 04/12"), the reminder message and its buttons."""

from __future__ import annotations

import datetime as dt
import html
import json
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Reply
from store.models_reminders import Reminder

# Callback actions (the `rm_` prefix is this area's). Arguments are row ids or a draft token.
CONFIRM = "rm_ok"  # rm_ok|<token>
EDIT = "rm_edit"  # rm_edit|<token>
ALTERNATIVE = "rm_alt"  # rm_alt|<token>|<index>
DONE = "rm_done"  # rm_done|<reminder id>
SNOOZE = "rm_snz"  # rm_snz|<reminder id>
TOMORROW = "rm_tmr"  # rm_tmr|<reminder id>
STOP = "rm_stop"  # rm_stop|<reminder id>
CANCEL = "rm_cx"  # rm_cx|<reminder id>
CANCEL_ALL = "rm_cxall"
LIST = "rm_list"
ACTIONS = (CONFIRM, EDIT, ALTERNATIVE, DONE, SNOOZE, TOMORROW, STOP, CANCEL, CANCEL_ALL, LIST)
callbacks.register(*ACTIONS)

LATE_AFTER = dt.timedelta(hours=1)  # a reminder delivered later than this is marked "(late)"


class _Calendar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weekdays: list[str] = Field(min_length=7, max_length=7)


class CalendarSection(BaseModel):
    """The `calendar:` section of data/content/reminders.yml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vi: _Calendar
    en: _Calendar


def calendar_section(content: Content) -> CalendarSection:
    return CalendarSection.model_validate(content.raw["reminders"]["calendar"])


class Formatter:
    """Formats instants for citizens in the province's time zone, in their language."""

    def __init__(self, content: Content, tz: ZoneInfo) -> None:
        self.content = content
        self.tz = tz
        self._calendar = calendar_section(content)

    def _weekday(self, day: dt.date, lang: str) -> str:
        cal = self._calendar.en if lang == "en" else self._calendar.vi
        return cal.weekdays[day.weekday()]

    def when(self, at: dt.datetime, lang: str, now: dt.datetime) -> str:
        """ "08:00 thứ Sáu 04/12" (with the year when it is not this year's)."""
        local = at.astimezone(self.tz)
        year = "" if local.year == now.astimezone(self.tz).year else f"/{local.year}"
        return f"{local:%H:%M} {self._weekday(local.date(), lang)} {local:%d/%m}{year}"

    def deadline(self, at: dt.datetime, lang: str, now: dt.datetime) -> str:
        """A deadline at local midnight is a whole day ("thứ Sáu 04/12/2026"); otherwise a time like `when`."""
        local = at.astimezone(self.tz)
        if local.time() == dt.time(0, 0):
            return f"{self._weekday(local.date(), lang)} {local:%d/%m/%Y}"
        return self.when(at, lang, now)

    def body(self, row: Reminder, lang: str, now: dt.datetime) -> str:
        """What the reminder is about, as Telegram HTML (the citizen's words are escaped)."""
        if row.text_key:
            values: dict[str, object] = json.loads(row.params or "{}")
            if "kind" in values and self.content.has(f"reminders.kind_{values['kind']}"):
                values["kind"] = self.content.text(f"reminders.kind_{values['kind']}", lang)
            values.setdefault("when", self.when(row.remind_at, lang, now))
            if row.deadline_at is not None:
                values.setdefault("deadline", self.deadline(row.deadline_at, lang, now))
            return self.content.text(row.text_key, lang, **values)
        if row.task:
            return html.escape(row.task, quote=False)
        return self.content.text("reminders.no_task", lang)

    def message(self, row: Reminder, lang: str, now: dt.datetime) -> Reply:
        """The reminder as the citizen receives it, with [Done] [Snooze 1h] / [Tomorrow] [Stop these]."""
        t = self.content.text
        late = now - row.remind_at > LATE_AFTER
        header = t(
            "reminders.header_late" if late else "reminders.header", lang, when=self.when(row.remind_at, lang, now)
        )
        rows = (
            (
                Button(t("reminders.btn_done", lang), callbacks.encode(DONE, row.id)),
                Button(t("reminders.btn_snooze", lang), callbacks.encode(SNOOZE, row.id)),
            ),
            (
                Button(t("reminders.btn_tomorrow", lang), callbacks.encode(TOMORROW, row.id)),
                Button(t("reminders.btn_stop", lang), callbacks.encode(STOP, row.id)),
            ),
        )
        return Reply(f"{header}\n{self.body(row, lang, now)}", rows)

    def dropped(self, row: Reminder, lang: str, now: dt.datetime) -> Reply:
        """The note sent instead of a reminder whose deadline passed while it could not be delivered."""
        assert row.deadline_at is not None
        note = self.content.text(
            "reminders.dropped",
            lang,
            when=self.when(row.remind_at, lang, now),
            deadline=self.deadline(row.deadline_at, lang, now),
        )
        return Reply(f"{note}\n<i>{self.body(row, lang, now)}</i>")
