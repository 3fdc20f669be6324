"""Tests for the reminder time-expression parser (reminders/when/): a table of requests, then the rules."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reminders.when import DEFAULT_TIME, VN_TZ, When, parse_when, resolve_default


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=VN_TZ)


# Fixed "now"s, local time in Việt Nam.
WED = local(2026, 6, 10, 10, 0)  # Wednesday 10 June 2026, 10:00
FRI = local(2026, 6, 12, 9, 0)  # Friday 12 June 2026, 09:00
SUN = local(2026, 6, 14, 10, 0)  # Sunday 14 June 2026
LATE = local(2026, 6, 10, 23, 50)  # Wednesday, ten to midnight
NYE = local(2026, 12, 31, 20, 0)  # Thursday 31 December 2026, 20:00
LEAP = local(2028, 2, 28, 12, 0)  # Monday 28 February 2028 (a leap year)
JAN31 = local(2026, 1, 31, 10, 0)  # Saturday 31 January 2026
AFTERNOON = local(2026, 6, 10, 15, 0)  # Wednesday 15:00

OK, MISSING, PAST, AMBIGUOUS, INVALID = "ok", "missing", "past", "ambiguous", "invalid"

# (text, now, status, at as "YYYY-MM-DD HH:MM" local or None, has_time, task)
CASES: list[tuple[str, datetime, str, str | None, bool, str]] = [
    # --- the brief's own examples
    ("nhắc tôi 8h sáng mai đi công an phường", WED, OK, "2026-06-11 08:00", True, "đi công an phường"),
    ("nhac toi 8h sang mai di cong an phuong", WED, OK, "2026-06-11 08:00", True, "di cong an phuong"),
    ("nhac toi thu 6 nop bo sung", WED, OK, "2026-06-12 00:00", False, "nop bo sung"),
    ("nhắc tôi thứ sáu nộp bổ sung", WED, OK, "2026-06-12 00:00", False, "nộp bổ sung"),
    ("đặt lời nhắc ngày 15/12", WED, OK, "2026-12-15 00:00", False, ""),
    ("dat loi nhac ngay 15/12", WED, OK, "2026-12-15 00:00", False, ""),
    ("remind me to bring my documents on Monday", WED, OK, "2026-06-15 00:00", False, "bring my documents"),
    ("set a reminder for tomorrow at 9am", WED, OK, "2026-06-11 09:00", True, ""),
    # --- relative days (Vietnamese)
    ("hôm nay nộp hồ sơ", WED, OK, "2026-06-10 00:00", False, "nộp hồ sơ"),
    ("hom nay", WED, OK, "2026-06-10 00:00", False, ""),
    ("ngày mai đi làm căn cước", WED, OK, "2026-06-11 00:00", False, "đi làm căn cước"),
    ("mai", WED, OK, "2026-06-11 00:00", False, ""),
    ("mốt nộp tiền", WED, OK, "2026-06-12 00:00", False, "nộp tiền"),
    ("ngày kia", WED, OK, "2026-06-12 00:00", False, ""),
    ("ngay mot", WED, OK, "2026-06-12 00:00", False, ""),
    ("sáng mốt", WED, OK, "2026-06-12 00:00", False, ""),
    ("3 ngày nữa", WED, OK, "2026-06-13 00:00", False, ""),
    ("3 ngay nua gia han", WED, OK, "2026-06-13 00:00", False, "gia han"),
    ("sau 3 ngày", WED, OK, "2026-06-13 00:00", False, ""),
    ("3 hôm sau", WED, OK, "2026-06-13 00:00", False, ""),
    ("nhắc em 3 hôm nữa lấy kết quả", WED, OK, "2026-06-13 00:00", False, "lấy kết quả"),
    ("2 tuần nữa", WED, OK, "2026-06-24 00:00", False, ""),
    ("1 tháng nữa", WED, OK, "2026-07-10 00:00", False, ""),
    ("hai ngày nữa", WED, OK, "2026-06-12 00:00", False, ""),
    ("hôm qua", WED, PAST, "2026-06-09 00:00", False, ""),
    ("hôm kia", WED, PAST, "2026-06-08 00:00", False, ""),
    ("3 ngày tới", WED, MISSING, None, False, "3 ngày tới"),  # a span of days, not a point in time
    # --- weeks, weekends, months
    ("tuần sau", WED, OK, "2026-06-15 00:00", False, ""),
    ("tuan toi", WED, OK, "2026-06-15 00:00", False, ""),
    ("tuần sau nữa", WED, OK, "2026-06-22 00:00", False, ""),
    ("cuối tuần đi chợ", WED, OK, "2026-06-13 00:00", False, "đi chợ"),
    ("cuối tuần sau", WED, OK, "2026-06-20 00:00", False, ""),
    ("tháng sau", WED, OK, "2026-07-01 00:00", False, ""),
    ("cuối tháng", WED, OK, "2026-06-30 00:00", False, ""),
    ("tuần sau thứ 6", WED, OK, "2026-06-19 00:00", False, ""),
    # --- weekdays (today is Wednesday)
    ("thứ 2", WED, OK, "2026-06-15 00:00", False, ""),
    ("thứ hai", WED, OK, "2026-06-15 00:00", False, ""),
    ("thu hai", WED, OK, "2026-06-15 00:00", False, ""),
    ("T2", WED, OK, "2026-06-15 00:00", False, ""),
    ("thứ ba", WED, OK, "2026-06-16 00:00", False, ""),
    ("thứ năm", WED, OK, "2026-06-11 00:00", False, ""),
    ("thu nam", WED, OK, "2026-06-11 00:00", False, ""),
    ("thứ bảy", WED, OK, "2026-06-13 00:00", False, ""),
    ("t7", WED, OK, "2026-06-13 00:00", False, ""),
    ("chủ nhật", WED, OK, "2026-06-14 00:00", False, ""),
    ("chu nhat", WED, OK, "2026-06-14 00:00", False, ""),
    ("cn", WED, OK, "2026-06-14 00:00", False, ""),
    ("thứ 4", WED, OK, "2026-06-17 00:00", False, ""),  # today's weekday, no time: next week
    ("thứ tư", WED, OK, "2026-06-17 00:00", False, ""),
    ("8h thứ 4", WED, OK, "2026-06-17 08:00", True, ""),  # 08:00 today is gone
    ("20h thứ 4", WED, AMBIGUOUS, None, True, ""),  # tonight or next week
    ("thứ 4 này", WED, OK, "2026-06-10 00:00", False, ""),
    ("thứ 4 tới", WED, OK, "2026-06-17 00:00", False, ""),
    ("thứ sáu tuần sau", WED, OK, "2026-06-19 00:00", False, ""),
    ("thu 6 tuan toi", WED, OK, "2026-06-19 00:00", False, ""),
    ("thứ 6 tuần sau nữa", WED, OK, "2026-06-26 00:00", False, ""),
    ("thứ 7 tuần này", WED, OK, "2026-06-13 00:00", False, ""),
    ("nhắc tôi vào sáng thứ 2 đi nộp hồ sơ", WED, OK, "2026-06-15 00:00", False, "đi nộp hồ sơ"),
    ("7h tối thứ 6", WED, OK, "2026-06-12 19:00", True, ""),
    ("8:30 sáng thứ hai tuần sau", WED, OK, "2026-06-15 08:30", True, ""),
    # --- clock times (now 10:00: a time already gone today means tomorrow)
    ("8h", WED, OK, "2026-06-11 08:00", True, ""),
    ("8 giờ", WED, OK, "2026-06-11 08:00", True, ""),
    ("8 gio", WED, OK, "2026-06-11 08:00", True, ""),
    ("8g", WED, OK, "2026-06-11 08:00", True, ""),
    ("8h30", WED, OK, "2026-06-11 08:30", True, ""),
    ("8g30", WED, OK, "2026-06-11 08:30", True, ""),
    ("8:30", WED, OK, "2026-06-11 08:30", True, ""),
    ("8 giờ 30", WED, OK, "2026-06-11 08:30", True, ""),
    ("8 giờ 30 phút", WED, OK, "2026-06-11 08:30", True, ""),
    ("8 rưỡi", WED, OK, "2026-06-11 08:30", True, ""),
    ("8h ruoi", WED, OK, "2026-06-11 08:30", True, ""),
    ("8h kém 15", WED, OK, "2026-06-11 07:45", True, ""),
    ("tám giờ tối mai", WED, OK, "2026-06-11 20:00", True, ""),
    ("lúc 9", WED, OK, "2026-06-11 09:00", True, ""),
    ("11h", WED, OK, "2026-06-10 11:00", True, ""),
    ("20h", WED, OK, "2026-06-10 20:00", True, ""),
    ("0h", WED, OK, "2026-06-11 00:00", True, ""),
    ("5h", WED, AMBIGUOUS, None, True, ""),
    ("6 giờ", WED, AMBIGUOUS, None, True, ""),
    ("5h chiều", WED, OK, "2026-06-10 17:00", True, ""),
    ("5h sáng", WED, OK, "2026-06-11 05:00", True, ""),
    ("3h chiều mai", WED, OK, "2026-06-11 15:00", True, ""),
    ("nhắc tôi mai 2 giờ", WED, AMBIGUOUS, None, True, ""),
    ("8h tối", WED, OK, "2026-06-10 20:00", True, ""),
    ("8h toi", WED, OK, "2026-06-10 20:00", True, ""),
    ("tối 8h", WED, OK, "2026-06-10 20:00", True, ""),
    ("8 rưỡi tối", WED, OK, "2026-06-10 20:30", True, ""),
    ("nhac toi 8h ruoi toi nop ho so", WED, OK, "2026-06-10 20:30", True, "nop ho so"),
    ("12h trưa", WED, OK, "2026-06-10 12:00", True, ""),
    ("1h trưa mai", WED, OK, "2026-06-11 13:00", True, ""),
    ("11h đêm nay", WED, OK, "2026-06-10 23:00", True, ""),
    ("2h đêm nay", WED, OK, "2026-06-11 02:00", True, ""),  # after midnight: the next calendar day
    ("12h đêm", WED, OK, "2026-06-11 00:00", True, ""),
    ("sang mai 9h", WED, OK, "2026-06-11 09:00", True, ""),
    ("8h sáng nay", WED, PAST, "2026-06-10 08:00", True, ""),
    ("sau 2 giờ chiều", WED, OK, "2026-06-10 14:00", True, "sau"),  # "after 2 pm", not "in 2 hours"
    ("lúc 8 giờ 30 phút sáng ngày 15/12/2026", WED, OK, "2026-12-15 08:30", True, ""),
    ("Nhắc mình đi khám lúc 14:30 ngày 20/6", WED, OK, "2026-06-20 14:30", True, "đi khám"),
    ("nhắc tôi nộp hồ sơ vào lúc 9h sáng mai nhé", WED, OK, "2026-06-11 09:00", True, "nộp hồ sơ"),
    ("NHẮC TÔI   8H   SÁNG   MAI   nộp hồ sơ", WED, OK, "2026-06-11 08:00", True, "nộp hồ sơ"),
    ("nhac  toi 8g30 sang mai", WED, OK, "2026-06-11 08:30", True, ""),
    # --- parts of the day alone
    ("tối mai", WED, OK, "2026-06-11 00:00", False, ""),
    ("trưa mai", WED, OK, "2026-06-11 00:00", False, ""),
    ("chiều nay", WED, OK, "2026-06-10 00:00", False, ""),
    ("sáng nay", WED, OK, "2026-06-10 00:00", False, ""),
    ("sáng nay", AFTERNOON, PAST, "2026-06-10 00:00", False, ""),
    ("nhắc tôi tối nay gọi điện", WED, OK, "2026-06-10 00:00", False, "gọi điện"),
    ("nhắc tôi chiều nộp hồ sơ", WED, OK, "2026-06-10 00:00", False, "nộp hồ sơ"),
    ("nhắc tôi chiều nộp hồ sơ", local(2026, 6, 10, 19, 0), OK, "2026-06-11 00:00", False, "nộp hồ sơ"),
    # --- relative instants
    ("30 phút nữa", WED, OK, "2026-06-10 10:30", True, ""),
    ("sau 2 tiếng nữa uống thuốc", WED, OK, "2026-06-10 12:00", True, "uống thuốc"),
    ("nửa tiếng nữa", WED, OK, "2026-06-10 10:30", True, ""),
    ("sau 2 giờ", WED, OK, "2026-06-10 12:00", True, ""),
    # --- dates, day first
    ("ngày 15", WED, OK, "2026-06-15 00:00", False, ""),
    ("ngày 5", WED, OK, "2026-07-05 00:00", False, ""),
    ("mùng 5", WED, OK, "2026-07-05 00:00", False, ""),
    ("ngày 15 tháng 12", WED, OK, "2026-12-15 00:00", False, ""),
    ("ngày 15 tháng 12 năm 2026", WED, OK, "2026-12-15 00:00", False, ""),
    ("15 tháng 12 năm 2025", WED, PAST, "2025-12-15 00:00", False, ""),
    ("15-12", WED, OK, "2026-12-15 00:00", False, ""),
    ("15/12/2026", WED, OK, "2026-12-15 00:00", False, ""),
    ("15-12-2026", WED, OK, "2026-12-15 00:00", False, ""),
    ("15.12.2026", WED, OK, "2026-12-15 00:00", False, ""),
    ("15/12/26", WED, OK, "2026-12-15 00:00", False, ""),
    ("15/12/2025", WED, PAST, "2025-12-15 00:00", False, ""),
    ("1/1", WED, OK, "2027-01-01 00:00", False, ""),
    ("ngày 10/6", WED, OK, "2026-06-10 00:00", False, ""),  # today counts
    ("8h ngày 10/6", WED, PAST, "2026-06-10 08:00", True, ""),  # a named day does not roll over
    ("nhắc tôi 30/2 nộp", WED, INVALID, None, False, "nộp"),
    ("31/4", WED, INVALID, None, False, ""),
    ("29/2", WED, OK, "2028-02-29 00:00", False, ""),
    ("29/2/2027", WED, INVALID, None, False, ""),
    ("25h", WED, INVALID, None, True, ""),
    ("8h75", WED, INVALID, None, True, ""),
    # --- nothing to read, or words that only look like time words
    ("nhắc tôi", WED, MISSING, None, False, ""),
    ("nộp hồ sơ", WED, MISSING, None, False, "nộp hồ sơ"),
    ("nhắc tôi tôi đi làm", WED, MISSING, None, False, "tôi đi làm"),  # "tôi" (I) is not "tối"
    ("mai tôi đi làm", WED, OK, "2026-06-11 00:00", False, "tôi đi làm"),
    ("mai toi di lam", WED, OK, "2026-06-11 00:00", False, "toi di lam"),  # bare "toi" after a day: "tôi"
    ("mai sang nha ba", WED, OK, "2026-06-11 00:00", False, "sang nha ba"),  # "sang" = go over
    ("từ trước tới nay chưa nộp", WED, MISSING, None, False, "từ trước tới nay chưa nộp"),
    ("nhac toi dem giay to", WED, MISSING, None, False, "dem giay to"),  # "đem" = bring
    ("nhac toi mot viec", WED, MISSING, None, False, "mot viec"),  # "một" = one
    ("nhắc tôi gọi chị Mai", WED, MISSING, None, False, "gọi chị Mai"),
    ("bay gio", WED, MISSING, None, False, "bay gio"),  # "bây giờ" = now
    ("tra hồ sơ 38.98.H29-210519-0013", WED, MISSING, None, False, "tra hồ sơ 38.98.H29-210519-0013"),
    ("phí theo Nghị định 69/2024", WED, MISSING, None, False, "phí theo Nghị định 69/2024"),
    ("nhắc tôi nộp lần thứ 2 vào thứ 6", WED, OK, "2026-06-12 00:00", False, "nộp lần thứ 2"),  # an ordinal
    ("bước thứ 3", WED, MISSING, None, False, "bước thứ 3"),
    ("nop ho so thu 5", WED, OK, "2026-06-11 00:00", False, "nop ho so"),
    ("bot ơi, nhắc tôi ngày mai nộp hồ sơ nhé", WED, OK, "2026-06-11 00:00", False, "nộp hồ sơ"),
    (
        "gọi chị Lan nhắc chị ấy nộp hồ sơ thứ 5",  # "nhắc" mid-sentence is part of the task
        WED,
        OK,
        "2026-06-11 00:00",
        False,
        "gọi chị Lan nhắc chị ấy nộp hồ sơ",
    ),
    # --- English
    ("today", WED, OK, "2026-06-10 00:00", False, ""),
    ("tomorrow", WED, OK, "2026-06-11 00:00", False, ""),
    ("the day after tomorrow", WED, OK, "2026-06-12 00:00", False, ""),
    ("yesterday", WED, PAST, "2026-06-09 00:00", False, ""),
    ("in 3 days call mom", WED, OK, "2026-06-13 00:00", False, "call mom"),
    ("in a week", WED, OK, "2026-06-17 00:00", False, ""),
    ("2 weeks from now", WED, OK, "2026-06-24 00:00", False, ""),
    ("next week", WED, OK, "2026-06-15 00:00", False, ""),
    ("next week on Friday", WED, OK, "2026-06-19 00:00", False, ""),
    ("this weekend", WED, OK, "2026-06-13 00:00", False, ""),
    ("at 9am", WED, OK, "2026-06-11 09:00", True, ""),
    ("9:30 pm", WED, OK, "2026-06-10 21:30", True, ""),
    ("at 21:00", WED, OK, "2026-06-10 21:00", True, ""),
    ("at 9", WED, OK, "2026-06-11 09:00", True, ""),
    ("at 5 call mom", WED, AMBIGUOUS, None, True, "call mom"),
    ("noon", WED, OK, "2026-06-10 12:00", True, ""),
    ("tomorrow at noon", WED, OK, "2026-06-11 12:00", True, ""),
    ("midnight", WED, OK, "2026-06-11 00:00", True, ""),
    ("tomorrow morning", WED, OK, "2026-06-11 00:00", False, ""),
    ("tomorrow evening", WED, OK, "2026-06-11 00:00", False, ""),
    ("tonight at 8", WED, OK, "2026-06-10 20:00", True, ""),
    ("9 in the morning", WED, OK, "2026-06-11 09:00", True, ""),
    ("in 2 hours", WED, OK, "2026-06-10 12:00", True, ""),
    ("in half an hour", WED, OK, "2026-06-10 10:30", True, ""),
    ("on Friday", WED, OK, "2026-06-12 00:00", False, ""),
    ("this Friday", WED, OK, "2026-06-12 00:00", False, ""),
    ("next Friday", WED, OK, "2026-06-19 00:00", False, ""),
    ("remind me on wed to call", WED, OK, "2026-06-17 00:00", False, "call"),
    ("Wednesday at 5pm", WED, AMBIGUOUS, None, True, ""),
    ("Wednesday at 8am", WED, OK, "2026-06-17 08:00", True, ""),
    ("this Wednesday", WED, OK, "2026-06-10 00:00", False, ""),
    ("Dec 15 pay tax", WED, OK, "2026-12-15 00:00", False, "pay tax"),
    ("15 December", WED, OK, "2026-12-15 00:00", False, ""),
    ("December 15th, 2026", WED, OK, "2026-12-15 00:00", False, ""),
    ("15th of December 2026", WED, OK, "2026-12-15 00:00", False, ""),
    ("on the 5th pay rent", WED, OK, "2026-07-05 00:00", False, "pay rent"),
    ("12/15", WED, INVALID, None, False, ""),  # day/month, as Vietnamese write dates: month 15 does not exist
    ("remind me tomorrow to call mom", WED, OK, "2026-06-11 00:00", False, "call mom"),
    ("remind me to call mom at 5pm tomorrow", WED, OK, "2026-06-11 17:00", True, "call mom"),
    ("Remind me to renew my passport on Wednesday at 5pm", WED, AMBIGUOUS, None, True, "renew my passport"),
    (
        "set a reminder to renew my licence next Friday at 5pm",
        WED,
        OK,
        "2026-06-19 17:00",
        True,
        "renew my licence",
    ),
    ("good morning, remind me tomorrow morning to pay", WED, OK, "2026-06-11 00:00", False, "pay"),
    ("good morning", WED, MISSING, None, False, "good morning"),
    ("I sat down", WED, MISSING, None, False, "I sat down"),
    # --- a weekday equal to today (Friday 09:00)
    ("thứ 6", FRI, OK, "2026-06-19 00:00", False, ""),
    ("thứ 6 8h", FRI, OK, "2026-06-19 08:00", True, ""),
    ("8h tối thứ 6", FRI, AMBIGUOUS, None, True, ""),
    ("thứ 6 này", FRI, OK, "2026-06-12 00:00", False, ""),
    ("on Friday at 10am", FRI, AMBIGUOUS, None, True, ""),
    # --- Sunday: the week starts on Monday
    ("thứ 2 tuần sau", SUN, OK, "2026-06-15 00:00", False, ""),
    ("chủ nhật tuần sau", SUN, OK, "2026-06-21 00:00", False, ""),
    ("cuối tuần", SUN, OK, "2026-06-14 00:00", False, ""),
    ("cn", SUN, OK, "2026-06-21 00:00", False, ""),
    # --- midnight rollover (now 23:50)
    ("8h", LATE, OK, "2026-06-11 08:00", True, ""),
    ("mai", LATE, OK, "2026-06-11 00:00", False, ""),
    ("hôm nay", LATE, OK, "2026-06-10 00:00", False, ""),
    ("5 phút nữa", LATE, OK, "2026-06-10 23:55", True, ""),
    ("15 phút nữa", LATE, OK, "2026-06-11 00:05", True, ""),
    ("12h đêm nay", LATE, OK, "2026-06-11 00:00", True, ""),
    ("tối nay", LATE, PAST, "2026-06-10 00:00", False, ""),
    ("đêm nay", LATE, OK, "2026-06-10 00:00", False, ""),
    # --- end of year (Thursday 31 December, 20:00)
    ("mai", NYE, OK, "2027-01-01 00:00", False, ""),
    ("15/1", NYE, OK, "2027-01-15 00:00", False, ""),
    ("31/12", NYE, OK, "2026-12-31 00:00", False, ""),
    ("tháng sau", NYE, OK, "2027-01-01 00:00", False, ""),
    ("tuần sau", NYE, OK, "2027-01-04 00:00", False, ""),
    ("thứ 6", NYE, OK, "2027-01-01 00:00", False, ""),
    ("9h tối nay", NYE, OK, "2026-12-31 21:00", True, ""),
    ("8h tối nay", NYE, PAST, "2026-12-31 20:00", True, ""),  # exactly now is not ahead
    # --- end of month, 29 February
    ("1 tháng nữa", JAN31, OK, "2026-02-28 00:00", False, ""),
    ("mai", JAN31, OK, "2026-02-01 00:00", False, ""),
    ("cuối tuần", JAN31, OK, "2026-01-31 00:00", False, ""),
    ("ngày 31", JAN31, OK, "2026-01-31 00:00", False, ""),
    ("ngày 30", JAN31, OK, "2026-03-30 00:00", False, ""),  # February has no 30th
    ("mai", LEAP, OK, "2028-02-29 00:00", False, ""),
    ("29/2", LEAP, OK, "2028-02-29 00:00", False, ""),
    ("ngày 29", LEAP, OK, "2028-02-29 00:00", False, ""),
    ("1 năm nữa", local(2028, 2, 29, 9, 0), OK, "2029-02-28 00:00", False, ""),
    ("29/2/2029", LEAP, INVALID, None, False, ""),
]


def fmt(at: datetime | None) -> str | None:
    return at.strftime("%Y-%m-%d %H:%M") if at else None


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 100


@pytest.mark.parametrize(
    ("text", "now", "status", "at", "has_time", "task"),
    CASES,
    ids=[f"{c[0]}@{c[1]:%m-%d %H:%M}" for c in CASES],
)
def test_table(text: str, now: datetime, status: str, at: str | None, has_time: bool, task: str) -> None:
    w = parse_when(text, now)
    assert (w.status, fmt(w.at), w.has_time, w.task) == (status, at, has_time, task)
    if w.at is not None:
        assert w.at.tzinfo == VN_TZ


def test_ambiguous_hour_offers_both_readings_in_order() -> None:
    w = parse_when("nhắc tôi 5h nộp hồ sơ", WED)
    assert w.at is None
    assert [fmt(a) for a in w.alternatives] == ["2026-06-10 17:00", "2026-06-11 05:00"]
    assert w.task == "nộp hồ sơ"


def test_ambiguous_weekday_equal_to_today_offers_today_and_next_week() -> None:
    w = parse_when("20h thứ 4", WED)
    assert [fmt(a) for a in w.alternatives] == ["2026-06-10 20:00", "2026-06-17 20:00"]


def test_ambiguous_hour_on_a_named_day_drops_the_reading_already_gone() -> None:
    assert fmt(parse_when("5h hôm nay", WED).at) == "2026-06-10 17:00"
    assert parse_when("5h hôm nay", WED).status == "ok"


def test_has_date_and_part() -> None:
    w = parse_when("tối mai", WED)
    assert (w.has_date, w.has_time, w.part) == (True, False, "evening")
    w = parse_when("8h", WED)
    assert (w.has_date, w.has_time, w.part) == (False, True, None)
    assert parse_when("tonight", WED).part == "evening"
    assert parse_when("tomorrow morning", WED).part == "morning"


def test_span_points_into_the_callers_string() -> None:
    text = "nhắc tôi 8h sáng mai đi công an phường"
    w = parse_when(text, WED)
    assert w.span is not None
    assert text[w.span[0] : w.span[1]] == "8h sáng mai"
    assert parse_when("nộp hồ sơ", WED).span is None


def test_decomposed_unicode_is_read_and_span_stays_in_the_original_string() -> None:
    text = unicodedata.normalize("NFD", "Nhắc tôi 8h sáng mai đi công an phường")
    w = parse_when(text, WED)
    assert (w.status, fmt(w.at), w.task) == ("ok", "2026-06-11 08:00", "đi công an phường")
    assert w.span is not None
    assert unicodedata.normalize("NFC", text[w.span[0] : w.span[1]]) == "8h sáng mai"


def test_explicit_time_in_quiet_hours_is_kept_and_flagged() -> None:
    w = parse_when("5h sáng mai", WED)
    assert (fmt(w.at), w.in_quiet_hours) == ("2026-06-11 05:00", True)
    assert parse_when("8h sáng mai", WED).in_quiet_hours is False
    assert parse_when("9:30 pm", WED).in_quiet_hours is True


def test_now_in_another_zone_is_converted() -> None:
    now_utc = datetime(2026, 6, 9, 20, 0, tzinfo=UTC)  # 03:00 on 10 June in Việt Nam
    w = parse_when("mai 8h", now_utc)
    assert fmt(w.at) == "2026-06-11 08:00"
    assert w.at is not None and w.at.utcoffset() == timedelta(hours=7)


def test_other_time_zone() -> None:
    tz = ZoneInfo("Europe/Berlin")
    w = parse_when("tomorrow at 9am", datetime(2026, 6, 10, 10, 0, tzinfo=tz), tz)
    assert w.at == datetime(2026, 6, 11, 9, 0, tzinfo=tz)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_when("mai", datetime(2026, 6, 10, 10, 0))  # naive on purpose


def test_spellings_agree() -> None:
    variants = ["Thứ Sáu tuần sau 8h sáng", "thu 6 tuan sau 8h sang", "THỨ 6  TUẦN TỚI  8G SÁNG", "t6 tuần sau 8:00"]
    assert {fmt(parse_when(v, WED).at) for v in variants} == {"2026-06-19 08:00"}


# --- resolve_default: the product rules for reminders given without a time


def test_default_time_is_0730_local() -> None:
    w = resolve_default(parse_when("mai nộp hồ sơ", WED), WED)
    assert (fmt(w.at), w.has_time, w.in_quiet_hours, w.task) == ("2026-06-11 07:30", False, False, "nộp hồ sơ")
    assert DEFAULT_TIME.hour == 7 and DEFAULT_TIME.minute == 30


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("sáng mai", "2026-06-11 07:30"),
        ("trưa mai", "2026-06-11 11:30"),
        ("chiều mai", "2026-06-11 14:00"),
        ("tối mai", "2026-06-11 19:00"),
        ("đêm mai", "2026-06-11 20:30"),  # night, but not inside quiet hours
        ("tuần sau", "2026-06-15 07:30"),
    ],
)
def test_default_follows_the_part_of_day(text: str, at: str) -> None:
    assert fmt(resolve_default(parse_when(text, WED), WED).at) == at


@pytest.mark.parametrize(
    ("now", "at"),
    [
        (local(2026, 6, 10, 6, 0), "2026-06-10 07:30"),  # the default is still ahead
        (local(2026, 6, 10, 15, 10), "2026-06-10 15:30"),  # gone: next half hour at least 15 minutes away
        (local(2026, 6, 10, 15, 20), "2026-06-10 16:00"),
        (local(2026, 6, 10, 20, 50), "2026-06-11 07:30"),  # 21:30 would be quiet hours: next morning
        (local(2026, 6, 10, 22, 0), "2026-06-11 07:30"),
    ],
)
def test_default_for_today_avoids_the_past_and_quiet_hours(now: datetime, at: str) -> None:
    w = resolve_default(parse_when("hôm nay nộp hồ sơ", now), now)
    assert (fmt(w.at), w.in_quiet_hours) == (at, False)


def test_explicit_time_is_not_touched_by_defaults() -> None:
    w = parse_when("5h sáng mai", WED)
    assert resolve_default(w, WED) == w


@pytest.mark.parametrize("text", ["5h", "nộp hồ sơ", "30/2", "hôm qua"])
def test_defaults_leave_unresolved_answers_alone(text: str) -> None:
    w = parse_when(text, WED)
    assert resolve_default(w, WED) == w


# --- properties over arbitrary input

_VOCAB = (
    "nhắc tôi mai mốt sáng tối toi sang đêm chiều trưa thứ 6 t2 cn tuần sau tới nay 8h 5h 20h 8:30 15/12 30/2 "
    "ngày 3 nữa rưỡi kém lúc vào tomorrow at 9am next friday in days hours noon , . 0h 12h 2028 29/2 "
    "remind me to nộp hồ sơ"
)
_WORDS = st.sampled_from(_VOCAB.split())


def _check_invariants(w: When, text: str, now: datetime) -> None:
    assert w.status in ("ok", "missing", "past", "ambiguous", "invalid")
    assert (w.status == "ambiguous") == bool(w.alternatives)
    assert list(w.alternatives) == sorted(set(w.alternatives))
    if w.status in ("ok", "past"):
        assert w.at is not None and w.at.tzinfo == VN_TZ
    else:
        assert w.at is None
    if w.status == "ok" and w.has_time:
        assert w.at is not None and w.at > now
    if w.status == "ok" and not w.has_time:
        assert w.at is not None and w.at.date() >= now.astimezone(VN_TZ).date()
    if w.status == "missing":
        assert w.span is None
    if w.span is not None:
        assert 0 <= w.span[0] < w.span[1] <= len(text)
    d = resolve_default(w, now)
    if d.status == "ok" and not d.has_time:
        assert d.at is not None and d.at > now and not d.in_quiet_hours


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=8).map(" ".join), st.integers(min_value=0, max_value=60 * 24 * 400))
def test_invariants_on_mixed_phrases(text: str, minutes: int) -> None:
    now = WED + timedelta(minutes=minutes)
    _check_invariants(parse_when(text, now), text, now)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_never_raises(text: str) -> None:
    _check_invariants(parse_when(text, WED), text, WED)
