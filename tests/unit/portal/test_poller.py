"""Following dossiers: the poller against the emulator and a real database (SQLite file; PostgreSQL too)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from kernel.outbox import Throttled
from portal.breaker import CircuitBreaker
from portal.client import PortalClient
from portal.models import Dossier
from portal.poller import DossierPoller, RequestPacer, next_poll_time
from sandbox.portal.server import PortalEmulator, load_seed
from store.all_models import Base
from store.models import User
from store.models_dossier import DossierFollow
from store.models_handover import PortalErrorCount

PROCESSING = "000.00.12.H22-240101-0003"  # status 4
RECEIVED = "000.00.12.H22-240103-0002"  # status 2
NEW = "000.00.12.H22-240102-0001"  # status 1
INTERVAL = 1800.0
DIGITS = {d.code: d.phone[-4:] for d in load_seed().dossiers}


class Now:
    """The poller's idea of the current time, moved by the test."""

    def __init__(self) -> None:
        self.value = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += dt.timedelta(seconds=seconds)


@dataclass
class Inbox:
    """The `notify` callable: records what each citizen was told; can be made to fail like Telegram would."""

    sent: list[tuple[int, int, str, int, str]] = field(default_factory=list)
    fail_next: int = 0
    attempts: int = 0
    error: Exception = field(default_factory=lambda: ConnectionError("telegram unreachable"))

    async def __call__(self, user_id: int, chat_id: int, dossier: Dossier, lang: str) -> None:
        self.attempts += 1
        if self.fail_next:
            self.fail_next -= 1
            raise self.error
        self.sent.append((user_id, chat_id, dossier.code, int(dossier.status.code), lang))


@dataclass
class Deadlines:
    calls: list[tuple[int, str, list[tuple[str, dt.datetime]]]] = field(default_factory=list)

    async def __call__(self, user_id: int, code: str, deadlines: list[tuple[str, dt.datetime]]) -> None:
        self.calls.append((user_id, code, deadlines))


def _engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _fk(dbapi_conn: Any, _: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

    return engine


@pytest.fixture
async def emu() -> AsyncIterator[PortalEmulator]:
    emulator = PortalEmulator()
    await emulator.start("127.0.0.1", 0)
    yield emulator
    await emulator.stop()


@pytest.fixture
async def portal(emu: PortalEmulator, now: Now) -> AsyncIterator[PortalClient]:
    client = PortalClient(
        emu.base_url,
        emu.token_url,
        "citizen-assistant",
        "change-me",
        max_attempts=2,
        backoff_base_s=0.01,
        # The breaker's cool-down runs on the test's clock, so moving time on lets the probe through.
        breaker=CircuitBreaker(failure_threshold=3, reset_timeout_s=30, clock=lambda: now().timestamp()),
    )
    yield client
    await client.aclose()


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = _engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
def now() -> Now:
    return Now()


MakePoller = Callable[..., DossierPoller]


@pytest.fixture
def make_poller(portal: PortalClient, now: Now) -> MakePoller:
    def make(sessions: async_sessionmaker[AsyncSession], notify: Inbox, **kwargs: Any) -> DossierPoller:
        options: dict[str, Any] = {
            "interval_s": INTERVAL,
            "budget_rps": 1000.0,
            "now": now,
            "jitter": lambda: 0.5,
        }
        options.update(kwargs)
        return DossierPoller(sessions, portal, notify, **options)

    return make


async def follow(
    sessions: async_sessionmaker[AsyncSession],
    portal: PortalClient,
    now: Now,
    user_id: int,
    code: str,
    *,
    seen: bool = True,
    lang: str = "vi",
    digits: str | None = None,
) -> None:
    """What the capability does when a citizen taps "Follow": remember the state they have just seen."""
    # Following needs the second factor: the citizen typed the phone digits, the portal answered with a key.
    dossier = await portal.get_dossier(code, phone_last4=digits or DIGITS[code]) if seen else None
    async with sessions() as session, session.begin():
        if await session.get(User, user_id) is None:
            session.add(User(id=user_id, chat_id=user_id + 1_000_000, lang=lang))
            await session.flush()
        session.add(
            DossierFollow(
                user_id=user_id,
                code=code,
                fingerprint=dossier.fingerprint() if dossier else None,
                last_status=int(dossier.status.code) if dossier else None,
                next_poll_at=next_poll_time(code, now(), INTERVAL) if dossier else now(),
                created_at=now(),
                access_key=dossier.dossier_key if dossier else None,
            )
        )


async def follows(sessions: async_sessionmaker[AsyncSession]) -> list[DossierFollow]:
    async with sessions() as session:
        return list((await session.scalars(select(DossierFollow).order_by(DossierFollow.id))).all())


async def test_change_is_notified_exactly_once_also_across_a_restart(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
    make_poller: MakePoller,
) -> None:
    inbox = Inbox()
    deadlines = Deadlines()
    await follow(sessions, portal, now, 1, PROCESSING)
    poller = make_poller(sessions, inbox, on_deadlines=deadlines)

    assert (await poller.run_once()).requests == 0  # not due yet
    now.advance(INTERVAL)
    report = await poller.run_once()
    assert (report.requests, report.unchanged, inbox.sent) == (1, 1, [])

    emu.set_status(PROCESSING, 9, "Đã có kết quả")
    now.advance(INTERVAL)
    assert (await poller.run_once()).notified == 1
    assert inbox.sent == [(1, 1_000_001, PROCESSING, 9, "vi")]
    assert deadlines.calls == [(1, PROCESSING, [("appointment", dt.datetime(2024, 1, 10, 9, 30, tzinfo=dt.UTC))])]
    now.advance(INTERVAL)
    assert (await poller.run_once()).unchanged == 1
    assert len(inbox.sent) == 1

    # A restart: a new engine and a new poller on the same database know what was already announced.
    engine2 = _engine(db_url)
    try:
        restarted = make_poller(async_sessionmaker(engine2, expire_on_commit=False), inbox, on_deadlines=deadlines)
        now.advance(INTERVAL)
        assert (await restarted.run_once()).unchanged == 1
        assert len(inbox.sent) == 1

        emu.advance(PROCESSING)  # 9 → 10, result returned: final
        now.advance(INTERVAL)
        report = await restarted.run_once()
        assert (report.notified, report.ended) == (1, 1)
        assert inbox.sent[-1] == (1, 1_000_001, PROCESSING, 10, "vi")
        assert len(inbox.sent) == 2
        assert await follows(sessions) == []  # the code is forgotten once the dossier is closed
        assert deadlines.calls[-1] == (1, PROCESSING, [])
    finally:
        await engine2.dispose()


async def test_failed_notification_is_retried_not_lost_nor_repeated(
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
    make_poller: MakePoller,
) -> None:
    inbox = Inbox(fail_next=1)
    await follow(sessions, portal, now, 1, RECEIVED)
    emu.advance(RECEIVED)  # 2 → 4
    now.advance(INTERVAL)
    report = await make_poller(sessions, inbox, retry_s=60).run_once()
    assert (report.notify_failed, inbox.sent) == (1, [])
    (row,) = await follows(sessions)
    assert row.last_status == 2  # nothing recorded: the change is still news
    assert row.next_poll_at == now() + dt.timedelta(seconds=60)

    # The process died and came back: the new poller delivers it, once.
    restarted = make_poller(sessions, inbox, retry_s=60)
    now.advance(60)
    assert (await restarted.run_once()).notified == 1
    now.advance(INTERVAL)
    assert (await restarted.run_once()).notified == 0
    assert inbox.sent == [(1, 1_000_001, RECEIVED, 4, "vi")]
    assert inbox.attempts == 2


async def test_a_throttled_notice_is_tried_again_when_telegram_says_not_a_retry_period_later(
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
    make_poller: MakePoller,
) -> None:
    inbox = Inbox(fail_next=1, error=Throttled(3.0, "telegram 429"))
    await follow(sessions, portal, now, 1, RECEIVED)
    emu.advance(RECEIVED)  # 2 → 4
    now.advance(INTERVAL)
    poller = make_poller(sessions, inbox, retry_s=60)
    assert (await poller.run_once()).notify_failed == 1
    (row,) = await follows(sessions)
    assert (row.last_status, row.next_poll_at) == (2, now() + dt.timedelta(seconds=3))

    now.advance(3)
    assert (await poller.run_once()).notified == 1
    assert inbox.sent == [(1, 1_000_001, RECEIVED, 4, "vi")]


async def test_one_request_per_code_however_many_followers(
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
    make_poller: MakePoller,
) -> None:
    inbox = Inbox()
    for user_id in (1, 2, 3):
        await follow(sessions, portal, now, user_id, NEW, lang="en" if user_id == 3 else "vi")
    await follow(sessions, portal, now, 1, RECEIVED)
    emu.advance(NEW)
    before = emu.count("dossiers")
    now.advance(INTERVAL)
    report = await make_poller(sessions, inbox).run_once()
    assert report.requests == 2
    assert emu.count("dossiers") - before == 2
    assert sorted(inbox.sent) == [
        (1, 1_000_001, NEW, 2, "vi"),
        (2, 1_000_002, NEW, 2, "vi"),
        (3, 1_000_003, NEW, 2, "en"),
    ]
    # All followers of a code share its slot, so they stay due together.
    rows = [r for r in await follows(sessions) if r.code == NEW]
    assert len({r.next_poll_at for r in rows}) == 1


async def test_state_unseen_at_follow_time_is_announced_when_the_portal_answers(
    sessions: async_sessionmaker[AsyncSession], portal: PortalClient, now: Now, make_poller: MakePoller
) -> None:
    inbox = Inbox()
    await follow(sessions, portal, now, 1, PROCESSING, seen=False)  # followed while the portal was down
    poller = make_poller(sessions, inbox)
    assert (await poller.run_once()).notified == 1
    assert inbox.sent == [(1, 1_000_001, PROCESSING, 4, "vi")]
    now.advance(INTERVAL)
    assert (await poller.run_once()).notified == 0


async def test_outage_backs_off_keeps_rows_and_sends_nothing(
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
    make_poller: MakePoller,
) -> None:
    inbox = Inbox()
    codes = [PROCESSING, RECEIVED, NEW]
    for code in codes:
        await follow(sessions, portal, now, 1, code)
    emu.advance(RECEIVED)  # a change happens during the outage
    emu.fail(503)
    before = emu.count("dossiers")
    poller = make_poller(sessions, inbox, retry_s=60)
    now.advance(INTERVAL)

    report = await poller.run_once()
    assert report.outage
    assert report.failed == 3
    # The first code used its attempts; the rest were not tried against a portal known to be down.
    assert emu.count("dossiers") - before == 2
    rows = await follows(sessions)
    assert [r.code for r in rows] == codes
    assert all(r.failures == 1 and r.next_poll_at > now() for r in rows)

    delays = [(rows[0].next_poll_at - now()).total_seconds()]
    for _ in range(6):  # still down: each round backs off further (up to the interval), nobody is messaged
        now.advance(3600)
        await poller.run_once()
        delays.append(((await follows(sessions))[0].next_poll_at - now()).total_seconds())
    assert delays == [45, 90, 180, 360, 720, 1350, 1350]  # 3/4 of min(60 s * 2^n, 1800 s) with jitter 0.5
    assert inbox.sent == []
    assert len(await follows(sessions)) == 3

    emu.clear_faults()
    now.advance(INTERVAL)  # past the breaker's cool-down: the probe succeeds
    report = await poller.run_once()
    assert not report.outage
    assert inbox.sent == [(1, 1_000_001, RECEIVED, 4, "vi")]  # the change is not lost, and told once
    assert all(r.failures == 0 for r in await follows(sessions))


async def test_poll_errors_are_counted_by_kind_once_per_request_on_the_local_day(
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
    make_poller: MakePoller,
) -> None:
    for code in (PROCESSING, RECEIVED, NEW):
        await follow(sessions, portal, now, 1, code)
    poller = make_poller(sessions, Inbox(), retry_s=60)
    now.advance(16.5 * 3600)  # 17:30 UTC: 00:30 the next day in Vietnam
    emu.fail(503)
    assert (await poller.run_once()).outage
    emu.clear_faults()
    now.advance(INTERVAL)  # past the breaker's cool-down and the back-off: all three due again
    emu.malformed(count=1)  # one code's answer is unreadable
    emu.remove_dossier(NEW)  # and one is not known any more: an answer, not an error
    report = await poller.run_once()
    assert (report.requests, report.failed, report.outage) == (3, 2, False)
    async with sessions() as session:
        rows = (
            await session.execute(select(PortalErrorCount.day, PortalErrorCount.kind, PortalErrorCount.errors))
        ).all()
    # the outage counted once (the other codes were not asked of a portal known to be down), on Vietnam's day
    assert sorted((day, kind, n) for day, kind, n in rows) == [
        (dt.date(2026, 3, 3), "bad_response", 1),
        (dt.date(2026, 3, 3), "server_error", 1),
    ]


async def test_unfollowed_or_inactive_users_are_not_polled(
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
    make_poller: MakePoller,
) -> None:
    inbox = Inbox()
    await follow(sessions, portal, now, 1, PROCESSING)
    await follow(sessions, portal, now, 2, RECEIVED)
    async with sessions() as session, session.begin():
        user = await session.get(User, 2)
        assert user is not None
        user.active = False  # blocked the bot
    emu.advance(PROCESSING)
    emu.advance(RECEIVED)
    before = emu.count("dossiers")
    now.advance(INTERVAL)
    report = await make_poller(sessions, inbox).run_once()
    assert report.requests == 1
    assert emu.count("dossiers") - before == 1
    assert inbox.sent == [(1, 1_000_001, PROCESSING, 9, "vi")]


async def test_poll_budget_is_respected_at_the_portal(
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
) -> None:
    budget = 5.0
    template = emu.dossier(PROCESSING)
    codes = [f"000.00.12.H22-250101-{i:04d}" for i in range(1, 16)]
    for code in codes:
        emu.add_dossier(template.model_copy(update={"code": code}, deep=True))
        await follow(sessions, portal, now, 1, code, digits=DIGITS[PROCESSING])
        await follow(sessions, portal, now, 2, code, digits=DIGITS[PROCESSING])
    inbox = Inbox()
    poller = DossierPoller(
        sessions, portal, inbox, interval_s=INTERVAL, budget_rps=budget, run_s=1.0, now=now, jitter=lambda: 0.5
    )
    assert poller.max_codes_per_run == 5
    emu.reset_stats()
    now.advance(INTERVAL)
    runs = 0
    while (await poller.run_once()).requests:
        runs += 1
    assert runs == 3
    assert emu.count("dossiers") == len(codes)  # every code once, though each has two followers
    assert emu.max_rate("dossiers", window_s=1.0) <= budget
    times = emu.hit_times("dossiers")
    assert times[-1] - times[0] >= (len(codes) - 1) / budget  # spread, not a burst


async def test_two_pollers_never_poll_the_same_row(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    emu: PortalEmulator,
    portal: PortalClient,
    now: Now,
    make_poller: MakePoller,
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has no row locks: one bot process per SQLite file (PostgreSQL runs this test)")
    codes = list(emu.codes())[:8]
    for code in codes:
        await follow(sessions, portal, now, 1, code)
        emu.set_status(code, 4, "mới cập nhật")
    before = emu.count("dossiers")
    inbox = Inbox()
    engine2 = _engine(db_url)
    try:
        other = make_poller(async_sessionmaker(engine2, expire_on_commit=False), inbox)
        now.advance(INTERVAL)
        # Another bot process is in the middle of claiming these rows: this one skips them, without waiting.
        async with sessions() as claimer, claimer.begin():
            await claimer.execute(select(DossierFollow).with_for_update())
            report = await asyncio.wait_for(other.run_once(), timeout=5)
            assert report.requests == 0
        # Two processes running at once share the due rows between them.
        first = make_poller(sessions, inbox)
        emu.slow(0.05)  # keep both runs in flight at the same time
        reports = await asyncio.gather(first.run_once(), other.run_once())
    finally:
        await engine2.dispose()
    assert sum(r.requests for r in reports) == len(codes)
    assert emu.count("dossiers") - before == len(codes)
    assert collections.Counter(code for _, _, code, _, _ in inbox.sent) == dict.fromkeys(codes, 1)


def test_next_poll_time_spreads_codes_evenly_over_the_interval() -> None:
    now = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
    codes = [f"000.00.{i % 90:02d}.H22-2401{1 + i % 28:02d}-{i:04d}" for i in range(2000)]
    offsets = [(next_poll_time(code, now, INTERVAL) - now).total_seconds() for code in codes]
    assert all(0 < s <= INTERVAL for s in offsets)
    buckets = collections.Counter(int(s // (INTERVAL / 10)) for s in offsets)
    assert len(buckets) == 10
    assert max(buckets.values()) < 2000 / 10 * 1.25
    # Stable per code: the same slot in every cycle and in every process.
    code = codes[0]
    first = next_poll_time(code, now, INTERVAL)
    assert next_poll_time(code, first, INTERVAL) == first + dt.timedelta(seconds=INTERVAL)


async def test_pacer_spaces_requests() -> None:
    clock = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    pacer = RequestPacer(2.0, headroom=1.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(4):
        await pacer.wait()
    assert slept == [0.5, 0.5, 0.5]
