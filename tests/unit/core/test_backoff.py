"""core.backoff: the bounds of each jitter mode, the cap, the retry-after floor, and the formulas it replaced."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.backoff import Jitter, backoff_s

EXAMPLES = settings(max_examples=200, deadline=None, database=None)

ATTEMPTS = st.integers(min_value=1, max_value=2000)
BASES = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
CAPS = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
DRAWS = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
SPREADS = st.floats(min_value=0.0, max_value=1.0)
MODES: list[Jitter] = ["none", "full", "equal", "proportional"]


def always(value: float) -> Callable[[], float]:
    return lambda: value


# ---- the exponential and its cap ---------------------------------------------------------------------------


def test_attempt_one_waits_base_then_doubles() -> None:
    assert [backoff_s(n, base_s=0.5) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_the_cap_bounds_the_exponential() -> None:
    assert [backoff_s(n, base_s=5.0, cap_s=30.0) for n in range(1, 6)] == [5.0, 10.0, 20.0, 30.0, 30.0]


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_s(0, base_s=1.0)


def test_spread_is_a_fraction() -> None:
    with pytest.raises(ValueError, match="spread"):
        backoff_s(1, base_s=1.0, jitter="proportional", spread=1.5)


def test_unknown_jitter_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        backoff_s(1, base_s=1.0, jitter="half")  # type: ignore[arg-type]


def test_a_huge_attempt_is_the_cap_not_an_overflow() -> None:
    assert backoff_s(10**9, base_s=60.0, cap_s=1800.0) == 1800.0
    assert backoff_s(10**9, base_s=60.0) == math.inf


@EXAMPLES
@given(ATTEMPTS, BASES, CAPS)
def test_no_jitter_is_min_of_cap_and_doubling(attempt: int, base: float, cap: float) -> None:
    wait = backoff_s(attempt, base_s=base, cap_s=cap)
    assert 0.0 <= wait <= cap
    if attempt < 1000:
        assert wait == min(cap, base * 2 ** (attempt - 1))


@EXAMPLES
@given(ATTEMPTS, BASES, CAPS, st.sampled_from(MODES), DRAWS)
def test_the_cap_grows_monotonically(attempt: int, base: float, cap: float, mode: Jitter, r: float) -> None:
    # With the same draw, a later attempt never waits less (until both sit at the cap).
    this = backoff_s(attempt, base_s=base, cap_s=cap, jitter=mode, spread=0.2, random=always(r))
    after = backoff_s(attempt + 1, base_s=base, cap_s=cap, jitter=mode, spread=0.2, random=always(r))
    assert after >= this


# ---- each jitter mode's bounds -----------------------------------------------------------------------------


@EXAMPLES
@given(ATTEMPTS, BASES, CAPS, DRAWS)
def test_full_jitter_is_anywhere_below_the_capped_wait(attempt: int, base: float, cap: float, r: float) -> None:
    capped = backoff_s(attempt, base_s=base, cap_s=cap)
    wait = backoff_s(attempt, base_s=base, cap_s=cap, jitter="full", random=always(r))
    assert 0.0 <= wait <= capped
    assert wait == r * capped


@EXAMPLES
@given(ATTEMPTS, BASES, CAPS, DRAWS)
def test_equal_jitter_keeps_half_fixed(attempt: int, base: float, cap: float, r: float) -> None:
    capped = backoff_s(attempt, base_s=base, cap_s=cap)
    wait = backoff_s(attempt, base_s=base, cap_s=cap, jitter="equal", random=always(r))
    assert capped / 2 <= wait <= capped


@EXAMPLES
@given(ATTEMPTS, BASES, CAPS, SPREADS, DRAWS)
def test_proportional_jitter_stays_within_the_spread(
    attempt: int, base: float, cap: float, spread: float, r: float
) -> None:
    capped = backoff_s(attempt, base_s=base, cap_s=cap)
    wait = backoff_s(attempt, base_s=base, cap_s=cap, jitter="proportional", spread=spread, random=always(r))
    assert capped * (1 - spread) - 1e-9 * capped <= wait <= capped * (1 + spread) + 1e-9 * capped


@pytest.mark.parametrize(
    ("mode", "low", "high"),
    [("none", 8.0, 8.0), ("full", 0.0, 8.0), ("equal", 4.0, 8.0), ("proportional", 6.4, 9.6)],
)
def test_the_ends_of_each_mode(mode: Jitter, low: float, high: float) -> None:
    def at(r: float) -> float:
        return backoff_s(4, base_s=1.0, cap_s=60.0, jitter=mode, spread=0.2, random=always(r))

    assert at(0.0) == pytest.approx(low)
    assert at(1.0) == pytest.approx(high)


def test_the_real_random_source_is_used_by_default() -> None:
    waits = {backoff_s(3, base_s=1.0, jitter="full") for _ in range(50)}
    assert len(waits) > 1
    assert all(0.0 <= w <= 4.0 for w in waits)


# ---- the server's retry-after ------------------------------------------------------------------------------


@EXAMPLES
@given(ATTEMPTS, BASES, CAPS, st.sampled_from(MODES), DRAWS, st.floats(min_value=0.0, max_value=1e7))
def test_retry_after_is_a_floor(attempt: int, base: float, cap: float, mode: Jitter, r: float, after: float) -> None:
    without = backoff_s(attempt, base_s=base, cap_s=cap, jitter=mode, spread=0.2, random=always(r))
    wait = backoff_s(attempt, base_s=base, cap_s=cap, jitter=mode, spread=0.2, random=always(r), retry_after_s=after)
    assert wait == max(without, after)  # beyond the cap too: asking earlier only earns another 429


def test_retry_after_can_be_capped_too() -> None:
    assert backoff_s(1, base_s=0.0, cap_s=60.0, retry_after_s=90.0, cap_retry_after=True) == 60.0
    assert backoff_s(1, base_s=0.0, cap_s=60.0, retry_after_s=3.0, cap_retry_after=True) == 3.0


def test_none_retry_after_is_no_floor() -> None:
    assert backoff_s(1, base_s=0.25, cap_s=2.0, jitter="full", retry_after_s=None, random=always(0.0)) == 0.0


# ---- the formulas the callers used before, unchanged -------------------------------------------------------


@EXAMPLES
@given(st.integers(min_value=1, max_value=4), DRAWS)
def test_reply_retries_in_the_adapter(attempt: int, r: float) -> None:
    # bot/adapter.py: 0.5 · 2^(n-1) · uniform(0.8, 1.2), no cap
    old = 0.5 * 2 ** (attempt - 1) * (0.8 + (1.2 - 0.8) * r)
    new = backoff_s(attempt, base_s=0.5, jitter="proportional", spread=0.2, random=always(r))
    assert new == pytest.approx(old, rel=1e-12)


@EXAMPLES
@given(st.integers(min_value=0, max_value=60))
def test_broadcast_and_webhook_retries(attempts: int) -> None:
    # broadcast/engine.py and sandbox/telegram/webhook.py: min(max, base · 2^attempts), attempts so far from 0
    assert backoff_s(attempts + 1, base_s=1.0, cap_s=60.0) == min(60.0, 1.0 * 2**attempts)
    assert backoff_s(attempts + 1, base_s=0.1, cap_s=5.0) == min(5.0, 0.1 * (2**attempts))


@EXAMPLES
@given(st.floats(min_value=0.0, max_value=600.0), st.integers(min_value=1, max_value=5))
def test_broadcast_report_waits(after: float, attempt: int) -> None:
    # broadcast/engine.py, a staff report: min(retry_after, max)
    new = backoff_s(attempt, base_s=0.0, cap_s=60.0, retry_after_s=after, cap_retry_after=True)
    assert new == min(after, 60.0)


@EXAMPLES
@given(st.integers(min_value=1, max_value=40), st.floats(min_value=0.0, max_value=120.0))
def test_reminder_and_spool_retries(attempt: int, after: float) -> None:
    # reminders/dispatcher.py: max(retry_after, min(max, base · 2^(n-1)))
    old = max(after, min(900.0, 5.0 * 2 ** (attempt - 1)))
    assert backoff_s(attempt, base_s=5.0, cap_s=900.0, retry_after_s=after) == old
    # bot/spool.py: max(retry_after, min(MAX_BACKOFF_S, EVERY_S · 2^attempts)), attempts so far from 0
    old = max(after, min(300.0, 5.0 * 2 ** (attempt - 1)))
    assert backoff_s(attempt, base_s=5.0, cap_s=300.0, retry_after_s=after) == old


@EXAMPLES
@given(st.integers(min_value=1, max_value=8), DRAWS, st.one_of(st.none(), st.floats(min_value=0.0, max_value=10.0)))
def test_portal_client_retries(attempt: int, r: float, after: float | None) -> None:
    # portal/client.py: full jitter, r · min(max, base · 2^(n-1)), raised to Retry-After
    old = r * min(2.0, 0.25 * 2 ** (attempt - 1))
    if after is not None:
        old = max(old, after)
    new = backoff_s(attempt, base_s=0.25, cap_s=2.0, jitter="full", retry_after_s=after, random=always(r))
    assert new == old


@EXAMPLES
@given(st.integers(min_value=1, max_value=100), DRAWS, st.floats(min_value=1e3, max_value=1e7))
def test_portal_poller_retries(failures: int, r: float, cap: float) -> None:
    # portal/poller.py: equal jitter, c/2 + r · c/2 with c = min(max, retry · 2^min(failures-1, 16))
    c = min(cap, 60.0 * 2 ** min(failures - 1, 16))
    old = c / 2 + r * c / 2
    new = backoff_s(min(failures - 1, 16) + 1, base_s=60.0, cap_s=cap, jitter="equal", random=always(r))
    assert new == old


def test_sqlite_busy_retries() -> None:
    # store/sqlite_inline.py: 1 ms doubling to 100 ms (it used to double the previous delay)
    delay, old = 0.001, []
    for _ in range(12):
        old.append(delay)
        delay = min(delay * 2, 0.1)
    assert [backoff_s(n, base_s=0.001, cap_s=0.1) for n in range(1, 13)] == old
