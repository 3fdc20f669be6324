"""The console's aiohttp server, beside the health server in the bot process, on the bot's database.

Every page asks the database for the signed-in user's role on every request (a removed staff member is refused
at once); every POST carries the session's CSRF token; sign-ins and decisions go to the audit log."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
import structlog
import yaml
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions.staff import role_in
from console import auth, charts, figures, models, review
from core.settings import ROOT, Settings
from kernel.content import Content
from nlu.figures import Refusal
from nlu.tools.common import MODELS
from portal import errors as portal_errors
from store.db import unit_of_work
from store.models_console import ConsoleLink
from store.models_staff import AuditEntry

log = structlog.get_logger(__name__)

PERIODS = (7, 30, 90)
CONSOLE_LANG = "vi"  # the console's pages (console/templates/) are in Vietnamese
# The portal error kinds (portal/errors.py KINDS) as the dashboard names them, in the table's order.
PORTAL_ERROR_LABELS = {
    portal_errors.TIMEOUT: "Hết giờ chờ",
    portal_errors.CONNECTION: "Không kết nối được",
    portal_errors.SERVER_ERROR: "Lỗi máy chủ (5xx)",
    portal_errors.RATE_LIMITED: "Bị giới hạn (429)",
    portal_errors.AUTH: "Xác thực bị từ chối",
    portal_errors.CIRCUIT_OPEN: "Ngắt mạch (không gọi)",
    portal_errors.BAD_RESPONSE: "Trả lời không dùng được",
    portal_errors.OTHER: "Khác",
}
NONCE = web.RequestKey("nonce", str)  # the response's CSP script nonce
TEMPLATES = Path(__file__).resolve().parent / "templates"
Dependencies = Callable[[], Awaitable[dict[str, bool]]]
QueueDepths = Callable[[AsyncSession], Awaitable[dict[str, int]]]
ModelStatus = Callable[[], Awaitable[dict[str, Any] | None]]
# Loads a model file into the NLU server (nlu/client.py NluClient.load_model): None on success, else why not.
ModelSwap = Callable[[str], Awaitable[str | None]]


class ConsoleConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Staff:
    user_id: int
    role: str
    csrf: str


def domain_intents(path: Path = ROOT / "domain.yml") -> list[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return sorted(str(i) for i in data.get("intents", []))


class ConsoleServer:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        dependencies: Dependencies,
        queue_depths: QueueDepths,
        model_status: ModelStatus | None = None,
        swap_model: ModelSwap | None = None,
        models_dir: Path = MODELS,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        content: Content | None = None,
    ) -> None:
        if settings.console_secret is None or len(settings.console_secret.get_secret_value()) < 32:
            # Without a real key anyone could mint a session cookie: the console does not start.
            raise ConsoleConfigError("CONSOLE_SECRET (at least 32 characters) is required to serve the console")
        self.settings = settings
        self.sessions = sessions
        self.dependencies = dependencies
        self.queue_depths = queue_depths
        self.model_status = model_status
        self.swap_model = swap_model
        self._swapping = asyncio.Lock()  # one swap at a time: a second click waits for nothing, it is refused
        self.models_dir = models_dir
        self.clock = clock
        self.content = content if content is not None else Content.load()
        self.secret = settings.console_secret.get_secret_value().encode()
        self.tz = ZoneInfo(settings.timezone)
        self.secure = settings.console_url.startswith("https://")
        self.intents = domain_intents()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers], client_max_size=64 * 1024)
        app.router.add_get("/signin", self.signin_page)
        app.router.add_post("/signin", self.signin)
        app.router.add_post("/signout", self.signout)
        app.router.add_get("/", self.dashboard)
        app.router.add_get("/csv/{series}", self.csv)
        app.router.add_get("/review", self.review_page)
        app.router.add_post("/review/export", self.review_export)
        app.router.add_post("/review/{id:\\d+}", self.review_decide)
        app.router.add_get("/models", self.models_page)
        app.router.add_post("/models/swap", self.models_swap)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.console_listen, self.settings.console_port or 0)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.console_port
        log.info("console.started", port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- plumbing ----------------------------------------------------------------------------------------

    @web.middleware
    async def _headers(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        nonce = secrets.token_urlsafe(12)
        request[NONCE] = nonce
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # Errors are shown as the console's own page; redirects pass through as they are.
            if exc.status >= 400:
                response = self.page(request, "error.html", status=exc.status, message=exc.reason, staff=None)
            else:
                response = web.Response(status=exc.status, headers=exc.headers)
        h = response.headers
        # Scripts only from this response (nonce), nothing from elsewhere, never framed; the sign-in URL carries
        # a token, so no Referer leaves the page and nothing is cached.
        h.setdefault(
            "Content-Security-Policy",
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self' data:;"
            " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Cache-Control", "no-store")
        return response

    def page(self, request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
        html = self.env.get_template(name).render(nonce=request[NONCE], path=request.path, **values)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def say(self, key: str, **values: object) -> str:
        """A console text from data/content/console.yml; the console's pages are in Vietnamese."""
        return self.content.text(f"console.{key}", CONSOLE_LANG, **values)

    def refuse(
        self, request: web.Request, status: int, key: str, *, clear: bool = False, **values: object
    ) -> web.Response:
        """The error page with the text `console.<key>` (data/content/console.yml)."""
        response = self.page(request, "error.html", status=status, message=self.say(key, **values), staff=None)
        if clear:
            response.del_cookie(auth.COOKIE, path="/")
        return response

    async def staff(self, request: web.Request, *, admin: bool = False) -> Staff | web.Response:
        """The signed-in staff member, or the page that refuses them. The role comes from the database now."""
        session = auth.verify(self.secret, request.cookies.get(auth.COOKIE), self.clock())
        if session is None:
            if request.cookies.get(auth.COOKIE):
                log.warning("console.refused", reason="bad_cookie", path=request.path)
            return self.refuse(request, 401, "refused_signed_out")
        async with unit_of_work(self.sessions) as s:
            role = await role_in(s, self.settings, session.user_id)
        if role not in ("admin", "staff"):
            log.warning("console.refused", reason="not_staff", user=session.user_id, path=request.path)
            return self.refuse(request, 403, "refused_no_longer_staff", clear=True)
        if admin and role != "admin":
            return self.refuse(request, 403, "refused_admins_only")
        if request.method == "POST":
            given = request.headers.get("X-CSRF-Token")
            if given is None:
                given = str((await request.post()).get("csrf") or "")
            if not auth.csrf_ok(self.secret, session, given):
                log.warning("console.refused", reason="csrf", user=session.user_id, path=request.path)
                return self.refuse(request, 403, "refused_csrf")
        return Staff(session.user_id, role, session.csrf(self.secret))

    async def audit(self, s: AsyncSession, staff_id: int, action: str, detail: str = "") -> None:
        s.add(AuditEntry(actor_id=staff_id, action=action, detail=detail[:2000], at=self.clock()))
        log.info("staff.action", actor=staff_id, action=action)

    # ---- sign-in -----------------------------------------------------------------------------------------

    async def signin_page(self, request: web.Request) -> web.Response:
        """The link's landing page: it does not use the link. A button does (POST), so a link preview or a
        prefetch that follows the URL cannot burn it."""
        token = request.query.get("t", "")
        async with unit_of_work(self.sessions) as s:
            link = await s.get(ConsoleLink, auth.link_hash(token)) if token else None
        if link is None or link.used_at is not None or link.expires_at <= self.clock():
            return self.refuse(request, 403, "refused_link_spent")
        return self.page(request, "signin.html", token=token, staff=None)

    async def signin(self, request: web.Request) -> web.Response:
        form = await request.post()
        now = self.clock()
        try:
            async with unit_of_work(self.sessions) as s:
                user_id = await auth.redeem(s, str(form.get("t") or ""), now)
                role = await role_in(s, self.settings, user_id)
                if role in ("admin", "staff"):
                    await self.audit(s, user_id, "console.signin", f"role={role}")
        except auth.LinkRefused as refused:
            log.warning("console.refused", reason=f"link_{refused.reason}")
            return self.refuse(request, 403, "refused_link_spent")
        if role not in ("admin", "staff"):
            log.warning("console.refused", reason="not_staff", user=user_id)
            return self.refuse(request, 403, "refused_not_staff")
        cookie, _ = auth.sign(self.secret, user_id, now, self.settings.console_session_hours)
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(
            auth.COOKIE,
            cookie,
            max_age=int(self.settings.console_session_hours * 3600),
            path="/",
            httponly=True,
            secure=self.secure,
            samesite="Strict",
        )
        return response

    async def signout(self, request: web.Request) -> web.Response:
        staff = await self.staff(request)
        if isinstance(staff, web.Response):
            return staff
        response = self.page(request, "error.html", status=200, message="Bạn đã đăng xuất.", staff=None)
        response.del_cookie(auth.COOKIE, path="/")
        return response

    # ---- dashboard ---------------------------------------------------------------------------------------

    def _period(self, request: web.Request) -> figures.Period:
        try:
            days = int(request.query.get("days", "30"))
        except ValueError:
            days = 30
        return figures.Period.ending(self.clock(), self.tz, days if days in PERIODS else 30)

    async def dashboard(self, request: web.Request) -> web.Response:
        staff = await self.staff(request)
        if isinstance(staff, web.Response):
            return staff
        period = self._period(request)
        async with unit_of_work(self.sessions) as s:
            dash = await figures.compute(s, period)
            depths = await self.queue_depths(s)
        health = await self.dependencies()
        chart_list = [
            charts.bars("Tin nhắn mỗi ngày", [(d.day, float(d.messages)) for d in dash.days]),
            charts.bars("Lượt trò chuyện mỗi ngày", [(d.day, float(d.conversations)) for d in dash.days]),
            charts.bars(
                "Tỷ lệ hiểu được (không dự phòng, không chuyển cán bộ)",
                [(d.day, d.understood_share) for d in dash.days],
                percent=True,
            ),
            charts.bars("Yêu cầu gặp cán bộ mở mỗi ngày", [(d.day, float(d.tickets)) for d in dash.days]),
            charts.bars("Nhắc hẹn đã gửi mỗi ngày", [(d.day, float(d.reminders)) for d in dash.days]),
        ]
        return self.page(
            request,
            "dashboard.html",
            staff=staff,
            dash=dash,
            charts=chart_list,
            health=health,
            depths=depths,
            periods=PERIODS,
            portal_kinds=[(kind, PORTAL_ERROR_LABELS[kind]) for kind in portal_errors.KINDS],
            days=len(dash.days),
            minutes=_minutes,
            duration=_duration,
        )

    async def csv(self, request: web.Request) -> web.Response:
        staff = await self.staff(request)
        if isinstance(staff, web.Response):
            return staff
        # "/csv/feedback" and "/csv/feedback.csv" are the same download
        series = request.match_info["series"].removesuffix(".csv") + ".csv"
        period = self._period(request)
        async with unit_of_work(self.sessions) as s:
            dash = await figures.compute(s, period, feedback_limit=None if series == "feedback.csv" else 0)
        out = io.StringIO()
        w = csv.writer(out)
        if series == "daily.csv":
            w.writerow(
                [
                    "day",
                    "messages",
                    "fallbacks",
                    "handover_asked",
                    "understood",
                    "understood_share",
                    "tickets_opened",
                    "reminders_sent",
                    "feedback_up",
                    "feedback_down",
                    "reminders_snoozed",
                    "reminders_stopped",
                    "reminders_cancelled",
                ]
            )
            for d in dash.days:
                share = "" if d.understood_share is None else f"{d.understood_share:.4f}"
                w.writerow(
                    [
                        d.day.isoformat(),
                        d.messages,
                        d.fallbacks,
                        d.handovers_asked,
                        d.understood,
                        share,
                        d.tickets,
                        d.reminders,
                        d.feedback_up,
                        d.feedback_down,
                        d.reminders_snoozed,
                        d.reminders_stopped,
                        d.reminders_cancelled,
                    ]
                )
        elif series == "intents.csv":
            w.writerow(["intent", "messages"])
            w.writerows(dash.top_intents)
        elif series == "styles.csv":
            w.writerow(["style", "messages", "not_understood"])
            w.writerows((style, *counts) for style, counts in sorted(dash.styles.items()))
        elif series == "conversations.csv":
            w.writerow(["day", "conversations"])
            w.writerows((d.day.isoformat(), d.conversations) for d in dash.days)
        elif series == "portal_errors.csv":  # one row per day and kind that had errors
            w.writerow(["day", "kind", "errors"])
            for d in dash.days:
                w.writerows(
                    (d.day.isoformat(), k, d.portal_errors[k]) for k in portal_errors.KINDS if k in d.portal_errors
                )
        elif series == "broadcasts.csv":
            states = ("sent", "blocked", "unknown", "failed", "pending", "sending")
            extra = ("created_by", "approved_by", "started_at", "ended_at", "duration_s")
            w.writerow(["id", "status", "created_at", "audience", "total", *states, *extra])
            for b in dash.broadcasts:
                w.writerow(
                    [
                        b.id,
                        b.status,
                        b.created_at.isoformat(),
                        b.audience,
                        b.total,
                        *(b.states.get(k, 0) for k in states),
                        b.created_by,
                        "" if b.approved_by is None else b.approved_by,
                        b.started_at.isoformat() if b.started_at else "",
                        b.ended_at.isoformat() if b.ended_at else "",
                        "" if b.duration_s is None else f"{b.duration_s:.0f}",
                    ]
                )
        elif series == "feedback.csv":
            w.writerow(["topic", "answer", "up", "down", "latest_comments"])
            for f in dash.feedback:
                w.writerow([f.topic, f.answer, f.up, f.down, " | ".join(f.comments)])
        else:
            raise web.HTTPNotFound()
        name = f"{series[:-4]}_{period.first:%Y%m%d}_{period.last:%Y%m%d}.csv"
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # ---- review queue ------------------------------------------------------------------------------------

    async def review_page(self, request: web.Request) -> web.Response:
        staff = await self.staff(request)
        if isinstance(staff, web.Response):
            return staff
        async with unit_of_work(self.sessions) as s:
            items = await review.open_items(s)
            labelled = await review.labelled_items(s)
        return self.page(
            request,
            "review.html",
            staff=staff,
            items=items,
            labelled=labelled,
            intents=self.intents,
            exported=request.query.get("exported"),
            exported_n=request.query.get("n"),
            tz=self.tz,
        )

    async def review_decide(self, request: web.Request) -> web.Response:
        staff = await self.staff(request)
        if isinstance(staff, web.Response):
            return staff
        form = await request.post()
        action = str(form.get("action") or "")
        label = str(form.get("intent") or "").strip() if action == "label" else None
        if action not in ("label", "dismiss") or (label is not None and label not in self.intents):
            raise web.HTTPBadRequest(reason="unknown action or intent")
        review_id = int(request.match_info["id"])
        async with unit_of_work(self.sessions) as s:
            row = await review.decide(s, review_id, staff.user_id, self.clock(), label)
            if row is not None:
                await self.audit(s, staff.user_id, f"console.review_{action}", f"id={review_id} intent={label or ''}")
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"ok": row is not None, "status": row.status if row else "gone"})
        raise web.HTTPSeeOther("/review")

    async def review_export(self, request: web.Request) -> web.Response:
        staff = await self.staff(request)
        if isinstance(staff, web.Response):
            return staff
        now = self.clock()
        async with unit_of_work(self.sessions) as s:
            result = await review.export(s, self.settings.console_export_dir, now)
            if result is not None:
                path, n = result
                await self.audit(s, staff.user_id, "console.review_export", f"{path.name} rows={n}")
        if result is None:
            raise web.HTTPSeeOther("/review")
        raise web.HTTPSeeOther(f"/review?exported={path.name}&n={n}")

    # ---- models (admins) ---------------------------------------------------------------------------------

    async def models_page(self, request: web.Request) -> web.Response:
        staff = await self.staff(request, admin=True)
        if isinstance(staff, web.Response):
            return staff
        status, found = await self._models()
        candidate = found.candidate(request.query.get("candidate"))
        async with unit_of_work(self.sessions) as s:
            counts = await models.review_counts(s)
        return self.page(
            request,
            "models.html",
            staff=staff,
            found=found,
            answered=status is not None,
            counts=counts,
            tz=self.tz,
            running=found.find(found.running),
            candidate=candidate,
            verdict=found.verdict(candidate) if candidate is not None else None,
            can_swap=self.swap_model is not None and status is not None,
            reasons={r: self.say(f"swap_{r.value}") for r in Refusal},
            swapped=request.query.get("swapped"),
            failed=request.query.get("failed"),
        )

    async def _models(self) -> tuple[dict[str, Any] | None, models.Models]:
        status = await self.model_status() if self.model_status is not None else None
        running = str(status.get("model_file") or "") if status else None
        return status, await asyncio.to_thread(models.scan, self.models_dir, running)

    async def models_swap(self, request: web.Request) -> web.Response:
        """The hot-swap button: the same guard as `make nlu-reload`, checked again here on the figures on disk
        (the page may be old), then the NLU server loads the candidate while the old model keeps answering."""
        staff = await self.staff(request, admin=True)
        if isinstance(staff, web.Response):
            return staff
        name = str((await request.post()).get("model") or "")
        if self.swap_model is None:
            return self.refuse(request, 503, "refused_no_nlu")
        if self._swapping.locked():
            return self.refuse(request, 409, "refused_swap_busy")
        async with self._swapping:
            status, found = await self._models()
            candidate = found.find(name) if models.MODEL_NAME.fullmatch(name) else None
            if candidate is None:
                return self.refuse(request, 404, "refused_no_such_model")
            verdict = found.verdict(candidate) if status is not None else None
            if status is None or verdict is not None:
                why = self.say(f"swap_{verdict.value}" if verdict is not None else "swap_nlu_silent")
                async with unit_of_work(self.sessions) as s:
                    await self.audit(s, staff.user_id, "console.model_swap_refused", f"{name}: {why}")
                return self.refuse(request, 409, "refused_swap", name=name, why=why)
            before = found.running
            error = await self.swap_model(str((self.models_dir / name).resolve()))
            after = await self.model_status() if self.model_status is not None else None
            now_running = Path(str(after.get("model_file") or "")).name if after else None
            if error is None and now_running != name:
                error = f"máy chủ NLU báo đang chạy {now_running or '—'}"
            async with unit_of_work(self.sessions) as s:
                action = "console.model_swap" if error is None else "console.model_swap_failed"
                await self.audit(s, staff.user_id, action, f"{before} -> {name}" + (f": {error}" if error else ""))
        if error is not None:
            log.warning("console.model_swap_failed", model=name, error=error[:200])
            raise web.HTTPSeeOther(f"/models?{urlencode({'failed': name})}")
        raise web.HTTPSeeOther(f"/models?{urlencode({'swapped': name})}")


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = seconds / 60
    return f"{minutes:.0f} phút" if minutes < 90 else f"{minutes / 60:.1f} giờ"


def _duration(seconds: float | None) -> str:
    """A broadcast's sending time: seconds matter for a small audience, hours for the whole province."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} giây"
    return _minutes(seconds)


__all__ = ["ConsoleConfigError", "ConsoleServer"]
