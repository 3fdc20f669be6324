"""When an ID card must be replaced: the age rules of the Law on Identification 2023, as pure functions.

Law 26/2023/QH15 (in force 1 July 2024), Art. 21: the card is replaced at ages 14, 25, 40 and 60; a card
issued within the 2 years before one of those ages stays valid until the next one — so a card issued at 58
or older never expires. Art. 46: a citizen-ID card (CCCD) issued before 1 July 2024 stays valid until the
date printed on it, which the Law on Citizen Identification 2014 (Art. 21) set by ages 25, 40 and 60 with the
same 2-year rule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

NEW_LAW_FROM = dt.date(2024, 7, 1)
AGES_2023 = (14, 25, 40, 60)
AGES_2014 = (25, 40, 60)
GRACE_YEARS = 2


def add_years(day: dt.date, years: int) -> dt.date:
    """The same day `years` later; 29 February falls back to 28 February in a common year.

    The Civil Code 2015 (Art. 148) ends a period counted in years on the matching day, and on the last day of
    the month when that day does not exist, so someone born on 29 February turns 25 on 28 February.
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def age_on(birth: dt.date, day: dt.date) -> int:
    """Completed years of age on `day` (a birthday counts from the day itself)."""
    years = day.year - birth.year
    return years if add_years(birth, years) <= day else years - 1


@dataclass(frozen=True, slots=True)
class Replacement:
    """The next mandatory replacement of a card, or none (`due is None`: valid for life)."""

    due: dt.date | None
    age: int | None  # the age at which it falls due
    issued_before_2024_law: bool  # the printed date prevails; `due` is what the 2014 rules would print

    @property
    def lifetime(self) -> bool:
        return self.due is None


def next_replacement(birth: dt.date, issued: dt.date) -> Replacement:
    """The replacement date of a card issued on `issued` to someone born on `birth`.

    Bounds are inclusive: a card issued exactly 2 years before an age milestone (e.g. on the 23rd birthday)
    counts as "within 2 years" and lasts to the next milestone; one issued on the 58th birthday never expires;
    one issued on the milestone birthday itself is a card of the new age band.
    """
    if issued < birth:
        raise ValueError("a card cannot be issued before its holder was born")
    old = issued < NEW_LAW_FROM
    for age in AGES_2014 if old else AGES_2023:
        milestone = add_years(birth, age)
        if issued >= milestone:
            continue  # this milestone is behind the card already
        if issued >= add_years(birth, age - GRACE_YEARS):
            continue  # issued within the 2 years before it: valid until the next milestone
        return Replacement(due=milestone, age=age, issued_before_2024_law=old)
    return Replacement(due=None, age=None, issued_before_2024_law=old)
