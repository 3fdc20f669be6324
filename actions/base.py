"""The contract every capability module follows, the services it may use, and the per-update context it receives.

Everything the router (actions/router.py) may ask of a capability is a method of `Capability` below, with a default
that does nothing: a new capability subclasses it and overrides what it needs; nothing else is looked up by name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, get_args

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from kernel.content import Content
from kernel.outbox import Sender
from kernel.types import Button, Incoming, Reply, Understanding
from store.models import User

if TYPE_CHECKING:  # portal/ imports actions/ at run time: only the type is needed here
    from portal.poller import DossierSource


class Waker(Protocol):
    def wake(self) -> None: ...


class NotWired(LookupError):
    """A capability needs a service the channel has not (yet) given it, e.g. a test built without a sender."""


@dataclass
class Services:
    """The long-lived clients capabilities use. One object, shared by reference: capabilities are built before the
    channel starts and fills these in (bot/app.py, post_init), so a field may still be None when first read."""

    sender: Sender | None = None  # the outbound port: messages to chats other than the one being answered
    portal: DossierSource | None = None  # the provincial portal's dossier API
    broadcasts: Waker | None = None  # the running broadcast engine, woken when a broadcast is to go out now
    # Told the chat id of every reply sent: the broadcast engine counts them against Telegram's overall limit.
    reply_sent: Callable[[int], None] | None = None


@dataclass
class Context:
    """One unit of work: the update's database session (committed by the caller), the user's row, services."""

    content: Content
    settings: Settings
    session: AsyncSession
    user: User
    now: dt.datetime
    services: Services = field(default_factory=Services)
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


# The methods below, by name: `Capability.overridden` says which of them a class defines, so the router consults
# only those (the defaults would answer the same, but several hooks run on every typed message).
Hook = Literal[
    "on_intent",
    "on_callback",
    "on_command",
    "on_deep_link",
    "release_text",
    "menu_buttons",
    "prefetch",
    "text_wait",
    "wants_text",
    "on_text",
    "wants_media",
    "on_media",
    "on_staff_group",
    "observe",
]
HOOKS: tuple[Hook, ...] = get_args(Hook)


class Capability:
    """Something the assistant does: it answers some intents, owns some button actions and slash commands, and
    may take part in the conversation at the moments below. The router (actions/router.py) consults capabilities
    in the order bot/app.py lists them; every hook is a coroutine except `text_wait`.

    Declared by the class:
      intents    intents it answers (an intent belongs to one capability); each goes to `on_intent`.
      callbacks  button actions it owns (kernel/callbacks.py; one owner each); each press goes to `on_callback`.
      commands   slash commands it answers, besides the router's own (/start, /menu, /help, /lang).

    Answering what it declared (the router refuses a capability that declares something without its method):
      on_intent(inc, ctx)               a message understood as one of `intents`, or a menu or "did you mean…?"
                                        button for one. Default [].
      on_callback(inc, ctx)             a press of one of `callbacks` (payload validated). Default [].
      on_command(name, args, inc, ctx)  `/name args` for one of `commands`. Default [].

    Optional hooks, consulted only in the capabilities that define them (`wants_text` needs `on_text`, and
    `wants_media` needs `on_media`):
      on_deep_link(payload, inc, ctx)   `/start <payload>`: the replies, or [] when the payload is not its own; the
                                        first capability with replies answers. Default [].
      release_text(ctx)                 /start, /menu or /help: stop waiting for a typed answer. Default: nothing.
      menu_buttons(ctx)                 buttons put before the main menu's own entries. Default none.
      prefetch(text, callback, nlu, services, user_id=None)
                                        before the update's transaction opens: network reads its handlers will need
                                        (a dossier lookup), returned as a dict the handlers find in `ctx.fetched`.
                                        An exception is logged and the handlers fetch themselves. Default {}.
      text_wait(user_id)                once, when the router is built: a SQL condition, on the bound parameter
                                        `user_id`, true whenever `wants_text` may be; all capabilities' conditions
                                        are asked in one statement per typed message, and `wants_text` runs only
                                        where its condition holds. None (the default): `wants_text` always runs.
      wants_text(ctx)                   is it waiting for this citizen's typed answer? Asked for every typed
                                        message, in order, before the NLU reading is used. Default False.
      on_text(inc, ctx)                 the typed text, when `wants_text` said yes: the first replies answer; []
                                        lets it through to the next and then the NLU (and if `wants_text` now says
                                        no, the citizen is told their question was put aside). Default [].
      wants_media(inc, ctx)             does it take this photo, sticker, voice note…? The first yes gets
                                        `on_media`. Default False.
      on_media(inc, ctx)                the media message, when `wants_media` said yes. Default [].
      on_staff_group(inc, ctx)          a message in the staff group that is not a command; only the first
                                        capability defining it is asked. Default [].
      observe(inc, ctx, intent)         every typed message the NLU read (no `on_text` took it), with what it was
                                        understood as: an intent, "faq:<entry>" when the FAQ answered it, None
                                        when not understood (a fallback, out of scope, a "did you mean…?").
                                        Default: nothing.
    """

    intents: tuple[str, ...] = ()
    callbacks: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    # Which methods this class defines itself (or inherits from a class other than Capability): computed once per
    # class, so the router knows whom to ask without calling defaults or looking names up per update.
    overridden: ClassVar[frozenset[Hook]] = frozenset()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.overridden = frozenset(h for h in HOOKS if getattr(cls, h) is not getattr(Capability, h))

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        return []

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        return []

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        return []

    async def on_deep_link(self, payload: str, inc: Incoming, ctx: Context) -> list[Reply]:
        return []

    async def release_text(self, ctx: Context) -> None:
        return None

    async def menu_buttons(self, ctx: Context) -> Sequence[Button]:
        return ()

    async def prefetch(
        self,
        text: str | None,
        callback: tuple[str, tuple[str, ...]] | None,
        nlu: Understanding | None,
        services: Services,
        user_id: int | None = None,
    ) -> dict[str, object]:
        return {}

    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool] | None:
        return None

    async def wants_text(self, ctx: Context) -> bool:
        return False

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        return []

    async def wants_media(self, inc: Incoming, ctx: Context) -> bool:
        return False

    async def on_media(self, inc: Incoming, ctx: Context) -> list[Reply]:
        return []

    async def on_staff_group(self, inc: Incoming, ctx: Context) -> list[Reply]:
        return []

    async def observe(self, inc: Incoming, ctx: Context, intent: str | None) -> None:
        return None
