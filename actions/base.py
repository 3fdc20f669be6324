"""The contract every capability module follows, and the per-update context it receives."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from actions.content import Content
from actions.types import Incoming, Reply
from core.settings import Settings
from store.models import User


@dataclass
class Context:
    """One unit of work: the update's database session (committed by the caller), the user's row, services."""

    content: Content
    settings: Settings
    session: AsyncSession
    user: User
    now: dt.datetime
    services: dict[str, Any] = field(default_factory=dict)  # long-lived clients, keyed by capability
    # What capabilities' `prefetch` hooks fetched over the network before this unit of work opened (a result or
    # the exception it raised), keyed by the capability's own keys: no transaction waits on a remote service.
    fetched: dict[str, object] = field(default_factory=dict)

    @property
    def lang(self) -> str:
        return self.user.lang

    def t(self, key: str, **values: object) -> str:
        return self.content.text(key, self.user.lang, **values)


class Capability(Protocol):
    """A capability answers some intents and owns some callback actions (see actions.callbacks)."""

    intents: tuple[str, ...]
    callbacks: tuple[str, ...]

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]: ...

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]: ...
