"""Polls followed dossiers within a request budget and notifies each follower once per change."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.backoff import backoff_s
from kernel.outbox import Blocked, RetryLater
from portal.client import DossierNotFound, PortalError, PortalUnavailable, code_ref
from portal.errors import count_error
from portal.models import Dossier
from store.base import utcnow
from store.models import User
from store.models_dossier import DossierFollow

log = structlog.get_logger(__name__)

# notify(user_id, chat_id, dossier, lang): tell the citizen about a change; raise if it could not be sent.
Notify = Callable[[int, int, Dossier, str], Awaitable[None]]
# on_deadlines(user_id, code, [(kind, when), ...]): hand dates over to reminders; [] means "none any more".
DeadlinesHook = Callable[[int, str, list[tuple[str, dt.datetime]]], Awaitable[None]]

_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
PROVINCE_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # Settings.timezone's default; bot/app.py passes the setting


class DossierSource(Protocol):
    async def get_dossier(self, code: str, *, phone_last4: str | None = None, key: str | None = None) -> Dossier: ...


def next_poll_time(code: str, now: dt.datetime, interval_s: float) -> dt.datetime:
    """The first moment after `now` in this code's slot of the polling interval.

    Each code gets a fixed offset in the interval from a hash of it, so polls spread evenly over the interval
    whatever the moment people started following, every process computes the same slot, and all followers
    of one code fall due together (one request serves them all).
    """
    period_ms = max(1, int(interval_s * 1000))
    offset_ms = int.from_bytes(hashlib.sha256(code.encode()).digest()[:8], "big") % period_ms
    elapsed_ms = int((now - _EPOCH).total_seconds() * 1000)
    cycles = (elapsed_ms - offset_ms) // period_ms + 1
    return _EPOCH + dt.timedelta(milliseconds=cycles * period_ms + offset_ms)


class RequestPacer:
    """Spaces requests evenly, so the portal sees at most `rate` requests in any second.

    Requests leave `1 / (rate * headroom)` seconds apart: the headroom absorbs network jitter, which could
    otherwise bring two requests closer together on arrival than they were on departure. Per process: with
    several bot replicas, give each its share of the province's budget.
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        headroom: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or not 0 < headroom <= 1:
            raise ValueError("rate_per_s must be > 0 and headroom in (0, 1]")
        self.spacing_s = 1.0 / (rate_per_s * headroom)
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    async def wait(self) -> None:
        now = self._clock()
        at = max(now, self._next)
        self._next = at + self.spacing_s
        if at > now:
            await self._sleep(at - now)


@dataclass
class PollReport:
    """What one run did (for logs, metrics and tests)."""

    requests: int = 0  # lookups asked of the portal client (one per code)
    unchanged: int = 0
    notified: int = 0
    ended: int = 0
    notify_failed: int = 0
    failed: int = 0  # follows whose dossier could not be fetched
    outage: bool = False


@dataclass(frozen=True)
class _Claim:
    follow_id: int
    user_id: int
    chat_id: int
    lang: str
    code: str
    key: str | None  # the portal's dossier key from the citizen's verification (the full view), if any


class DossierPoller:
    """Run `run_once()` from the scheduler every few seconds (one run at a time per process).

    A run claims the follows that are due (row locks with SKIP LOCKED on PostgreSQL, then a lease written to
    `next_poll_at`, so another bot process never polls the same rows), fetches each code once at the paced
    rate, and for each follower whose dossier changed calls `notify` and records the new fingerprint in the
    transaction that holds the row. So a change is never lost (if `notify` raises or the process dies first,
    the row keeps the old fingerprint and the next poll announces it) and never announced twice — short of
    the process dying in the instant between `notify` returning and the commit. Citizens who blocked the bot
    (`users.active` false) are skipped until they come back.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        portal: DossierSource,
        notify: Notify,
        *,
        on_deadlines: DeadlinesHook | None = None,
        interval_s: float = 1800.0,
        budget_rps: float = 2.0,
        run_s: float = 5.0,
        lease_s: float = 300.0,
        retry_s: float = 60.0,
        max_backoff_s: float | None = None,
        now: Callable[[], dt.datetime] = utcnow,
        pacer: RequestPacer | None = None,
        jitter: Callable[[], float] = random.random,
        tz: ZoneInfo = PROVINCE_TZ,  # Settings.timezone: the local day a portal error is counted under
    ) -> None:
        self._sessions = sessions
        self._portal = portal
        self._notify = notify
        self._on_deadlines = on_deadlines
        self.interval_s = interval_s
        self.max_codes_per_run = max(1, int(budget_rps * run_s))
        self.lease_s = lease_s
        self.retry_s = retry_s
        self.max_backoff_s = max_backoff_s if max_backoff_s is not None else interval_s
        self._now = now
        self._pacer = pacer or RequestPacer(budget_rps)
        self._jitter = jitter
        self._tz = tz

    async def run_once(self) -> PollReport:
        report = PollReport()
        claims = await self._claim()
        by_code: dict[str, list[_Claim]] = {}
        for claim in claims:
            by_code.setdefault(claim.code, []).append(claim)
        for code, followers in by_code.items():
            if report.outage:
                # The portal is down: do not spend requests (or the citizens' patience) on the rest now.
                await self._back_off(followers, report)
                continue
            await self._pacer.wait()
            report.requests += 1
            try:
                # Every follower proved the second factor; one key reads the dossier for them all.
                key = next((c.key for c in followers if c.key), None)
                dossier = await self._portal.get_dossier(code, key=key)
            except PortalUnavailable as exc:
                report.outage = True
                log.warning("dossier_poll_outage", dossier=code_ref(code))
                await self._back_off(followers, report, exc)
                continue
            except DossierNotFound:
                log.warning("dossier_poll_not_found", dossier=code_ref(code))
                await self._back_off(followers, report)
                continue
            except PortalError as exc:
                log.warning("dossier_poll_error", dossier=code_ref(code))
                await self._back_off(followers, report, exc)
                continue
            for claim in followers:
                await self._apply(claim, dossier, report)
        if claims:
            log.info(
                "dossier_poll_run",
                follows=len(claims),
                requests=report.requests,
                notified=report.notified,
                failed=report.failed,
                outage=report.outage,
            )
        return report

    async def _claim(self) -> list[_Claim]:
        now = self._now()
        async with self._sessions() as session, session.begin():
            due_codes = (
                select(DossierFollow.code)
                .join(User, User.id == DossierFollow.user_id)
                .where(DossierFollow.next_poll_at <= now, User.active.is_(True))
                .group_by(DossierFollow.code)
                .order_by(func.min(DossierFollow.next_poll_at))
                .limit(self.max_codes_per_run)
            )
            codes = list((await session.scalars(due_codes)).all())
            if not codes:
                return []
            rows = await session.execute(
                select(DossierFollow, User.chat_id, User.lang)
                .join(User, User.id == DossierFollow.user_id)
                .where(DossierFollow.code.in_(codes), DossierFollow.next_poll_at <= now, User.active.is_(True))
                .order_by(DossierFollow.next_poll_at, DossierFollow.id)
                .with_for_update(skip_locked=True, of=DossierFollow)
            )
            claims: list[_Claim] = []
            lease_until = now + dt.timedelta(seconds=self.lease_s)
            for follow, chat_id, lang in rows.all():
                # The lease: if this process dies before it is done, the row falls due again by itself.
                follow.next_poll_at = lease_until
                claims.append(_Claim(follow.id, follow.user_id, chat_id, lang, follow.code, follow.access_key))
            return claims

    async def _back_off(self, followers: list[_Claim], report: PollReport, error: PortalError | None = None) -> None:
        """Poll these follows again later; `error`, the portal's failure to answer, is counted for the dashboard
        (one per request, in the same transaction)."""
        now = self._now()
        async with self._sessions() as session, session.begin():
            if error is not None:
                await count_error(session, now.astimezone(self._tz).date(), error)
            for claim in followers:
                follow = await session.get(DossierFollow, claim.follow_id)
                if follow is None:
                    continue
                follow.failures += 1
                # Half fixed, half random, so that after an outage the follows do not all return at once.
                delay = backoff_s(
                    min(follow.failures - 1, 16) + 1,
                    base_s=self.retry_s,
                    cap_s=self.max_backoff_s,
                    jitter="equal",
                    random=self._jitter,
                )
                follow.next_poll_at = now + dt.timedelta(seconds=delay)
                report.failed += 1

    async def _apply(self, claim: _Claim, dossier: Dossier, report: PollReport) -> None:
        now = self._now()
        fingerprint = dossier.fingerprint()
        handover: list[tuple[str, dt.datetime]] | None = None
        async with self._sessions() as session, session.begin():
            follow = await session.get(DossierFollow, claim.follow_id, with_for_update=True)
            if follow is None:  # unfollowed while we were fetching
                return
            follow.failures = 0
            follow.next_poll_at = next_poll_time(claim.code, now, self.interval_s)
            if follow.fingerprint == fingerprint:
                report.unchanged += 1
                return
            # A follow made while the portal was down has no fingerprint: the citizen has not seen this state
            # yet, so it is announced like any change.
            try:
                await self._notify(claim.user_id, claim.chat_id, dossier, claim.lang)
            except Blocked:
                # Retrying would fail the same way every minute: stop polling for them until they write again
                # (the adapter marks them active then). The follow keeps its old fingerprint, so the change is
                # still announced when they come back.
                log.info("dossier_notify_blocked", dossier=code_ref(claim.code))
                await session.execute(update(User).where(User.id == claim.user_id).values(active=False))
                report.notify_failed += 1
                return
            except RetryLater as exc:
                # Telegram said when to try again (a 429's retry_after, often a second) or the send never left:
                # try then, not a whole retry period later. Not recorded, so the change is still announced.
                log.info("dossier_notify_retry", dossier=code_ref(claim.code), after_s=exc.after_s)
                follow.next_poll_at = now + dt.timedelta(seconds=min(max(exc.after_s, 1.0), self.retry_s))
                report.notify_failed += 1
                return
            except Exception:
                # Not recorded, so the change is announced on the next try instead of being lost.
                log.exception("dossier_notify_failed", dossier=code_ref(claim.code))
                follow.next_poll_at = now + dt.timedelta(seconds=self.retry_s)
                report.notify_failed += 1
                return
            report.notified += 1
            handover = dossier.deadlines()
            if dossier.final:
                # Nothing more will happen to it: stop following, and forget the code.
                await session.execute(delete(DossierFollow).where(DossierFollow.id == follow.id))
                report.ended += 1
                handover = []
            else:
                follow.fingerprint = fingerprint
                follow.last_status = int(dossier.status.code)
                follow.notified_at = now
        if handover is not None and self._on_deadlines is not None:
            try:
                await self._on_deadlines(claim.user_id, claim.code, handover)
            except Exception:
                log.exception("dossier_deadlines_hook_failed", dossier=code_ref(claim.code))
