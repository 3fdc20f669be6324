"""The launcher behind `make run`: Rasa and the bot, plus the sandbox and a terminal chat when no token is set."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from core.logs import setup_logging
from core.settings import ROOT, Settings, load_settings
from nlu.server import RasaServer, start_rasa
from sandbox import history
from sandbox.portal.server import PortalEmulator, load_seed
from sandbox.telegram.client import SandboxClient, SandboxError, SandboxTimeout, SimGroup, SimMessage, SimUser
from sandbox.telegram.server import TelegramEmulator

SANDBOX_TOKEN = "123456:SANDBOX-sandbox-sandbox-sandbox"  # noqa: S105 (the emulator accepts any token)
LOG_DIR = ROOT / "var" / "log"
SANDBOX_DB = ROOT / "var" / "sandbox.db"
SEED = load_seed()  # the portal emulator starts from it: the codes a newcomer can try


def say(msg: str) -> None:
    print(f"[run] {msg}", flush=True)


def start_rasa_for(url: str, token: str) -> RasaServer:
    port = urlparse(url).port or 5005
    say("starting the Rasa NLU server (≈20 s)…")
    return start_rasa(token, port=port, progress=True)


def start_bot(env: dict[str, str], log_path: Path | None) -> subprocess.Popen[bytes]:
    out = log_path.open("ab") if log_path else None
    return subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=out, stderr=out)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def busy_ports(wanted: list[tuple[str, str, int]]) -> list[str]:
    """Which of (what, host, port) another program already listens on: said before anything starts, instead of
    a Rasa that times out or a bot that dies on its health or console port."""
    busy = []
    for what, host, port in wanted:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free to use
            try:
                s.bind((host, port))
            except OSError:
                busy.append(f"{what} {host}:{port}")
    return busy


def ports_of(settings: Settings) -> list[tuple[str, str, int]]:
    """The fixed ports `make run` with a real token needs: Rasa's (RASA_URL), and the bot's own when set."""
    rasa = urlparse(settings.rasa_url)
    wanted = [("the Rasa server (RASA_URL)", rasa.hostname or "127.0.0.1", rasa.port or 5005)]
    if settings.health_port is not None:
        wanted.append(("the health server (HEALTH_PORT)", settings.health_listen, settings.health_port))
    if settings.console_port is not None:
        wanted.append(("the staff console (CONSOLE_PORT)", settings.console_listen, settings.console_port))
    if settings.webhook_url is not None:
        wanted.append(("the webhook (WEBHOOK_PORT)", settings.webhook_listen, settings.webhook_port))
    return wanted


def run_real(settings: Settings) -> int:
    busy = busy_ports(ports_of(settings))
    if busy:
        say("another program already listens on " + ", ".join(busy) + ": stop it, or set another port in .env")
        return 1
    rasa = start_rasa_for(settings.rasa_url, settings.rasa_token.get_secret_value())
    bot = start_bot(dict(os.environ), None)
    say("the bot is running against Telegram; Ctrl-C stops it")
    try:
        return bot.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(bot)
        rasa.stop()


# ---- the sandbox -------------------------------------------------------------------------------------------

CITIZENS = ["An", "Bình", "Chi", "Dũng", "Emily", "Phương", "Giang", "Hà", "Khoa"]
STAFF_ID = 1010  # "Lan", the working group's admin (ADMIN_IDS) and the one member of the staff group
STAFF_NAME = "Lan (Tổ 06)"
STAFF_GROUP_ID = -1_001_000_000_606
STAFF_GROUP_TITLE = "Tổ công tác Đề án 06"
POLL_INTERVAL_S = 15.0  # the sandbox bot looks up followed dossiers this often, so a change shows up soon
HELP = (
    "Type a message as a citizen. Buttons are numbered: type the number to press one.\n"
    "/as N — become simulated user N (1–9 citizens, 10 the staff admin Lan), /users — who is who,\n"
    "/staff — act as Lan in the staff group (text replies to the group's latest post: that is how staff answer\n"
    "a citizen's ticket), /portal codes — the portal's sample dossiers, /portal advance CODE — move one a step on\n"
    "(a citizen who follows it gets a notice within ≈15 s), /block, /unblock, /help, /quit — leave.\n"
    "Commands for the bot (/start, /menu, /lang …) are sent as they are."
)


def _plain(text: str) -> str:
    """Telegram HTML as a terminal shows it."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


@dataclass
class View:
    """One chat as the terminal shows it: a citizen's private chat, or the staff group."""

    chat: SimUser | SimGroup
    label: str
    buttons: list[tuple[SimMessage, int, int]] = field(default_factory=list)
    asked_at: float | None = None  # when the user last wrote here: the answer shows how long it took
    first_at: float | None = None  # when the first message of the latest burst arrived


class ChatSession:
    """The terminal chat's logic without the terminal: lines in (`handle`), what the chats receive out (`out`)."""

    def __init__(self, client: SandboxClient, portal_url: str, out: Callable[[str], None] = print) -> None:
        self.client = client
        self.portal = httpx.AsyncClient(base_url=portal_url, timeout=10)
        self.out = out
        self.views: dict[int, View] = {}
        self.staff_view: View | None = None
        self.current = 1
        self._watchers: list[asyncio.Task[None]] = []
        self._closing = False

    async def setup(self) -> None:
        """The simulated citizens, the staff admin and the staff group (before the bot starts: it needs their ids)."""
        for i, name in enumerate(CITIZENS, start=1):
            user = await self.client.user(1000 + i, first_name=name, language_code="en" if name == "Emily" else "vi")
            self.views[i] = View(user, name)
        staff = await self.client.user(STAFF_ID, first_name=STAFF_NAME, language_code="vi")
        self.views[len(CITIZENS) + 1] = View(staff, STAFF_NAME)
        group = await self.client.group(
            STAFF_GROUP_TITLE, members=[staff], chat_id=STAFF_GROUP_ID, supergroup=True, bot_admin=True
        )
        self.staff_view = View(group, f"👥 {STAFF_GROUP_TITLE}")

    def bot_env(self) -> dict[str, str]:
        return {
            "ADMIN_IDS": json.dumps([STAFF_ID]),
            "STAFF_CHAT_ID": str(STAFF_GROUP_ID),
            "PORTAL_POLL_INTERVAL_S": str(POLL_INTERVAL_S),
            "PORTAL_POLL_RUN_S": "2",
        }

    def start_watching(self) -> None:
        """Print whatever any chat receives as it arrives: answers, reminders, dossier notices, staff replies."""
        views = [*self.views.values(), *([self.staff_view] if self.staff_view else [])]
        self._watchers = [asyncio.create_task(self._watch(v)) for v in views]

    async def aclose(self) -> None:
        self._closing = True
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.portal.aclose()

    @property
    def view(self) -> View:
        if self.current == 0 and self.staff_view is not None:
            return self.staff_view
        return self.views[self.current]

    def prompt(self) -> str:
        return f"{STAFF_NAME} @ {STAFF_GROUP_TITLE}> " if self.current == 0 else f"{self.view.label}> "

    async def _watch(self, view: View) -> None:
        while not self._closing:
            try:
                got = await self._burst(view)
            except (httpx.HTTPError, SandboxError):
                await asyncio.sleep(1)  # the emulator is stopping, or busy: try again
                continue
            if got:
                self.show(view, got)

    @staticmethod
    async def _burst(view: View) -> list[SimMessage]:
        """The next message, and what follows it closely (a menu after a text)."""
        try:
            got = await view.chat.wait_for(count=1, timeout=20)
        except SandboxTimeout as none:
            return list(none.received)
        view.first_at = time.monotonic()  # before the 0.4 s spent waiting for what follows
        while True:
            try:
                got += await view.chat.wait_for(count=1, timeout=0.4)
            except SandboxTimeout as rest:
                return got + list(rest.received)

    def show(self, view: View, messages: list[SimMessage]) -> None:
        lines: list[str] = []
        if view is not self.view:
            lines.append(f"── to {view.label} ──")
        if view.asked_at is not None:
            # time to the first message, not counting this chat's own wait for follow-up messages
            first = view.first_at if view.first_at is not None else time.monotonic()
            lines.append(f"(answered in {max(first - view.asked_at, 0.0):.2f} s)")
            view.asked_at = None
        numbered: list[tuple[SimMessage, int, int]] = []
        for m in messages:
            if m.deleted:
                lines.append("🗑 (a message was deleted)")
                continue
            prefix = "✎ " if m.edited else ""
            lines.append(f"🤖 {prefix}{_plain(m.body)}")
            for r, row in enumerate(m.buttons or []):
                cells = []
                for c, (label, _data) in enumerate(row):
                    numbered.append((m, r, c))
                    cells.append(f"[{len(numbered)}] {label}")
                lines.append("   " + "   ".join(cells))
        if numbered:
            view.buttons = numbered
        self.out("\n" + "\n".join(lines))

    async def handle(self, line: str) -> bool:
        """One line typed by the user; False when they asked to leave."""
        line = line.strip()
        if not line:
            return True
        if line in ("/quit", "/exit"):
            return False
        try:
            await self._handle(line)
        except SandboxError as exc:
            self.out(f"(the sandbox refused that: {exc.reason})")
        except httpx.HTTPError as exc:
            self.out(f"(could not reach the sandbox: {exc})")
        return True

    async def _handle(self, line: str) -> None:
        view = self.view
        if line == "/help":
            self.out(HELP)
        elif line.startswith("/as"):
            arg = line[3:].strip()
            if arg.isdigit() and int(arg) in self.views:
                self.current = int(arg)
                self.out(f"(you are now {self.view.label}, in your private chat with the bot)")
            else:
                self.out(f"(usage: /as N, N from 1 to {len(self.views)}; /users lists them)")
        elif line == "/users":
            self.out(", ".join(f"{i}: {v.label}" for i, v in self.views.items()) + "; /staff: the staff group")
        elif line == "/staff":
            self.current = 0
            self.out(f"(you are {STAFF_NAME} in the group {STAFF_GROUP_TITLE}; /as N goes back to a private chat)")
        elif line.split(" ", 1)[0] == "/portal":
            await self._portal(line.split()[1:])
        elif line in ("/block", "/unblock"):
            if isinstance(view.chat, SimUser):
                await (view.chat.block() if line == "/block" else view.chat.unblock())
                self.out(f"({view.label} {line[1:]}ed the bot)")
            else:
                self.out("(only a citizen can block the bot)")
        elif line.isdigit() and len(line) <= 2:  # longer numbers (a phone's last 4 digits) are typed text
            n = int(line)
            if not 1 <= n <= len(view.buttons):
                self.out(f"(no button {n} here; the buttons of the latest message are numbered 1–{len(view.buttons)})")
                return
            msg, r, c = view.buttons[n - 1]
            view.asked_at = time.monotonic()
            if isinstance(view.chat, SimGroup):
                await view.chat.press(STAFF_ID, msg, r, c)
            else:
                await view.chat.press(msg, r, c)
        else:
            view.asked_at = time.monotonic()
            await self._send(view, line)

    async def _send(self, view: View, line: str) -> None:
        chat = view.chat
        if isinstance(chat, SimUser):
            if line.startswith("/"):
                name, _sep, arg = line[1:].partition(" ")
                await chat.command(name, arg or None)
            else:
                await chat.send(line)
            return
        if line.startswith("/"):
            await chat.send(STAFF_ID, line)
            return
        posts = [m for m in chat.inbox if not m.deleted]
        if posts:  # staff answer a ticket by replying to its post
            await chat.send(STAFF_ID, line, reply_to=posts[-1])
            excerpt = " ".join(_plain(posts[-1].body).split())[:60]
            self.out(f"(sent as a reply to: {excerpt}…)")
        else:
            await chat.send(STAFF_ID, line)

    async def _portal(self, args: list[str]) -> None:
        if args[:1] == ["codes"]:
            await self._portal_codes()
        elif args[:1] == ["advance"] and len(args) == 2:
            started = time.monotonic()
            r = await self.portal.post(f"/_sandbox/dossiers/{args[1]}/advance", json={})
            if r.status_code != 200:
                self.out(f"(the portal refused: {r.json().get('message', r.text)})")
                return
            self.out(
                f"(dossier {args[1].upper()} is now in status {r.json()['status']}, in {time.monotonic() - started:.2f}"
                f" s; a citizen who follows it gets a notice within ≈{POLL_INTERVAL_S:.0f} s)"
            )
        else:
            self.out("(usage: /portal codes | /portal advance CODE)")

    async def _portal_codes(self) -> None:
        token = await self.portal.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "client_id": SEED.client.id, "client_secret": SEED.client.secret},
        )
        token.raise_for_status()
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        lines = [
            "The portal's sample dossiers (type a code to the bot to look it up; the full card and following ask for",
            "the last 4 digits of the applicant's phone, shown here as 'phone …NNNN'):",
        ]
        for d in SEED.dossiers:
            r = await self.portal.get(f"/dossiers/{d.code}", headers=auth)
            status = r.json()["status"] if r.status_code == 200 else {"code": "?", "name": r.reason_phrase}
            lines.append(f"  {d.code}  {d.procedure} — {status['code']}: {status['name']}  (phone …{d.phone[-4:]})")
        self.out("\n".join(lines))


async def chat_loop(session: ChatSession) -> None:
    """The terminal: prompt_toolkit reads a line at a time; what the chats receive prints above the prompt."""
    print(HELP)
    prompt: PromptSession[str] = PromptSession()
    with patch_stdout():
        session.start_watching()
        while True:
            try:
                line = await prompt.prompt_async(session.prompt())
            except (EOFError, KeyboardInterrupt):
                break
            if not await session.handle(line):
                break


async def sandbox_services() -> tuple[TelegramEmulator, str, PortalEmulator, str]:
    telegram = TelegramEmulator(tokens=[SANDBOX_TOKEN])
    telegram_url = await telegram.start("127.0.0.1", 0)
    # A fresh client secret each run: the bot refuses the public default, in the sandbox as anywhere.
    portal = PortalEmulator(client_secret=secrets.token_urlsafe(24))
    portal_url = await portal.start("127.0.0.1", 0)
    return telegram, telegram_url, portal, portal_url


def sandbox_bot_env(telegram_url: str, portal: PortalEmulator, rasa_url: str, rasa_token: str) -> dict[str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        console_port = s.getsockname()[1]
    return {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN,
        "TELEGRAM_BASE_URL": f"{telegram_url}/bot",
        "WEBHOOK_URL": "",
        "PORTAL_BASE_URL": portal.base_url,
        "PORTAL_TOKEN_URL": portal.token_url,
        "PORTAL_CLIENT_ID": portal.client_id,
        "PORTAL_CLIENT_SECRET": portal.client_secret,
        "RASA_URL": rasa_url,
        "RASA_TOKEN": rasa_token,
        "DATABASE_URL": os.environ.get("SANDBOX_DATABASE_URL", f"sqlite+aiosqlite:///{SANDBOX_DB}"),
        "LOG_FORMAT": "json",
        # The staff console on a free local port, with a fresh key each run: Lan (/as 10) sends /console.
        "CONSOLE_PORT": str(console_port),
        "CONSOLE_URL": f"http://127.0.0.1:{console_port}",
        "CONSOLE_SECRET": secrets.token_urlsafe(48),
    }


def fresh_sandbox_db() -> None:
    """The emulator starts empty and numbers updates from 1 again, so the bot's database must start empty too:
    an old one would take the new updates for ones already handled, and announce stale dossier changes."""
    if os.environ.get("SANDBOX_DATABASE_URL"):
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{SANDBOX_DB}{suffix}").unlink(missing_ok=True)


async def wait_polling(telegram: TelegramEmulator, bot: subprocess.Popen[bytes], timeout_s: float = 60) -> float:
    """Until the bot asks the emulator for updates (it has migrated the database and started its jobs)."""
    started = time.monotonic()
    state = telegram.bot()
    while state.method_calls.get("getUpdates", 0) == 0:
        if bot.poll() is not None:
            raise RuntimeError(f"the bot exited with {bot.returncode}; see {LOG_DIR / 'bot.log'}")
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the bot did not start within {timeout_s:.0f} s; see {LOG_DIR / 'bot.log'}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def run_sandbox_async(rasa_url: str, rasa_token: str) -> None:
    setup_logging("WARNING", "console")  # the emulators' own log lines would interleave with the chat
    telegram, telegram_url, portal, portal_url = await sandbox_services()
    say(f"Telegram emulator on {telegram_url}, portal emulator on {portal_url}")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    client = SandboxClient(telegram_url)
    session = ChatSession(client, portal_url)
    bot: subprocess.Popen[bytes] | None = None
    try:
        await session.setup()
        fresh_sandbox_db()
        env = {**sandbox_bot_env(telegram_url, portal, rasa_url, rasa_token), **session.bot_env()}
        say(f"starting the bot (log: {LOG_DIR / 'bot.log'})…")
        bot = start_bot(env, LOG_DIR / "bot.log")
        say(f"bot ready after {await wait_polling(telegram, bot):.1f} s")
        days = int(os.environ.get("SANDBOX_HISTORY_DAYS", "30"))
        if days > 0 and not os.environ.get("SANDBOX_DATABASE_URL"):
            made = await history.generate(env["DATABASE_URL"], days)
            say(f"{days} days of made-up history for the console and /stats ({made['messages']} messages)")
        say(f"staff console on {env['CONSOLE_URL']}: /as 10, then /console for a sign-in link")
        await chat_loop(session)
    finally:
        say("stopping…")
        await session.aclose()
        await client.aclose()
        if bot is not None:
            await asyncio.to_thread(stop, bot)
        await portal.stop()
        await telegram.stop()


def _main() -> int:
    settings = load_settings()
    if settings.telegram_bot_token is not None:
        return run_real(settings)
    # The sandbox starts its own Rasa on a free port with a token of its own: a second `make run` on the same
    # machine, or a Rasa left running, can neither take its port nor answer in its place (start_rasa waits for
    # *this* process to answer with *this* token).
    token = secrets.token_urlsafe(24)
    started = time.monotonic()
    rasa = start_rasa(token, progress=True)
    say(f"Rasa ready on {rasa.url} after {time.monotonic() - started:.0f} s")
    try:
        asyncio.run(run_sandbox_async(rasa.url, token))
    except KeyboardInterrupt:
        pass
    finally:
        rasa.stop()
        say("stopped")
    return 0


def main() -> int:
    try:
        return _main()
    except KeyboardInterrupt:
        # Ctrl-C while Rasa was starting: the terminal sent the same SIGINT to the Rasa process, which exits.
        say("interrupted; stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
