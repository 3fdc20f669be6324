"""Dossier polling at scale: the poller keeps under its request budget and polls every followed dossier once."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from sqlalchemy import insert

from benchmarks.common import database, note, quiet, scale
from portal.breaker import CircuitBreaker
from portal.client import PortalClient
from portal.models import Dossier
from portal.poller import DossierPoller
from sandbox.portal.server import PortalEmulator
from store.base import utcnow
from store.db import make_engine, make_sessionmaker, migrate
from store.models import User
from store.models_dossier import DossierFollow

NAME = "portal"
TEMPLATE = "000.00.12.H22-240101-0003"  # a seed dossier in processing (status 4)
RUN_S = 5.0  # the poller's default wake-up period (PORTAL_POLL_RUN_S)


def code_of(i: int) -> str:
    return f"000.00.12.H22-2501{i // 10_000:02d}-{i % 10_000:04d}"


async def _follow(db_url: str, codes: list[str]) -> None:
    """One citizen per dossier, each follow due now."""
    engine = make_engine(db_url)
    now = utcnow() - dt.timedelta(seconds=1)
    try:
        async with engine.begin() as conn:
            for lo in range(0, len(codes), 5000):
                part = range(lo, min(len(codes), lo + 5000))
                await conn.execute(insert(User), [{"id": 1 + i, "chat_id": 1 + i, "lang": "vi"} for i in part])
                await conn.execute(
                    insert(DossierFollow), [{"user_id": 1 + i, "code": codes[i], "next_poll_at": now} for i in part]
                )
    finally:
        await engine.dispose()


async def run() -> dict[str, float]:
    quiet()
    dossiers = int(scale(10_000, 1_000))
    budget = scale(50.0, 20.0)  # requests/s: one cycle is dossiers/budget s (200 s full, 50 s reduced)
    portal = PortalEmulator()
    await portal.start("127.0.0.1", 0)
    template = portal.dossier(TEMPLATE).model_dump()
    codes = [code_of(i) for i in range(dossiers)]
    for code in codes:
        portal.add_dossier({**template, "code": code})
    notified = 0

    async def notify(user_id: int, chat_id: int, dossier: Dossier, lang: str) -> None:
        nonlocal notified
        notified += 1  # the first poll of a follow announces the state; sending it is not what is measured here

    try:
        async with database(NAME) as url:
            await migrate(url)
            await _follow(url, codes)
            note(NAME, f"{dossiers} dossiers followed; budget {budget:g} requests/s, poller run every {RUN_S:g} s")
            engine = make_engine(url)
            client = PortalClient(
                portal.base_url,
                portal.token_url,
                portal.client_id,
                portal.client_secret,
                breaker=CircuitBreaker(reset_timeout_s=30.0),
            )
            poller = DossierPoller(
                make_sessionmaker(engine), client, notify, interval_s=1800.0, budget_rps=budget, run_s=RUN_S
            )
            portal.reset_stats()
            started = time.monotonic()
            last_note = started
            try:
                # What the scheduler does: a run every RUN_S s, never two at once, a late run not made up twice.
                while portal.count("dossiers") < dossiers and time.monotonic() - started < 3 * dossiers / budget + 60:
                    tick = time.monotonic()
                    await poller.run_once()
                    if time.monotonic() - last_note > 15:
                        last_note = time.monotonic()
                        note(NAME, f"{portal.count('dossiers')}/{dossiers} polled after {last_note - started:.0f} s")
                    await asyncio.sleep(max(0.0, RUN_S - (time.monotonic() - tick)))
            finally:
                await client.aclose()
                await engine.dispose()
            hits = portal.hit_times("dossiers")
            cycle = hits[min(dossiers, len(hits)) - 1] - started if hits else float("nan")
            peak = portal.max_rate("dossiers", 1.0)
            note(NAME, f"{len(hits)} requests, peak {peak} in 1 s, cycle {cycle:.1f} s, {notified} notices")
    finally:
        await portal.stop()
    return {
        "portal_poll_budget_ratio": round(peak / budget, 3),
        "portal_poll_cycle_s": round(cycle, 1),
        "portal_poll_cycle_ideal_s": round(dossiers / budget, 1),
    }
