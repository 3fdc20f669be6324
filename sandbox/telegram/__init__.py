"""A local Telegram Bot API emulator (real HTTP server) and the client that plays citizens and staff in it."""

from sandbox.telegram.client import (
    Press,
    SandboxClient,
    SandboxError,
    SandboxTimeout,
    Sent,
    SimGroup,
    SimMessage,
    SimUser,
)
from sandbox.telegram.server import DEFAULT_TOKEN, TelegramEmulator
from sandbox.telegram.world import BotInfo

__all__ = [
    "DEFAULT_TOKEN",
    "BotInfo",
    "Press",
    "SandboxClient",
    "SandboxError",
    "SandboxTimeout",
    "Sent",
    "SimGroup",
    "SimMessage",
    "SimUser",
    "TelegramEmulator",
]
