"""The portal client against the real emulator over HTTP: lookups, tokens, retries, deadline, breaker."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable

import pytest
from structlog.testing import capture_logs

from portal.breaker import CircuitBreaker, State
from portal.client import (
    DossierNotFound,
    PortalClient,
    PortalError,
    PortalUnavailable,
    VerificationFailed,
    parse_retry_after,
)
from portal.models import Status
from sandbox.portal.server import PortalEmulator, load_seed

DIGITS = {d.code: d.phone[-4:] for d in load_seed().dossiers}
SEED_BY_STATUS = {
    1: "000.00.12.H22-240102-0001",
    2: "000.00.12.H22-240103-0002",
    3: "000.00.12.H22-240104-0004",
    4: "000.00.12.H22-240101-0003",
    5: "H22.38-240615-0001",
    6: "000.00.15.H22-240620-0007",
    7: "000.00.12.H22-240701-0012",
    8: "000.00.12.H22-240705-0009",
    9: "38.98.H29-210519-0013",
    10: "000.00.12.H22-240801-0020",
}
VN = dt.timedelta(hours=7)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class SleepRecorder:
    """Stands in for asyncio.sleep: records the back-off the client chose and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def emu() -> AsyncIterator[PortalEmulator]:
    emulator = PortalEmulator()
    await emulator.start("127.0.0.1", 0)
    yield emulator
    await emulator.stop()


MakeClient = Callable[..., PortalClient]


@pytest.fixture
async def make_client(emu: PortalEmulator) -> AsyncIterator[MakeClient]:
    clients: list[PortalClient] = []

    def make(**kwargs: object) -> PortalClient:
        options: dict[str, object] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}
        options.update(kwargs)
        client = PortalClient(emu.base_url, emu.token_url, "citizen-assistant", "change-me", **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.mark.parametrize(("status", "code"), sorted(SEED_BY_STATUS.items()))
async def test_lookup_in_every_status(status: int, code: str, make_client: MakeClient) -> None:
    dossier = await make_client().get_dossier(code, phone_last4=DIGITS[code])
    assert dossier.code == code and dossier.full
    assert dossier.status.code == Status(status)
    assert dossier.history[-1].status == Status(status)
    assert dossier.applicant_name and dossier.procedure_name and dossier.agency
    for entry in dossier.history:
        assert entry.time.utcoffset() == VN  # the contract: ISO 8601 with +07:00
    assert (dossier.supplement is not None) == (status == 5)
    assert (dossier.fee is not None) == (status == 6)
    assert dossier.final == (status in (3, 7, 8, 10))


async def test_supplement_and_fee_details(make_client: MakeClient) -> None:
    client = make_client()
    supplement = (await client.get_dossier("H22.38-240615-0001", phone_last4=DIGITS["H22.38-240615-0001"])).supplement
    assert supplement is not None
    assert supplement.items == ["Giấy tờ chứng minh chỗ ở hợp pháp (hợp đồng thuê nhà)", "Văn bản đồng ý của chủ hộ"]
    assert supplement.deadline == dt.datetime(2024, 6, 25, 10, 0, tzinfo=dt.UTC)
    fee = (await client.get_dossier("000.00.15.H22-240620-0007", phone_last4=DIGITS["000.00.15.H22-240620-0007"])).fee
    assert fee is not None
    assert (fee.amount, fee.currency) == (135000, "VND")


async def test_unknown_code_is_not_found_without_retry(emu: PortalEmulator, make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(DossierNotFound) as caught:
        await client.get_dossier("000.00.12.H22-240101-9999")
    assert caught.value.code == "000.00.12.H22-240101-9999"
    assert emu.count("dossiers") == 1
    assert client.breaker.state is State.CLOSED


async def test_token_is_cached_between_lookups(emu: PortalEmulator, make_client: MakeClient) -> None:
    client = make_client()
    for code in list(SEED_BY_STATUS.values())[:5]:
        await client.get_dossier(code)
    assert emu.count("token") == 1
    assert emu.count("dossiers") == 5


async def test_token_refreshed_shortly_before_expiry(emu: PortalEmulator, make_client: MakeClient) -> None:
    clock = FakeClock()
    client = make_client(clock=clock)
    await client.get_dossier(SEED_BY_STATUS[4])
    clock.advance(emu.token_ttl_s - 20)  # still valid at the portal, but inside the refresh margin
    await client.get_dossier(SEED_BY_STATUS[4])
    assert emu.count("token") == 2
    assert emu.count("dossiers") == 2  # no request was wasted on a 401


async def test_token_expired_mid_run_is_refreshed_once(emu: PortalEmulator, make_client: MakeClient) -> None:
    client = make_client()
    await client.get_dossier(SEED_BY_STATUS[4])
    emu.expire_tokens()
    dossier = await client.get_dossier(SEED_BY_STATUS[9])
    assert dossier.status.code == Status.PROCESSED
    assert emu.count("token") == 2
    assert emu.count("dossiers") == 3  # one 401, one retry with the new token


async def test_concurrent_lookups_share_one_token_refresh(emu: PortalEmulator, make_client: MakeClient) -> None:
    client = make_client()
    await client.get_dossier(SEED_BY_STATUS[4])
    emu.expire_tokens()
    results = await asyncio.gather(*(client.get_dossier(code) for code in SEED_BY_STATUS.values()))
    assert [d.code for d in results] == list(SEED_BY_STATUS.values())
    assert emu.count("token") == 2  # the first one, and a single refresh for all ten lookups


async def test_token_rejected_twice_is_an_error_not_a_loop(emu: PortalEmulator, make_client: MakeClient) -> None:
    client = make_client()
    await client.get_dossier(SEED_BY_STATUS[4])
    emu.fail(401)  # the portal now rejects every token, fresh ones too
    with pytest.raises(PortalError) as caught:
        await client.get_dossier(SEED_BY_STATUS[4])
    assert not isinstance(caught.value, PortalUnavailable)
    assert emu.count("dossiers") == 3  # first lookup, then a 401, a refresh, one more 401: stop
    assert emu.count("token") == 2


async def test_wrong_credentials_are_an_error_without_retry(emu: PortalEmulator) -> None:
    client = PortalClient(emu.base_url, emu.token_url, "citizen-assistant", "wrong")
    try:
        with pytest.raises(PortalError) as caught:
            await client.get_dossier(SEED_BY_STATUS[4])
        assert not isinstance(caught.value, PortalUnavailable)
        assert emu.count("token") == 1
        assert emu.count("dossiers") == 0
    finally:
        await client.aclose()


async def test_5xx_is_retried_then_succeeds(emu: PortalEmulator, make_client: MakeClient) -> None:
    sleep = SleepRecorder()
    emu.fail(503, count=2)
    dossier = await make_client(sleep=sleep, max_attempts=3).get_dossier(SEED_BY_STATUS[2])
    assert dossier.status.code == Status.RECEIVED
    assert emu.count("dossiers") == 3
    # Full jitter: each wait is somewhere between 0 and the exponential cap for its attempt.
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= 0.01
    assert 0 <= sleep.delays[1] <= 0.02


async def test_backoff_is_exponential_with_full_jitter(emu: PortalEmulator, make_client: MakeClient) -> None:
    sleep = SleepRecorder()
    emu.fail(500)
    client = make_client(
        sleep=sleep,
        max_attempts=4,
        backoff_base_s=0.1,
        backoff_max_s=10,
        jitter=lambda: 1.0,
        deadline_s=30,
        breaker=CircuitBreaker(failure_threshold=10),
    )
    with pytest.raises(PortalUnavailable):
        await client.get_dossier(SEED_BY_STATUS[2])
    assert sleep.delays == pytest.approx([0.1, 0.2, 0.4])
    assert emu.count("dossiers") == 4


async def test_429_waits_retry_after_then_succeeds(emu: PortalEmulator, make_client: MakeClient) -> None:
    sleep = SleepRecorder()
    emu.rate_limit(retry_after_s=2, count=1)
    dossier = await make_client(sleep=sleep).get_dossier(SEED_BY_STATUS[4])
    assert dossier.code == SEED_BY_STATUS[4]
    assert sleep.delays == [2.0]
    assert emu.count("dossiers") == 2


async def test_429_retry_after_beyond_deadline_gives_up_at_once(emu: PortalEmulator, make_client: MakeClient) -> None:
    sleep = SleepRecorder()
    emu.rate_limit(retry_after_s=30, count=1)
    with pytest.raises(PortalUnavailable):
        await make_client(sleep=sleep, deadline_s=8.0).get_dossier(SEED_BY_STATUS[4])
    assert sleep.delays == []  # never waits past the call's deadline
    assert emu.count("dossiers") == 1


async def test_4xx_other_than_401_404_429_is_not_retried(emu: PortalEmulator, make_client: MakeClient) -> None:
    emu.fail(400, count=1)
    with pytest.raises(PortalError) as caught:
        await make_client().get_dossier(SEED_BY_STATUS[4])
    assert not isinstance(caught.value, PortalUnavailable)
    assert emu.count("dossiers") == 1


async def test_slow_portal_times_out_then_retry_succeeds_within_deadline(
    emu: PortalEmulator, make_client: MakeClient
) -> None:
    emu.slow(delay_s=2.0, count=1)
    client = make_client(read_timeout=0.3, deadline_s=3.0)
    started = time.monotonic()
    dossier = await client.get_dossier(SEED_BY_STATUS[4])
    elapsed = time.monotonic() - started
    assert dossier.code == SEED_BY_STATUS[4]
    assert emu.count("dossiers") == 2
    assert 0.3 <= elapsed < 1.5  # one read timeout, a short back-off, one quick answer


async def test_hanging_portal_costs_at_most_the_deadline(emu: PortalEmulator, make_client: MakeClient) -> None:
    emu.hang()
    client = make_client(read_timeout=0.4, deadline_s=1.0, max_attempts=10)
    started = time.monotonic()
    with pytest.raises(PortalUnavailable):
        await client.get_dossier(SEED_BY_STATUS[4])
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 0.3
    assert emu.count("dossiers") >= 2  # it did retry while time was left


async def test_malformed_body_is_an_error_logged_without_the_name(emu: PortalEmulator, make_client: MakeClient) -> None:
    client = make_client()
    emu.malformed(count=1, variant="schema")  # the real record with a bad status and a date without offset
    with capture_logs() as logs, pytest.raises(PortalError) as caught:
        await client.get_dossier(SEED_BY_STATUS[4])
    assert not isinstance(caught.value, PortalUnavailable)
    events = [e for e in logs if e["event"] == "portal_malformed_body"]
    assert len(events) == 1
    assert any("status.code" in p for p in events[0]["problems"])
    assert "Nguyễn" not in repr(logs)
    assert "000.00.12.H22-240101-0003" not in repr(logs)  # codes are logged as a digest only
    emu.malformed(count=1, variant="truncated")
    with pytest.raises(PortalError):
        await client.get_dossier(SEED_BY_STATUS[4])
    assert client.breaker.state is State.CLOSED  # the portal is up, just wrong: no reason to stop asking
    assert (await client.get_dossier(SEED_BY_STATUS[4])).code == SEED_BY_STATUS[4]


async def test_dead_portal_opens_breaker_then_half_open_probe_recovers(
    emu: PortalEmulator, make_client: MakeClient
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=30, clock=clock)
    client = make_client(breaker=breaker, max_attempts=5, deadline_s=30)
    await client.get_dossier(SEED_BY_STATUS[4])  # token fetched while healthy
    emu.fail(503)

    with pytest.raises(PortalUnavailable):
        await client.get_dossier(SEED_BY_STATUS[4])
    assert breaker.state is State.OPEN
    assert emu.count("dossiers") == 1 + 3  # the breaker opened mid-call: no 4th and 5th attempt

    # While open: an answer at once, without touching the network.
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(PortalUnavailable):
            await client.get_dossier(SEED_BY_STATUS[4])
    assert time.monotonic() - started < 0.05
    assert emu.count("dossiers") == 4

    # After the cool-down one probe goes through; it fails, so the breaker opens again at once.
    clock.advance(30)
    assert breaker.state is State.HALF_OPEN
    with pytest.raises(PortalUnavailable):
        await client.get_dossier(SEED_BY_STATUS[4])
    assert emu.count("dossiers") == 5
    assert breaker.state is State.OPEN

    # The portal comes back: the next probe succeeds and closes the breaker.
    emu.clear_faults()
    clock.advance(30)
    assert (await client.get_dossier(SEED_BY_STATUS[4])).code == SEED_BY_STATUS[4]
    assert breaker.state is State.CLOSED
    assert emu.count("dossiers") == 6


async def test_half_open_lets_only_one_probe_through(emu: PortalEmulator, make_client: MakeClient) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10, clock=clock)
    client = make_client(breaker=breaker, max_attempts=1)
    await client.get_dossier(SEED_BY_STATUS[4])
    emu.fail(503, count=1)
    with pytest.raises(PortalUnavailable):
        await client.get_dossier(SEED_BY_STATUS[4])
    clock.advance(10)
    emu.slow(0.3, count=1)  # the probe takes a while; meanwhile four more lookups arrive
    results = await asyncio.gather(*(client.get_dossier(SEED_BY_STATUS[4]) for _ in range(5)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, PortalUnavailable) for r in results if isinstance(r, BaseException))
    assert breaker.state is State.CLOSED
    assert emu.count("dossiers") == 3


async def test_stopped_portal_answers_fast_and_opens_breaker(emu: PortalEmulator, make_client: MakeClient) -> None:
    client = make_client(breaker=CircuitBreaker(failure_threshold=3, reset_timeout_s=60), max_attempts=3)
    await emu.stop()
    started = time.monotonic()
    with pytest.raises(PortalUnavailable):
        await client.get_dossier(SEED_BY_STATUS[4])
    assert time.monotonic() - started < 1.0  # connection refused is quick, and so are the jittered retries
    assert client.breaker.state is State.OPEN


def test_parse_retry_after() -> None:
    now = dt.datetime(2024, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:05 GMT", now) == 5.0
    assert parse_retry_after("Sun, 31 Dec 2023 23:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_public_view_full_view_and_a_refused_second_factor(emu: PortalEmulator, make_client: MakeClient) -> None:
    client = make_client()
    code = SEED_BY_STATUS[5]
    public = await client.get_dossier(code)
    assert not public.full
    assert (public.applicant_name, public.agency, public.supplement, public.history) == (None, None, None, [])
    assert public.status.code == Status.SUPPLEMENT_REQUESTED
    wrong = "0000" if DIGITS[code] != "0000" else "1111"
    with pytest.raises(VerificationFailed):
        await client.get_dossier(code, phone_last4=wrong)
    assert client.breaker.state is State.CLOSED  # a wrong answer is no outage
    full = await client.get_dossier(code, phone_last4=DIGITS[code])
    assert full.full and full.supplement is not None and full.dossier_key == emu.dossier_key(code)
    again = await client.get_dossier(code, key=full.dossier_key)
    assert again.full and again.fingerprint() == full.fingerprint()
