"""The real bot for end-to-end tests: settings pointing at the emulators, and a runner that starts the real PTB
Application (polling the Telegram emulator over HTTP) and stops it at teardown."""

from __future__ import annotations

from telegram.ext import Application

from bot.app import Runtime, build_application, start_in_loop, stop_in_loop
from core.settings import Settings
from sandbox.portal.server import PortalEmulator
from tests.support.base import BOT_TOKEN, RASA_TOKEN


def bot_settings(tg_url: str, db_url: str, rasa_url: str = "http://127.0.0.1:9", **overrides: object) -> Settings:
    values: dict[str, object] = {
        "telegram_bot_token": BOT_TOKEN,
        "telegram_base_url": f"{tg_url}/bot",
        "database_url": db_url,
        "rasa_url": rasa_url,
        "rasa_token": RASA_TOKEN,
        "webhook_url": None,
        "admin_ids": [],
        "staff_chat_id": None,
        # Nothing listens on port 9: a test that needs the portal passes the emulator's URLs.
        "portal_base_url": "http://127.0.0.1:9",
        "portal_token_url": "http://127.0.0.1:9/oauth/token",
        **overrides,
    }
    return Settings.model_validate(values)


def portal_settings(emulator: PortalEmulator) -> dict[str, object]:
    """Settings overrides that point the bot at the portal emulator."""
    return {
        "portal_base_url": emulator.base_url,
        "portal_token_url": emulator.token_url,
        "portal_client_id": emulator.client_id,
        "portal_client_secret": emulator.client_secret,
    }


class BotRunner:
    """Starts the real PTB Application (polling the emulator over HTTP) and stops it at teardown."""

    def __init__(self, tg_url: str) -> None:
        self.tg_url = tg_url
        self.running: list[tuple[Application, Runtime]] = []

    async def start(
        self, db_url: str, *, rasa_url: str = "http://127.0.0.1:9", capabilities: object = None, **overrides: object
    ) -> Runtime:
        settings = bot_settings(self.tg_url, db_url, rasa_url, **overrides)
        app, runtime = build_application(settings, capabilities=capabilities)  # type: ignore[arg-type]
        await start_in_loop(app)
        self.running.append((app, runtime))
        return runtime

    async def stop(self, runtime: Runtime) -> None:
        for i, (app, rt) in enumerate(self.running):
            if rt is runtime:
                await stop_in_loop(app)
                del self.running[i]
                return

    async def stop_all(self) -> None:
        while self.running:
            await self.stop(self.running[-1][1])
