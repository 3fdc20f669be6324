"""A local stand-in for the provincial portal API (docs/portal-api.yaml), with faults to inject per test."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import structlog
import yaml
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

log = structlog.get_logger(__name__)

DEFAULT_SEED = Path(__file__).with_name("seed.yml")
VN_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")  # the portal speaks Vietnam time, with its offset

# The portal's own wording of each status (the bot shows its own labels from data/content).
STATUS_NAMES = {
    1: "Mới đăng ký",
    2: "Được tiếp nhận",
    3: "Không được tiếp nhận",
    4: "Đang xử lý",
    5: "Yêu cầu bổ sung giấy tờ",
    6: "Yêu cầu thực hiện nghĩa vụ tài chính",
    7: "Công dân yêu cầu rút hồ sơ",
    8: "Dừng xử lý",
    9: "Đã xử lý xong",
    10: "Đã trả kết quả",
}
# The usual next step, for advance(): supplement and payment lead back to processing.
NEXT_STATUS = {1: 2, 2: 4, 4: 9, 5: 4, 6: 4, 9: 10}

Route = Literal["token", "dossiers"]
ROUTES: tuple[Route, ...] = ("token", "dossiers")
FaultKind = Literal["latency", "error", "hang", "malformed", "rate_limit"]


class _Seed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedHistory(_Seed):
    status: int = Field(ge=1, le=10)
    time: AwareDatetime
    note: str | None = None


class SeedSupplement(_Seed):
    items: list[str] = Field(min_length=1)
    deadline: AwareDatetime | None = None
    note: str | None = None


class SeedFee(_Seed):
    amount: int = Field(ge=0)
    currency: str = "VND"
    description: str | None = None
    deadline: AwareDatetime | None = None


class SeedDossier(_Seed):
    """One dossier as the emulator holds it (mutable: tests move it through statuses)."""

    code: str = Field(min_length=1, max_length=40)
    procedure: str
    applicant: str
    # The applicant's phone number on the dossier: its last 4 digits are the second factor for the full view.
    phone: str = Field(default="0900000000", pattern=r"^\+?[0-9]{9,15}$")
    agency: str
    received: AwareDatetime | None = None
    appointment: AwareDatetime | None = None
    supplement: SeedSupplement | None = None
    fee: SeedFee | None = None
    history: list[SeedHistory] = Field(min_length=1)

    @property
    def status(self) -> int:
        return self.history[-1].status


class SeedClient(_Seed):
    id: str = "citizen-assistant"
    secret: str = "change-me"  # noqa: S105 - the sandbox's well-known default, same as .env.example
    token_ttl_s: int = Field(default=300, gt=0)


class SeedFile(_Seed):
    client: SeedClient = Field(default_factory=SeedClient)
    dossiers: list[SeedDossier] = Field(default_factory=list)


def load_seed(path: Path = DEFAULT_SEED) -> SeedFile:
    return _load_seed(path.resolve(), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_seed(path: Path, _mtime_ns: int) -> SeedFile:
    # Parsed once per file version: tests start an emulator per test, and reset() deep-copies the dossiers.
    return SeedFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(VN_TZ).isoformat() if value is not None else None


def public_wire(d: SeedDossier) -> dict[str, Any]:
    """What GET /dossiers/{code} returns for a bare code: the procedure and the status stage, nothing personal."""
    return {
        "code": d.code,
        "procedure_name": d.procedure,
        "access": "public",
        "status": {"code": d.status, "name": STATUS_NAMES[d.status]},
    }


def to_wire(d: SeedDossier, dossier_key: str | None = None) -> dict[str, Any]:
    """The dossier as GET /dossiers/{code} returns it to the applicant (the second factor or a dossier key)."""
    return {
        "code": d.code,
        "procedure_name": d.procedure,
        "access": "full",
        "dossier_key": dossier_key,
        "applicant_name": d.applicant,
        "status": {"code": d.status, "name": STATUS_NAMES[d.status]},
        "received_at": _iso(d.received),
        "appointment_at": _iso(d.appointment),
        "agency": d.agency,
        "supplement": None
        if d.supplement is None
        else {
            "items": list(d.supplement.items),
            "deadline": _iso(d.supplement.deadline),
            "note": d.supplement.note,
        },
        "fee": None
        if d.fee is None
        else {
            "amount": d.fee.amount,
            "currency": d.fee.currency,
            "description": d.fee.description,
            "deadline": _iso(d.fee.deadline),
        },
        "history": [{"status": h.status, "time": _iso(h.time), "note": h.note} for h in d.history],
    }


@dataclass
class Fault:
    """Something to go wrong on the next `count` requests to `route` (all of them when count is None).

    latency: answer normally after `delay_s`; error: answer `status` (5xx); hang: never answer (until the
    fault is cleared or the emulator stops); malformed: 200 with a broken body (`variant` "truncated" JSON or
    "schema": valid JSON of the wrong shape); rate_limit: 429 with Retry-After `retry_after_s`.
    """

    kind: FaultKind
    count: int | None = None
    route: Route = "dossiers"
    delay_s: float = 0.0
    status: int = 503
    retry_after_s: int = 1
    variant: Literal["truncated", "schema"] = "truncated"


class EmulatorError(ValueError):
    """A control call asked for a change the emulator cannot make."""


class UnknownDossier(EmulatorError):
    """A control call named a dossier the emulator does not hold."""


def _error(status: int, error: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


class PortalEmulator:
    """The portal API on a real socket: OAuth2 client credentials, dossier lookup, faults and counters."""

    def __init__(
        self,
        seed_path: Path | None = DEFAULT_SEED,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_ttl_s: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seed = load_seed(seed_path) if seed_path is not None else SeedFile()
        self.client_id = client_id or self._seed.client.id
        self.client_secret = client_secret or self._seed.client.secret
        self.token_ttl_s = token_ttl_s or self._seed.client.token_ttl_s
        self._clock = clock
        # Signs dossier keys; a new emulator (like a portal rotating its key) revokes the keys it issued before.
        self._key_secret = secrets.token_bytes(32)
        self._dossiers: dict[str, SeedDossier] = {}
        self._tokens: dict[str, float] = {}
        self._faults: list[Fault] = []
        self._hits: dict[str, collections.deque[float]] = {}
        self._totals: collections.Counter[str] = collections.Counter()
        self.verifications: collections.Counter[str] = collections.Counter()  # "ok" / "failed", for tests
        self._release = asyncio.Event()
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.reset()

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 picks a free port) and return the base URL."""
        app = web.Application()
        app.add_routes(
            [
                web.post("/oauth/token", self._token),
                web.get("/dossiers/{code}", self._get_dossier),
                web.get("/_sandbox/stats", self._ctl_stats),
                web.post("/_sandbox/reset", self._ctl_reset),
                web.post("/_sandbox/dossiers", self._ctl_add),
                web.post("/_sandbox/dossiers/{code}/status", self._ctl_status),
                web.post("/_sandbox/dossiers/{code}/advance", self._ctl_advance),
                web.post("/_sandbox/faults", self._ctl_fault),
                web.delete("/_sandbox/faults", self._ctl_clear_faults),
                web.post("/_sandbox/tokens/expire", self._ctl_expire_tokens),
            ]
        )
        # A hung request must not hold up stop(): it is released, and what is left is cut after 1 s.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.base_url = f"http://{bound[0]}:{bound[1]}"
        log.info("portal_emulator_started", url=self.base_url)
        return self.base_url

    async def stop(self) -> None:
        self._release_hangs()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    # ----------------------------------------------------------------- dossiers (Python control API)

    def reset(self) -> None:
        """Back to the seed: dossiers, no faults, no tokens, counters at zero."""
        self._dossiers = {d.code: d.model_copy(deep=True) for d in self._seed.dossiers}
        self._tokens.clear()
        self.clear_faults()
        self.reset_stats()

    def codes(self) -> list[str]:
        return list(self._dossiers)

    def phone_last4(self, code: str) -> str:
        """The second factor of a dossier (what its applicant would type)."""
        return self.dossier(code).phone[-4:]

    def dossier_key(self, code: str) -> str:
        """The key the full view of this dossier carries: later reads send it instead of the digits."""
        return hmac.new(self._key_secret, code.upper().encode(), hashlib.sha256).hexdigest()

    def dossier(self, code: str) -> SeedDossier:
        try:
            return self._dossiers[code.upper()]
        except KeyError:
            raise UnknownDossier(f"no dossier {code}") from None

    def add_dossier(self, dossier: SeedDossier | Mapping[str, Any]) -> SeedDossier:
        d = dossier if isinstance(dossier, SeedDossier) else SeedDossier.model_validate(dossier)
        d = d.model_copy(update={"code": d.code.upper()}, deep=True)
        self._dossiers[d.code] = d
        return d

    def remove_dossier(self, code: str) -> None:
        self._dossiers.pop(code.upper(), None)

    def set_status(
        self,
        code: str,
        status: int,
        note: str | None = None,
        *,
        at: dt.datetime | None = None,
        supplement: SeedSupplement | Mapping[str, Any] | None = None,
        fee: SeedFee | Mapping[str, Any] | None = None,
        appointment: dt.datetime | None = None,
    ) -> SeedDossier:
        """Move a dossier to `status`, appending to its history; a supplement or fee lasts only in 5 or 6."""
        if not 1 <= status <= 10:
            raise EmulatorError(f"status {status} is not 1..10")
        d = self.dossier(code)
        when = at or dt.datetime.now(VN_TZ)
        d.history.append(SeedHistory(status=status, time=when, note=note))
        if status == 2 and d.received is None:
            d.received = when
        if supplement is not None:
            d.supplement = SeedSupplement.model_validate(supplement)
        elif status != 5:
            d.supplement = None
        if fee is not None:
            d.fee = SeedFee.model_validate(fee)
        elif status != 6:
            d.fee = None
        if appointment is not None:
            d.appointment = appointment
        return d

    def advance(self, code: str, note: str | None = None) -> int:
        """Move a dossier one usual step on (1→2→4→9→10; 5 and 6 back to 4). Returns the new status."""
        d = self.dossier(code)
        nxt = NEXT_STATUS.get(d.status)
        if nxt is None:
            raise EmulatorError(f"dossier in final status {d.status} cannot advance")
        self.set_status(code, nxt, note)
        return nxt

    # ----------------------------------------------------------------- faults

    def inject(self, fault: Fault) -> Fault:
        """Queue a fault; requests take the first matching queued fault."""
        if fault.kind not in get_args(FaultKind) or fault.route not in ROUTES:
            raise ValueError(f"unknown fault kind {fault.kind!r} or route {fault.route!r}")
        self._faults.append(fault)
        return fault

    def fail(self, status: int = 503, count: int | None = None, route: Route = "dossiers") -> Fault:
        return self.inject(Fault("error", count=count, route=route, status=status))

    def slow(self, delay_s: float, count: int | None = None, route: Route = "dossiers") -> Fault:
        return self.inject(Fault("latency", count=count, route=route, delay_s=delay_s))

    def hang(self, count: int | None = None, route: Route = "dossiers") -> Fault:
        return self.inject(Fault("hang", count=count, route=route))

    def malformed(self, count: int | None = None, variant: Literal["truncated", "schema"] = "truncated") -> Fault:
        return self.inject(Fault("malformed", count=count, variant=variant))

    def rate_limit(self, retry_after_s: int = 1, count: int | None = 1, route: Route = "dossiers") -> Fault:
        return self.inject(Fault("rate_limit", count=count, route=route, retry_after_s=retry_after_s))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._release_hangs()

    def expire_tokens(self) -> None:
        """Every token issued so far stops working at once (as when the identity server restarts)."""
        self._tokens.clear()

    def _release_hangs(self) -> None:
        self._release.set()
        self._release = asyncio.Event()

    def _take_fault(self, route: Route) -> Fault | None:
        for fault in self._faults:
            if fault.route != route:
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
            return fault
        return None

    # ----------------------------------------------------------------- counters

    def reset_stats(self) -> None:
        self._hits = {r: collections.deque(maxlen=100_000) for r in ROUTES}
        self._totals = collections.Counter()
        self.verifications = collections.Counter()

    def count(self, route: Route = "dossiers") -> int:
        return self._totals[route]

    def hit_times(self, route: Route = "dossiers") -> list[float]:
        return list(self._hits[route])

    def per_second(self, route: Route = "dossiers") -> dict[int, int]:
        """Requests per whole second since the first one (for a poll-budget benchmark)."""
        times = self._hits[route]
        if not times:
            return {}
        return dict(collections.Counter(int(t - times[0]) for t in times))

    def max_rate(self, route: Route = "dossiers", window_s: float = 1.0) -> int:
        """The most requests seen in any sliding window of `window_s` seconds (half-open)."""
        times = list(self._hits[route])
        best = 0
        lo = 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def stats(self) -> dict[str, Any]:
        return {
            "totals": dict(self._totals),
            "max_per_second": {r: self.max_rate(r) for r in ROUTES},
            "per_second": {r: self.per_second(r) for r in ROUTES},
            "faults": [asdict(f) for f in self._faults],
            "dossiers": len(self._dossiers),
        }

    async def wait_for_count(self, n: int, route: Route = "dossiers") -> None:
        """Return once `n` requests to `route` have arrived (tests wait on this instead of sleeping; wrap it
        in `asyncio.timeout`)."""
        while self._totals[route] < n:
            await self._arrived.wait()

    def _hit(self, route: Route) -> None:
        self._hits[route].append(self._clock())
        self._totals[route] += 1
        self._arrived.set()
        self._arrived = asyncio.Event()

    # ----------------------------------------------------------------- contract handlers

    async def _apply_fault(self, route: Route, code: str | None = None) -> web.Response | None:
        fault = self._take_fault(route)
        if fault is None:
            return None
        if fault.kind == "latency":
            with contextlib.suppress(TimeoutError):  # cut short by stop() or clear_faults()
                await asyncio.wait_for(self._release.wait(), fault.delay_s)
            return None
        if fault.kind == "hang":
            release = self._release
            await release.wait()
            return _error(503, "unavailable", "hung request released")
        if fault.kind == "error":
            return _error(fault.status, "server_error", "injected failure")
        if fault.kind == "rate_limit":
            return _error(429, "too_many_requests", "slow down", headers={"Retry-After": str(fault.retry_after_s)})
        if fault.variant == "schema":
            # A near miss, as after an unannounced change on the portal: the real record (applicant's name
            # included) with an unknown status code and a date without its offset.
            d = self._dossiers.get(code or "")
            body: dict[str, Any] = to_wire(d) if d is not None else {"code": code}
            body["status"] = {"code": 99, "name": "?"}
            body["received_at"] = "2024-01-01T08:15:00"
            return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))
        return web.Response(text=f'{{"code": "{code}", "status": {{"co', content_type="application/json")

    async def _token(self, request: web.Request) -> web.Response:
        self._hit("token")
        faulty = await self._apply_fault("token")
        if faulty is not None:
            return faulty
        form = await request.post()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            try:
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = client_secret = None
        if form.get("grant_type") != "client_credentials":
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}, status=400
            )
        if client_id != self.client_id or client_secret != self.client_secret:
            return web.json_response(
                {"error": "unauthorized_client", "error_description": "Invalid client credentials"}, status=401
            )
        token = secrets.token_urlsafe(32)
        self._tokens[token] = self._clock() + self.token_ttl_s
        return web.json_response(
            {
                "access_token": token,
                "expires_in": self.token_ttl_s,
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": "dossier:read",
            }
        )

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        expires = self._tokens.get(header[7:].strip())
        return expires is not None and self._clock() < expires

    async def _get_dossier(self, request: web.Request) -> web.Response:
        self._hit("dossiers")
        code = request.match_info["code"].upper()
        faulty = await self._apply_fault("dossiers", code)
        if faulty is not None:
            return faulty
        if not self._authorised(request):
            return _error(
                401,
                "invalid_token",
                "missing, invalid or expired access token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        d = self._dossiers.get(code)
        if d is None:
            return _error(404, "not_found", "no dossier with this code")
        digits = request.headers.get("X-Applicant-Phone-Last4")
        key = request.headers.get("X-Dossier-Key")
        if digits is None and key is None:
            return web.json_response(public_wire(d), dumps=lambda o: json.dumps(o, ensure_ascii=False))
        expected_key = self.dossier_key(code)
        if digits is not None:
            ok = hmac.compare_digest(digits.strip().encode(), d.phone[-4:].encode())
        else:
            ok = hmac.compare_digest((key or "").strip().encode(), expected_key.encode())
        self.verifications["ok" if ok else "failed"] += 1
        if not ok:
            return _error(403, "verification_failed", "the phone digits or the dossier key do not match this dossier")
        return web.json_response(to_wire(d, expected_key), dumps=lambda o: json.dumps(o, ensure_ascii=False))

    # ----------------------------------------------------------------- /_sandbox/ control endpoints

    async def _ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _ctl_add(self, request: web.Request) -> web.Response:
        try:
            d = self.add_dossier(await request.json())
        except (ValidationError, ValueError) as exc:
            return _error(400, "bad_request", str(exc))
        return web.json_response(to_wire(d), status=201, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _ctl_status(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            d = self.set_status(
                request.match_info["code"],
                int(body["status"]),
                body.get("note"),
                supplement=body.get("supplement"),
                fee=body.get("fee"),
            )
        except UnknownDossier as exc:
            return _error(404, "not_found", str(exc))
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            return _error(400, "bad_request", str(exc))
        return web.json_response(to_wire(d), dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _ctl_advance(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
            status = self.advance(request.match_info["code"], body.get("note"))
        except UnknownDossier as exc:
            return _error(404, "not_found", str(exc))
        except EmulatorError as exc:
            return _error(409, "conflict", str(exc))
        return web.json_response({"status": status})

    async def _ctl_fault(self, request: web.Request) -> web.Response:
        try:
            fault = self.inject(Fault(**await request.json()))
        except (TypeError, ValueError) as exc:
            return _error(400, "bad_request", str(exc))
        return web.json_response(asdict(fault), status=201)

    async def _ctl_clear_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"ok": True})

    async def _ctl_expire_tokens(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"ok": True})
