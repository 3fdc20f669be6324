"""The contract every capability module follows, and the per-update context it receives."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
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
    # Work the channel runs once this unit of work has committed, outside any transaction: sends to other chats
    # (the staff group, a citizen answered by staff) whose rows were committed with the update (an outbox).
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

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
