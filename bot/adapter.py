"""Telegram handlers: one unit of work per update, idempotent by update_id, replies sent after commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Bot, Message, ReplyParameters, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from actions import callbacks
from actions.base import Context
from actions.content import Content
from actions.router import Assistant
from actions.types import Incoming, Reply
from bot.render import keyboard, split_text
from core import metrics
from core.flood import FloodGuard
from core.settings import Settings
from store.db import unit_of_work
from store.models import ProcessedUpdate, User

log = structlog.get_logger(__name__)

Work = Callable[[Incoming, Context], Awaitable[list[Reply]]]


@dataclass
class TelegramAdapter:
    settings: Settings
    content: Content
    sessions: async_sessionmaker[AsyncSession]
    assistant: Assistant
    services: dict[str, object]
    flood: FloodGuard
    bot: Bot

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
        # Flood control is for typed messages (what costs NLU and portal calls); button presses are not counted, so
        # a staff member composing announcements or a citizen walking a guide is never told to slow down.
        verdict = self.flood.check(tg_user.id) if callback is None else "ok"
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
        async with unit_of_work(self.sessions) as session:
            if await session.get(ProcessedUpdate, update.update_id) is not None:
                log.info("update.duplicate", update_id=update.update_id)
                return
            user = await session.get(User, tg_user.id)
            if user is None:
                lang = "en" if _is_en(tg_user.language_code) else "vi"
                user = User(id=tg_user.id, chat_id=tg_user.id, lang=lang)
                session.add(user)
            ctx = Context(self.content, self.settings, session, user, now, self.services)
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
            session.add(ProcessedUpdate(update_id=update.update_id, handled_at=now))
            user.last_seen_at = now
            user.active = True
        # Committed first, then sent: a crash between the two loses a reply (the citizen asks again) rather than
        # sending it twice when Telegram redelivers the update.
        pressed = update.callback_query.message if update.callback_query else None
        await self._send(chat.id, replies, pressed if isinstance(pressed, Message) else None)

    async def _send(self, chat_id: int, replies: list[Reply], pressed: Message | None) -> None:
        bot = self.bot
        for reply in replies:
            markup = keyboard(reply)
            thread = ReplyParameters(reply.reply_to, allow_sending_without_reply=True) if reply.reply_to else None
            try:
                if reply.edit and pressed is not None and len(reply.text) <= 4096:
                    try:
                        await pressed.edit_text(reply.text, parse_mode=ParseMode.HTML, reply_markup=markup)
                    except BadRequest as exc:
                        if "not modified" not in exc.message.lower():
                            raise
                    continue
                if reply.photo:
                    await bot.send_photo(
                        chat_id,
                        reply.photo,
                        caption=reply.text or None,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup,
                        reply_parameters=thread,
                    )
                    continue
                chunks = split_text(reply.text)
                for i, chunk in enumerate(chunks):
                    await bot.send_message(
                        chat_id,
                        chunk,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup if i == len(chunks) - 1 else None,
                        reply_parameters=thread if i == 0 else None,
                    )
            except Forbidden:
                log.info("send.blocked", chat=chat_id)
                await self._mark_inactive(chat_id)
                return

    async def _mark_inactive(self, chat_id: int) -> None:
        async with unit_of_work(self.sessions) as session:
            user = await session.get(User, chat_id)
            if user is not None:
                user.active = False


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
