"""Telegram handlers: one unit of work per update, idempotent by update_id, replies sent after commit."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import structlog
from sqlalchemy import BigInteger, Boolean, bindparam, exists, select
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from actions.base import Context, Services
from actions.router import Assistant
from bot.render import keyboard, split_text
from bot.sender import message_call, retry_seconds
from bot.spool import ReplySpool
from core import metrics
from core.backoff import backoff_s
from core.flood import FloodGuard
from core.settings import Settings
from kernel import callbacks
from kernel.content import Content
from kernel.types import Incoming, Reply
from store.base import UTCDateTime
from store.db import unit_of_work
from store.models import ProcessedUpdate, User

log = structlog.get_logger(__name__)

# A reply's Bot API call is tried this many times, backing off 0.5, 1, 2 s (jittered) on 5xx/reset/timeout and
# sleeping a 429's retry_after, for at most REPLY_MAX_WAIT_S of waiting in all.
REPLY_ATTEMPTS = 4
REPLY_BACKOFF_S = 0.5
REPLY_JITTER = 0.2  # ±20 %
REPLY_MAX_WAIT_S = 30.0

# "Last seen" is kept to the minute (the staff statistics count citizens seen in the last days): a citizen's
# messages within a minute do not each rewrite the row.
LAST_SEEN_EVERY = dt.timedelta(minutes=1)

# The update guard and the citizen's row in one statement, built once (update handling's most frequent query).
_USER_AND_HANDLED = select(
    User, exists().where(ProcessedUpdate.update_id == bindparam("upd", type_=BigInteger)).label("handled")
).where(User.id == bindparam("uid", type_=BigInteger))

# PostgreSQL: a chat's transaction-scoped lock (the one-bigint key space; migrations use the two-int one) and the
# update's claim. Text statements, built once: the dialects' on_conflict constructs have no cache key.
_CHAT_LOCK = sql_text("SELECT pg_advisory_xact_lock(:chat)").bindparams(bindparam("chat", type_=BigInteger))
_CLAIM = sql_text(
    "INSERT INTO processed_updates (update_id, handled_at) VALUES (:upd, :at) "
    "ON CONFLICT DO NOTHING RETURNING update_id"
).bindparams(bindparam("upd", type_=BigInteger), bindparam("at", type_=UTCDateTime(timezone=True)))
# Both dialects: the citizen's row unless another transaction (another chat, another replica) just wrote it.
_NEW_USER = sql_text(
    "INSERT INTO users (id, chat_id, lang, active, fallbacks_in_row, created_at, last_seen_at) "
    "VALUES (:uid, :uid, :lang, :active, 0, :at, :at) ON CONFLICT (id) DO NOTHING"
).bindparams(
    bindparam("uid", type_=BigInteger),
    bindparam("active", value=True, type_=Boolean),
    bindparam("at", type_=UTCDateTime(timezone=True)),
)

Work = Callable[[Incoming, Context], Awaitable[list[Reply]]]


@dataclass
class TelegramAdapter:
    settings: Settings
    content: Content
    sessions: async_sessionmaker[AsyncSession]
    assistant: Assistant
    services: Services
    flood: FloodGuard
    bot: Bot
    spool: ReplySpool | None = None  # where replies Telegram would not take are kept for the scheduler to resend
    # Button presses have their own budget (FLOOD_BUTTONS_PER_MINUTE): a forged-callback flood costs a unit of work
    # and a reply each, and a chat's presses used to be exempt from any limit.
    button_flood: FloodGuard | None = None

    def __post_init__(self) -> None:
        if self.button_flood is None:
            self.button_flood = FloodGuard(self.settings.flood_buttons_per_minute)

    def register(self, app: Application) -> None:
        # Order matters: commands before text, text before the catch-all for stickers, photos, etc.
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, self.on_command))
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & filters.TEXT, self.on_text))
        app.add_handler(CallbackQueryHandler(self.on_callback))
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE & ~filters.StatusUpdate.ALL, self.on_other))
        app.add_error_handler(self.on_error)

    # ---- handlers ---------------------------------------------------------------------------------------

    async def on_command(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        assert msg is not None and msg.text is not None
        head, _sep, args = msg.text.partition(" ")
        name = head[1:].split("@", 1)[0].lower()

        async def work(inc: Incoming, ctx: Context) -> list[Reply]:
            return await self.assistant.on_command(name, args.strip(), inc, ctx)

        await self._handle(update, work, text=msg.text)

    async def on_text(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        assert msg is not None
        await self._handle(update, self.assistant.on_text, text=msg.text or "")

    async def on_other(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        await self._handle(update, self.assistant.on_media)

    async def on_callback(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        try:
            parsed = callbacks.decode(query.data)
        except callbacks.BadCallback:
            log.warning("callback.rejected", update_id=update.update_id)
            parsed = ("c_stale", ())  # a forged or stale payload gets "this button is old" and the menu, nothing else
        chat, tg_user = update.effective_chat, update.effective_user
        guard = self.button_flood
        if guard is not None and chat is not None and tg_user is not None and not self._unlimited(chat.id, tg_user.id):
            verdict = guard.check(tg_user.id)
            if verdict != "ok":  # refused before any work; the first refusal in a window says why
                if verdict == "warn":  # later ones cost no Bot API call: the client's spinner times out by itself
                    lang = "en" if _is_en(tg_user.language_code) else "vi"
                    try:
                        await query.answer(self.content.text("common.slow_down_buttons", lang))
                    except TelegramError as exc:
                        log.info("callback.answer_failed", error=str(exc))
                log.info("flood.refused", user=tg_user.id, kind="callback")
                metrics.REFUSED.inc()
                return
        try:
            await query.answer()
        except TelegramError as exc:  # an old query can no longer be answered; the press is still handled
            log.info("callback.answer_failed", error=str(exc))
        await self._handle(update, self.assistant.on_callback, callback=parsed)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("update.failed", exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None:
            lang = "en" if (update.effective_user and _is_en(update.effective_user.language_code)) else "vi"
            try:
                await context.bot.send_message(update.effective_chat.id, self.content.text("common.error", lang))
            except TelegramError:
                log.warning("update.error_reply_failed")

    # ---- the unit of work -------------------------------------------------------------------------------

    async def _handle(
        self,
        update: Update,
        work: Work,
        text: str | None = None,
        callback: tuple[str, tuple[str, ...]] | None = None,
    ) -> None:
        chat, tg_user = update.effective_chat, update.effective_user
        if chat is None or tg_user is None or tg_user.is_bot:
            return
        if text:  # PostgreSQL text columns cannot hold NUL, and no citizen means one
            text = text.replace("\x00", "")
        staff_group = chat.id == self.settings.staff_chat_id
        if chat.type != ChatType.PRIVATE and not (staff_group or self.settings.answer_in_groups):
            return
        if staff_group and callback is None and not (text or "").startswith("/"):
            work = self.assistant.on_staff_group  # staff talking in their group: replies to ticket posts
        # Typed messages (what costs NLU and portal calls) are counted here; button presses have their own budget
        # (on_callback). Staff are never limited: a staff member answering citizens in the staff group, or an admin
        # composing an announcement, must not be told to slow down, let alone have an answer dropped.
        limited = callback is None and not self._unlimited(chat.id, tg_user.id)
        verdict = self.flood.check(tg_user.id) if limited else "ok"
        if verdict != "ok":
            if verdict == "warn":
                lang = "en" if _is_en(tg_user.language_code) else "vi"
                await self._send(chat.id, [Reply(self.content.text("common.slow_down", lang))], None)
            log.info("flood.refused", user=tg_user.id)
            metrics.REFUSED.inc()
            return
        metrics.UPDATES.labels(_kind(update)).inc()
        now = dt.datetime.now(dt.UTC)
        # Typed text is read by the NLU server before the transaction opens: no transaction (on SQLite, the single
        # writer lock) is held across that network call, so different citizens' updates do not queue on it.
        understood = await self.assistant.understand(text) if work == self.assistant.on_text else None
        # So is the portal: a dossier lookup may wait its whole deadline (8 s), and other citizens must not.
        relay = work == self.assistant.on_staff_group  # staff answering a ticket: nothing to look up
        fetched = (
            {}
            if relay
            else await self.assistant.prefetch(text, callback, understood, self.services, user_id=tg_user.id)
        )
        async with unit_of_work(self.sessions) as session:
            replicated = session.get_bind().dialect.name == "postgresql"
            user: User | None
            if replicated:
                # Bot replicas share PostgreSQL, and per-chat order in process memory holds within one process only.
                # The chat's lock (held to the commit) runs its updates one at a time across replicas; the update is
                # then claimed before anything runs, so a copy handed to the other replica waits for this one's
                # commit and stops here, instead of running its side effects and failing on the guard's row at the
                # end (or answering twice).
                await session.execute(_CHAT_LOCK, {"chat": chat.id})
                if (await session.execute(_CLAIM, {"upd": update.update_id, "at": now})).first() is None:
                    log.info("update.duplicate", update_id=update.update_id)
                    return
                user = await session.get(User, tg_user.id)
            else:  # SQLite: one process, whose chat lanes already order a chat's updates
                row = (await session.execute(_USER_AND_HANDLED, {"uid": tg_user.id, "upd": update.update_id})).first()
                if row is not None:
                    user, handled = row[0], bool(row[1])
                else:  # a citizen the bot has not met: the guard alone
                    user, handled = None, await session.get(ProcessedUpdate, update.update_id) is not None
                if handled:
                    log.info("update.duplicate", update_id=update.update_id)
                    return
            if user is None:
                # Inserted unless present: the same citizen's first updates in two chats (or on two replicas) race
                # for this row, and the loser must use the winner's row, not fail with an error reply. Written at
                # once: rows the capabilities add refer to it.
                lang = "en" if _is_en(tg_user.language_code) else "vi"
                await session.execute(_NEW_USER, {"uid": tg_user.id, "lang": lang, "at": now})
                user = await session.get(User, tg_user.id)
                assert user is not None
            ctx = Context(self.content, self.settings, session, user, now, self.services, fetched)
            msg = update.message
            inc = Incoming(
                user_id=tg_user.id,
                chat_id=chat.id,
                lang=user.lang,
                display_name=tg_user.first_name or "",
                text=text if text is not None else (msg.caption.replace("\x00", "") if msg and msg.caption else None),
                callback=callback,
                update_id=update.update_id,
                chat_type=chat.type,
                message_id=msg.message_id if msg else None,
                reply_to=msg.reply_to_message.message_id if msg and msg.reply_to_message else None,
                photo=msg.photo[-1].file_id if msg and msg.photo else None,
                kind=_kind(update),
                nlu=understood,
            )
            replies = await work(inc, ctx)
            # The bookkeeping writes come last, so an update that only reads takes the write lock just to commit.
            if not replicated:
                session.add(ProcessedUpdate(update_id=update.update_id, handled_at=now))
            if now - user.last_seen_at >= LAST_SEEN_EVERY:  # to the minute: one UPDATE less per message
                user.last_seen_at = now
            if not user.active:
                user.active = True
        # Committed first, then sent: a crash between the two loses a reply (the citizen asks again) rather than
        # sending it twice when Telegram redelivers the update.
        pressed = update.callback_query.message if update.callback_query else None
        await self._send(chat.id, replies, pressed if isinstance(pressed, Message) else None)
        await _after_commit(ctx.after_commit)

    def _unlimited(self, chat_id: int, user_id: int) -> bool:
        """Staff: anyone writing in the staff group (who may act there is the handover's check), and admins."""
        return chat_id == self.settings.staff_chat_id or user_id in self.settings.admin_ids

    async def _send(self, chat_id: int, replies: list[Reply], pressed: Message | None) -> None:
        pieces = [piece for reply in replies for piece in _pieces(reply, pressed is not None)]
        for i, piece in enumerate(pieces):
            try:
                await self._send_piece(chat_id, piece, pressed)
            except Forbidden:
                log.info("send.blocked", chat=chat_id)
                await self.mark_inactive(chat_id)
                return
            except BadRequest:  # a NetworkError subclass in PTB, but Telegram refusing the request is no outage
                raise
            except (RetryAfter, NetworkError) as exc:  # Telegram still failing after the retries: kept, not lost
                if self.spool is None:
                    raise
                await self.spool.keep(chat_id, pieces[i:], reason=type(exc).__name__)
                return

    async def _send_piece(self, chat_id: int, reply: Reply, pressed: Message | None) -> None:
        if reply.edit and pressed is not None:
            try:
                markup = keyboard(reply)
                edit = partial(pressed.edit_text, reply.text, parse_mode=ParseMode.HTML, reply_markup=markup)
                await _deliver(chat_id, edit)  # an edit is not a new message: not counted
                return
            except BadRequest as exc:
                if "not modified" in exc.message.lower():
                    return
                # Too old, deleted, or not the bot's: the answer goes out as a new message instead.
                log.info("reply.edit_refused", chat=chat_id, error=exc.message)
        await _deliver(chat_id, message_call(self.bot, chat_id, reply))
        self._sent(chat_id)

    def _sent(self, chat_id: int) -> None:
        hook = self.services.reply_sent
        if hook is not None:
            hook(chat_id)

    async def mark_inactive(self, chat_id: int) -> None:
        async with unit_of_work(self.sessions) as session:
            user = await session.get(User, chat_id)
            if user is not None:
                user.active = False


async def _deliver(chat_id: int, call: Callable[[], Awaitable[object]]) -> None:
    """One Bot API call of a reply, retried while Telegram is the problem (5xx, a dropped connection, a timeout,
    429s beyond what the rate limiter already slept on), so a citizen's answer survives a short Telegram hiccup
    instead of being lost after the update was committed. Bad requests and blocks are not retried.

    A read timeout may hide a message that did arrive: retrying then risks a duplicate answer, which is the better
    failure for a conversation than silence. The retries hold this chat's next updates, keeping them in order."""
    waited = 0.0
    for attempt in range(1, REPLY_ATTEMPTS + 1):
        try:
            await call()
            return
        except RetryAfter as exc:
            wait = retry_seconds(exc)
            error = "RetryAfter"
            if attempt == REPLY_ATTEMPTS or waited + wait > REPLY_MAX_WAIT_S:
                raise
        except (BadRequest, Forbidden, InvalidToken):
            raise
        except NetworkError as exc:  # 5xx ("Bad Gateway"), connection reset or refused, TimedOut
            wait = backoff_s(attempt, base_s=REPLY_BACKOFF_S, jitter="proportional", spread=REPLY_JITTER)
            error = type(exc).__name__
            if attempt == REPLY_ATTEMPTS or waited + wait > REPLY_MAX_WAIT_S:
                raise
        log.warning("reply.retry", chat=chat_id, attempt=attempt, error=error, wait_s=round(wait, 2))
        metrics.REPLY_RETRIES.inc()
        waited += wait
        await asyncio.sleep(wait)


async def _after_commit(work: list[Callable[[], Awaitable[None]]]) -> None:
    """What the capabilities queued for after the commit (messages to other chats, committed as outbox rows):
    run outside any transaction, each on its own; one failing leaves its row for the scheduler's pass."""
    for item in work:
        try:
            await item()
        except Exception:
            log.exception("update.after_commit_failed")


def _pieces(reply: Reply, can_edit: bool) -> list[Reply]:
    """A reply as the messages it takes: an over-long text in chunks (buttons under the last, threaded under the
    first), so a send that fails half-way is kept from where it stopped."""
    if reply.photo or (reply.edit and can_edit and len(reply.text) <= 4096):
        return [reply]
    chunks = split_text(reply.text)
    if len(chunks) == 1:
        return [reply]
    last = len(chunks) - 1
    return [
        Reply(chunk, reply.buttons if i == last else (), reply_to=reply.reply_to if i == 0 else None)
        for i, chunk in enumerate(chunks)
    ]


def _kind(update: Update) -> str:
    if update.callback_query is not None:
        return "callback"
    msg = update.message
    if msg is None:
        return "other"
    if msg.text is not None:
        return "command" if msg.text.startswith("/") else "text"
    for kind in ("photo", "sticker", "voice", "location", "contact", "video", "document", "audio"):
        if getattr(msg, kind, None):
            return kind
    return "other"


def _is_en(language_code: str | None) -> bool:
    return bool(language_code) and str(language_code).lower().startswith("en")
