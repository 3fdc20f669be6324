"""The launcher behind `make run`: Rasa and the bot, plus the sandbox and a terminal chat when no token is set."""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from core.settings import ROOT, load_settings
from nlu.server import RasaServer, start_rasa
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient, SandboxTimeout, SimMessage, SimUser
from sandbox.telegram.server import TelegramEmulator

SANDBOX_TOKEN = "123456:SANDBOX-sandbox-sandbox-sandbox"  # noqa: S105 (the emulator accepts any token)
LOG_DIR = ROOT / "var" / "log"
HELP = (
    "Type a message as a citizen. Buttons are numbered: type the number to press one.\n"
    "/as N — become simulated citizen N (1–9), /users — who is who, /block, /unblock, /quit — leave.\n"
    "Commands for the bot (/start, /menu, /lang …) are sent as they are."
)


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


def run_real(rasa_url: str, rasa_token: str) -> int:
    rasa = start_rasa_for(rasa_url, rasa_token)
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


def _plain(text: str) -> str:
    """Telegram HTML as a terminal shows it."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


async def collect(user: SimUser) -> list[SimMessage]:
    """The bot's answer: the first message within 15 s, then whatever follows it closely (a menu after a text)."""
    try:
        got = await user.wait_for(count=1, timeout=15)
    except SandboxTimeout:
        print("(no answer within 15 s — see var/log/bot.log)")
        return []
    while True:
        try:
            got += await user.wait_for(count=1, timeout=0.5)
        except SandboxTimeout as more:
            return got + list(more.received)


async def chat(telegram_url: str) -> None:
    client = SandboxClient(telegram_url)
    names = ["An", "Bình", "Chi", "Dũng", "Emily", "Phương", "Giang", "Hà", "Khoa"]
    users: dict[int, SimUser] = {}
    for i, name in enumerate(names, start=1):
        users[i] = await client.user(1000 + i, first_name=name, language_code="en" if name == "Emily" else "vi")
    current = 1
    last_buttons: list[tuple[SimMessage, int, int]] = []

    def show(messages: list[SimMessage]) -> None:
        last_buttons.clear()
        for m in messages:
            prefix = "✎ " if m.edited else ""
            print(f"\n🤖 {prefix}{_plain(m.body)}")
            for r, row in enumerate(m.buttons or []):
                cells = []
                for c, (label, _data) in enumerate(row):
                    last_buttons.append((m, r, c))
                    cells.append(f"[{len(last_buttons)}] {label}")
                print("   " + "   ".join(cells))

    print(HELP)
    session: PromptSession[str] = PromptSession()
    with patch_stdout():
        while True:
            user = users[current]
            try:
                line = (await session.prompt_async(f"{names[current - 1]}> ")).strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not line:
                continue
            if line in ("/quit", "/exit"):
                break
            if line.startswith("/as "):
                with contextlib.suppress(ValueError):
                    n = int(line[4:])
                    if n in users:
                        current = n
                        print(f"(you are now {names[n - 1]})")
                continue
            if line == "/users":
                print(", ".join(f"{i}: {n}" for i, n in enumerate(names, start=1)))
                continue
            if line in ("/block", "/unblock"):
                await (user.block() if line == "/block" else user.unblock())
                print(f"({names[current - 1]} {line[1:]}ed the bot)")
                continue
            if line.isdigit() and 1 <= int(line) <= len(last_buttons):
                msg, r, c = last_buttons[int(line) - 1]
                await user.press(msg, r, c)
            elif line.startswith("/"):
                name, _sep, arg = line[1:].partition(" ")
                await user.command(name, arg)
            else:
                await user.send(line)
            show(await collect(user))
    await client.aclose()


async def sandbox_services() -> tuple[TelegramEmulator, str, PortalEmulator, str]:
    telegram = TelegramEmulator(tokens=[SANDBOX_TOKEN])
    telegram_url = await telegram.start("127.0.0.1", 0)
    portal = PortalEmulator()
    portal_url = await portal.start("127.0.0.1", 0)
    return telegram, telegram_url, portal, portal_url


async def run_sandbox_async(rasa_url: str, rasa_token: str) -> None:
    telegram, telegram_url, portal, portal_url = await sandbox_services()
    say(f"Telegram emulator on {telegram_url}, portal emulator on {portal_url}")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN,
        "TELEGRAM_BASE_URL": f"{telegram_url}/bot",
        "WEBHOOK_URL": "",
        "PORTAL_BASE_URL": portal_url,
        "PORTAL_TOKEN_URL": f"{portal_url}/oauth/token",
        "RASA_URL": rasa_url,
        "RASA_TOKEN": rasa_token,
        "DATABASE_URL": os.environ.get("SANDBOX_DATABASE_URL", f"sqlite+aiosqlite:///{ROOT / 'var' / 'sandbox.db'}"),
        "LOG_FORMAT": "json",
    }
    bot = start_bot(env, LOG_DIR / "bot.log")
    say(f"bot started (log: {LOG_DIR / 'bot.log'})")
    try:
        await chat(telegram_url)
    finally:
        stop(bot)
        await portal.stop()
        await telegram.stop()


def main() -> int:
    settings = load_settings()
    token = settings.rasa_token.get_secret_value()
    if settings.telegram_bot_token is not None:
        return run_real(settings.rasa_url, token)
    started = time.monotonic()
    rasa = start_rasa_for(settings.rasa_url, token)
    say(f"Rasa ready after {time.monotonic() - started:.0f} s")
    try:
        asyncio.run(run_sandbox_async(settings.rasa_url, token))
    except KeyboardInterrupt:
        pass
    finally:
        rasa.stop()
        say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
