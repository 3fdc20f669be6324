"""Reads when a reminder is due, and what it is about, from free Vietnamese or English text.

Pure functions: no I/O, no clock of its own (the caller passes `now`). The rules below are product decisions;
the reminders capability and tests/unit/reminders/test_when.py rely on them.

Input: any case, extra spaces, with or without Vietnamese diacritics, precomposed or decomposed Unicode.
A word typed *with* marks must carry the right ones: "tôi" (I) is never read as "tối" (evening) and "tới"
(until) never as "tối", while the bare "toi" may be either and is resolved by its neighbours. Likewise bare
"sang", "dem", "mot" count only next to a day or a clock time; "chị Mai" is a name and "lần thứ 2" an ordinal.

Days
- "hôm nay"/"today" = today; "mai"/"ngày mai"/"tomorrow" = +1; "mốt"/"ngày mốt"/"ngày kia"/"the day after
  tomorrow" = +2; "hôm qua"/"hôm kia"/"yesterday" are in the past (status "past").
- "3 ngày nữa", "sau 3 ngày", "3 hôm sau", "2 tuần nữa", "1 tháng nữa", "in 3 days", "in 2 weeks": a day
  offset (no time). "30 phút nữa", "2 tiếng nữa", "nửa tiếng nữa", "in 2 hours": an instant (now + delta).
  "3 ngày tới" (a span of days) is not a point in time and is left alone.
- A weekday ("thứ 2".."thứ 7", "thứ hai".."thứ bảy", "t2".."t7", "chủ nhật"/"cn", "Monday", "on Fri") is its
  next occurrence. When it names today: with a time of day that is still ahead today the answer is
  "ambiguous" (today or a week later); with a time already gone, or with no time at all, it is next week's
  (someone who means today says "hôm nay"). "thứ 6 này"/"this Friday" counts today; "thứ 6 tới"/"coming
  Friday" never does. "thứ 6 tuần sau"/"tuần tới"/"next Friday"/"Friday next week" is the Friday of the next
  calendar week (weeks start on Monday, so on a Sunday "thứ 2 tuần sau" is tomorrow); "tuần sau nữa" is the
  week after.
- "tuần sau"/"tuần tới"/"next week" alone = Monday of next week (no time: the default time applies).
  "cuối tuần"/"weekend" = the coming Saturday (today on a Saturday or Sunday); "cuối tuần sau" = Saturday of
  next week. "cuối tháng" = the last day of this month; "tháng sau"/"đầu tháng sau"/"next month" = the 1st of
  next month.
- Dates are day first, as Vietnamese write them: "15/12", "15-12", "15/12/2026", "15.12.2026", "ngày 15",
  "mùng 5", "ngày 15 tháng 12 (năm 2026)", "Dec 15", "15 December", "the 15th". English "12/15" is therefore
  day 12 of month 15, which does not exist: status "invalid" (the audience is Vietnamese; asking again is
  cheaper than guessing). A date without a year is its next occurrence (today counts; "29/2" waits for the
  next leap year); "ngày 15" is the next 15th. A date that cannot exist ("30/2", "29/2/2027", "32/1") or a
  clock that cannot ("25h", "8h75") gives status "invalid".

Times
- "8h", "8 giờ", "8g", "8h30", "8g30", "8 giờ 30 (phút)", "8:30", "8 rưỡi", "8h kém 15" (7:45), "tám giờ",
  "lúc 8", "9am", "9:30 pm", "at 21:00", "at 9", "9 o'clock", "noon", "midnight"/"nửa đêm".
- Parts of the day: "sáng"/"morning" (AM), "trưa"/"noon" (10–12 as is, 1–5 → 13–17), "chiều"/"afternoon"
  (PM), "tối"/"evening" (5–11 → 17–23; 12 and 1–4 → after midnight), "đêm"/"khuya"/"night" (7–11 → 19–23;
  12 and 0–6 → after midnight, i.e. the next calendar day when a day is named). "sáng nay", "tối nay",
  "tonight", "this morning" also name today.
- Hours 13–23 and 0 are read as a 24-hour clock whatever the part of day. Without a part of day or am/pm,
  7–12 are morning/noon, and 1–6 are "ambiguous" between AM and PM (both alternatives are returned).
- A time with no day is its next occurrence (today if still ahead, else tomorrow). A named day with a time
  already gone is "past"; so is a part of day already over ("sáng nay" at 15:00).

Several mentions
- At most one day, one clock time and one part of day are used; the first of each kind wins and a later
  conflicting one is left in the task text. "tuần sau ... thứ 6" combines into Friday of next week.

Result
- `at` is aware, in `tz`. With `has_time` False it is local midnight of the day (or of the day the part of
  day falls on): call `resolve_default` to get the delivery time. `at` is None for "missing", "invalid" and
  "ambiguous" (see `alternatives`, sorted); for "past" it is the moment that is gone.
- `task` is the text with the lead-in ("nhắc tôi", "đặt lời nhắc", "remind me to", "set a reminder for"),
  the time words and their prepositions ("vào", "lúc", "at", "on") and trailing particles ("nhé", "nha")
  removed. `span` runs from the first to the last time word used, in the caller's string.

Why hand rules and not a library: dateparser 1.5.0 (the usual choice; measured with languages vi+en, DMY,
future dates) reads "thứ 6" as 6 June, returns nothing for "8h sáng mai", "3 ngày nữa" and "5h chiều", reads
"12/15" as 12 June 2115, takes ~0.7 s on its first Vietnamese parse and brings regex, pytz and tzlocal. English
here is a small, closed vocabulary that a few dozen rules cover and the tests pin down.
"""

from reminders.when.clock import (
    DEFAULT_TIME,
    PART_DEFAULTS,
    QUIET_END,
    QUIET_START,
    VN_TZ,
    Part,
    Status,
    When,
    is_quiet,
    resolve_default,
)
from reminders.when.parse import parse_when

__all__ = [
    "DEFAULT_TIME",
    "PART_DEFAULTS",
    "QUIET_END",
    "QUIET_START",
    "VN_TZ",
    "Part",
    "Status",
    "When",
    "is_quiet",
    "parse_when",
    "resolve_default",
]
