"""`make ask`: put typed questions to the real assistant, each as a new citizen, and print what it answers as JSON.

    echo "lệ phí làm hộ chiếu" | python -m tools.ask
    python -m tools.ask --lang en "I forgot my password"

Each question goes to the real bot (the same Application `make run` starts) through the Telegram emulator, with
the real Rasa server started from the current model, the portal emulator and a throwaway SQLite database. One JSON
object per question on stdout: the question, the citizen's language, what the NLU understood, and the replies as the
citizen sees them (HTML stripped, button labels). Logs go to stderr; the exit code is non-zero on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from telegram.ext import Application

from bot.app import Runtime, build_application, start_in_loop, stop_in_loop
from core.logs import setup_logging
from core.settings import Settings
from nlu.client import NluClient
from nlu.server import RasaServer, start_rasa
from sandbox.portal.server import PortalEmulator
from sandbox.telegram.client import SandboxClient, SandboxTimeout, SimMessage
from sandbox.telegram.server import TelegramEmulator

BOT_TOKEN = "123456:ASK-ask-ask-ask-ask-ask-ask"  # noqa: S105 (the emulator accepts any token)
RASA_TOKEN = "ask-rasa-token"  # noqa: S105 (a loopback server started here and stopped on exit)
FIRST_USER_ID = 700_000
FIRST_REPLY_S = 20.0  # the first answer; generous: the machine may be busy training a model
QUIET_S = 0.6  # no further message within this long: the bot has said all it says to this question


def plain(text: str) -> str:
    """Telegram HTML as the citizen reads it."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def log(msg: str) -> None:
    print(f"[ask] {msg}", file=sys.stderr, flush=True)


class Asker:
    """The assistant and what it talks to, started once; `ask` puts one question as a new citizen.

    Pass `rasa_url`/`rasa_token` to use a running Rasa server (the tests' session server); otherwise one is started
    from the latest model and stopped at the end."""

    def __init__(self, rasa_url: str | None = None, rasa_token: str = RASA_TOKEN, quiet_s: float = QUIET_S) -> None:
        self.rasa_url = rasa_url
        self.rasa_token = rasa_token
        self.quiet_s = quiet_s
        self._rasa: RasaServer | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._telegram: TelegramEmulator | None = None
        self._portal: PortalEmulator | None = None
        self._client: SandboxClient | None = None
        self._app: Application | None = None
        self.runtime: Runtime | None = None
        self._nlu: NluClient | None = None
        self._next_user = FIRST_USER_ID

    async def __aenter__(self) -> Asker:
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _start(self) -> None:
        if self.rasa_url is None:
            started = time.monotonic()
            log("starting the Rasa NLU server from the latest model (≈20 s)…")
            self._rasa = await asyncio.to_thread(start_rasa, self.rasa_token)
            self.rasa_url = self._rasa.url
            log(f"Rasa ready after {time.monotonic() - started:.0f} s")
        self._telegram = TelegramEmulator(tokens=[BOT_TOKEN])
        tg_url = await self._telegram.start("127.0.0.1", 0)
        self._portal = PortalEmulator()
        await self._portal.start("127.0.0.1", 0)
        self._tmp = tempfile.TemporaryDirectory(prefix="ask-")
        settings = Settings.model_validate(
            {
                "telegram_bot_token": BOT_TOKEN,
                "telegram_base_url": f"{tg_url}/bot",
                "database_url": f"sqlite+aiosqlite:///{Path(self._tmp.name) / 'ask.db'}",
                "rasa_url": self.rasa_url,
                "rasa_token": self.rasa_token,
                "webhook_url": None,
                "admin_ids": [],
                "staff_chat_id": None,
                "portal_base_url": self._portal.base_url,
                "portal_token_url": self._portal.token_url,
                "portal_client_id": self._portal.client_id,
                "portal_client_secret": self._portal.client_secret,
            }
        )
        self._app, self.runtime = build_application(settings)
        await start_in_loop(self._app)
        self._client = SandboxClient(tg_url)
        # A second client on the same server, only to report what the NLU made of each question.
        self._nlu = NluClient(self.rasa_url, self.rasa_token)

    async def aclose(self) -> None:
        if self._app is not None:
            await stop_in_loop(self._app)
            self._app = None
        if self._nlu is not None:
            await self._nlu.aclose()
            self._nlu = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._portal is not None:
            await self._portal.stop()
            self._portal = None
        if self._telegram is not None:
            await self._telegram.stop()
            self._telegram = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self._rasa is not None:
            await asyncio.to_thread(self._rasa.stop)
            self._rasa = None

    async def ask(self, question: str, lang: str = "vi") -> dict[str, Any]:
        """One question from a citizen the bot has never seen; what it understood and every reply it sent."""
        assert self._client is not None and self._nlu is not None
        self._next_user += 1
        user = await self._client.user(self._next_user, first_name="Dân", language_code=lang)
        understood = await self._nlu.parse(question) if question.strip() and not question.startswith("/") else None
        if question.startswith("/"):
            name, _sep, arg = question[1:].partition(" ")
            await user.command(name, arg or None)
        else:
            await user.send(question)
        messages = await self._burst(user.wait_for)
        return {
            "question": question,
            "lang": lang,
            "intent": understood.intent if understood else None,
            "confidence": round(understood.confidence, 4) if understood else None,
            "replies": [
                {"text": plain(m.body), "buttons": m.labels} for m in messages if not m.deleted and m.body is not None
            ],
        }

    async def _burst(self, wait_for: Any) -> list[SimMessage]:
        """The first reply, then whatever follows it closely (a menu after a text)."""
        try:
            got: list[SimMessage] = await wait_for(count=1, timeout=FIRST_REPLY_S)
        except SandboxTimeout as none:
            return list(none.received)
        while True:
            try:
                got += await wait_for(count=1, timeout=self.quiet_s)
            except SandboxTimeout as rest:
                return got + list(rest.received)


def questions(args: argparse.Namespace) -> Iterable[str]:
    if args.question:
        yield from args.question
        return
    for line in sys.stdin:
        if line.strip():
            yield line.strip()


async def run(args: argparse.Namespace) -> int:
    async with Asker() as asker:
        for q in questions(args):
            print(json.dumps(await asker.ask(q, args.lang), ensure_ascii=False), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ask", description=__doc__.split("\n")[0])
    parser.add_argument("question", nargs="*", help="questions (default: one per line on stdin)")
    parser.add_argument("--lang", choices=("vi", "en"), default="vi", help="the citizen's Telegram language")
    args = parser.parse_args(argv)
    setup_logging("WARNING", "console", stream=sys.stderr)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
