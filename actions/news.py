"""Citizens' news subscriptions: area (a ward/commune found by typing part of its name, or the whole province) and
topics, by buttons."""

from __future__ import annotations

import datetime as dt

import structlog
from sqlalchemy import ColumnElement, delete, exists, select

from actions.base import Capability, Context
from broadcast.audience import Areas, Matches, TopicDef, load_areas, news_topics
from broadcast.message import UNSUBSCRIBE
from kernel import callbacks
from kernel.types import Button, Incoming, Reply
from store.models_news import NewsArea, NewsAreaSearch, NewsSubscription, NewsTopic

log = structlog.get_logger(__name__)

# Callback actions (every payload names what it was drawn for, so an old keyboard still does the right thing).
SUBSCRIBE = "n_sub"  # n_sub: open the subscription screen
AREA = "n_area"  # n_area|<unit id | "all" | "change">: a unit, the whole province, or ask for a name again
WARD = "n_ward"  # kept so a keyboard drawn before the units (district -> ward) asks for a name instead
TOPIC = "n_top"  # n_top|<topic>: toggle a topic
DONE = "n_done"  # n_done: topics chosen
CALLBACKS = (SUBSCRIBE, AREA, WARD, TOPIC, DONE, UNSUBSCRIBE)
callbacks.register(*CALLBACKS)
ALL = "all"
MAX_MATCHES = 8  # buttons under one search: more is a wall on a phone, so the citizen types more of the name
SEARCH_FOR = dt.timedelta(minutes=30)  # after this a typed message is a question again, not a name


def search_reply(ctx: Context, areas: Areas, query: str, found: Matches) -> str:
    """The sentence above a search's buttons: how many matched, or what to type instead."""
    shown = query.strip()[:60]  # ctx.t escapes values: a typed "<b>" is shown as typed, never as markup
    if len("".join(query.split())) < 2:
        return ctx.t("news.area_too_short")
    if not found.units:
        return ctx.t("news.area_none", query=shown, province=areas.province_name(ctx.lang))
    if found.total > len(found.units):
        return ctx.t("news.area_too_many", query=shown, count=found.total, shown=len(found.units))
    return ctx.t("news.area_matches", query=shown, count=found.total)


def _rows(buttons: list[Button], per_row: int = 2) -> tuple[tuple[Button, ...], ...]:
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))


class News(Capability):
    """The citizen side of broadcasts: subscribe, choose area and topics, unsubscribe (also from any broadcast)."""

    intents: tuple[str, ...] = ("subscribe_news", "unsubscribe_news")
    callbacks: tuple[str, ...] = CALLBACKS
    commands = ("subscribe", "unsubscribe")

    def __init__(self, areas: Areas | None = None) -> None:
        self.areas = areas or load_areas()

    # ---- entry points ---------------------------------------------------------------------------------

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        if inc.nlu is not None and inc.nlu.intent == "unsubscribe_news":
            return await self._unsubscribe(ctx)
        return await self._open(ctx)

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        if name == "unsubscribe":
            return await self._unsubscribe(ctx)
        return await self._open(ctx)

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action == SUBSCRIBE:
            return await self._open(ctx, edit=False)
        if action == UNSUBSCRIBE:
            # a new message: pressed under an announcement, editing would wipe the announcement itself
            return await self._unsubscribe(ctx)
        if action == AREA and args:
            return await self._pick_area(ctx, args[0])
        if action == WARD:
            return [await self._ask_area(ctx, edit=True)]
        if action == TOPIC and args:
            return await self._toggle(ctx, args[0])
        if action == DONE:
            return await self._done(ctx)
        return [Reply(ctx.t("news.stale"))]

    # ---- screens ---------------------------------------------------------------------------------------

    async def _open(self, ctx: Context, *, edit: bool = False) -> list[Reply]:
        sub = await ctx.session.get(NewsSubscription, ctx.user.id)
        if sub is None:
            return [await self._ask_area(ctx, edit=edit)]
        await self._stop_search(ctx)
        text = ctx.t("news.status", area=await self._area_label(ctx), topics=await self._topics_label(ctx))
        return [Reply(text, self._subscribed_rows(ctx), edit=edit)]

    async def _ask_area(self, ctx: Context, *, edit: bool) -> Reply:
        """Ask for part of the unit's name: the next typed message is that search (see on_text)."""
        search = await ctx.session.get(NewsAreaSearch, ctx.user.id)
        if search is None:
            ctx.session.add(NewsAreaSearch(user_id=ctx.user.id, asked_at=ctx.now))
        else:
            search.asked_at = ctx.now
        await ctx.session.flush()
        return Reply(ctx.t("news.area_ask"), await self._search_rows(ctx, []), edit=edit)

    async def _search_rows(self, ctx: Context, buttons: list[Button]) -> tuple[tuple[Button, ...], ...]:
        rows = [(b,) for b in buttons]  # one per row: unit names are long ("Phường Đồng Nguyên")
        rows.append((Button(ctx.t("news.btn_whole_province"), callbacks.encode(AREA, ALL)),))
        if await ctx.session.get(NewsSubscription, ctx.user.id) is not None:
            rows.append((Button(ctx.t("news.btn_back"), callbacks.encode(SUBSCRIBE)),))
        return tuple(rows)

    # ---- typed names -----------------------------------------------------------------------------------

    def text_wait(self, user_id: ColumnElement[int]) -> ColumnElement[bool]:
        """The router's one-statement probe: this citizen was asked for a ward/commune's name."""
        return exists().where(NewsAreaSearch.user_id == user_id)

    async def wants_text(self, ctx: Context) -> bool:
        search = await ctx.session.get(NewsAreaSearch, ctx.user.id)
        if search is None:
            return False
        if ctx.now - search.asked_at > SEARCH_FOR:
            await ctx.session.delete(search)
            return False
        return True

    async def on_text(self, inc: Incoming, ctx: Context) -> list[Reply]:
        query = inc.text or ""
        found = self.areas.search(query, limit=MAX_MATCHES)
        buttons = [Button(u.name(ctx.lang), callbacks.encode(AREA, u.id)) for u in found.units]
        text = search_reply(ctx, self.areas, query, found)
        return [Reply(text, await self._search_rows(ctx, buttons))]

    async def _topics_screen(self, ctx: Context) -> Reply:
        chosen = await self._chosen(ctx)
        buttons = []
        for topic in self._topics(ctx):
            mark = "✅ " if topic.id in chosen else ""
            buttons.append(Button(mark + ctx.t(topic.label), callbacks.encode(TOPIC, topic.id)))
        rows = (*_rows(buttons), (Button(ctx.t("news.btn_done"), callbacks.encode(DONE)),))
        area = await self._area_label(ctx)
        return Reply(ctx.t("news.choose_topics", area=area), rows, edit=True)

    def _subscribed_rows(self, ctx: Context) -> tuple[tuple[Button, ...], ...]:
        return (
            (
                Button(ctx.t("news.btn_change_area"), callbacks.encode(AREA, "change")),
                Button(ctx.t("news.btn_topics"), callbacks.encode(TOPIC, "show")),
            ),
            (Button(ctx.t("news.btn_unsubscribe"), callbacks.encode(UNSUBSCRIBE)),),
        )

    # ---- actions ---------------------------------------------------------------------------------------

    async def _pick_area(self, ctx: Context, choice: str) -> list[Reply]:
        if choice == ALL:
            await self._save_area(ctx, [])
            return [await self._topics_screen(ctx)]
        if self.areas.unit(choice) is None:  # "change", or a unit id an older file had
            return [await self._ask_area(ctx, edit=True)]
        await self._save_area(ctx, [choice])
        return [await self._topics_screen(ctx)]

    async def _save_area(self, ctx: Context, units: list[str]) -> None:
        sub = await ctx.session.get(NewsSubscription, ctx.user.id)
        if sub is None:
            ctx.session.add(NewsSubscription(user_id=ctx.user.id, created_at=ctx.now, updated_at=ctx.now))
            await ctx.session.flush()  # the unit rows refer to it
            log.info("news.subscribed")
        else:
            sub.updated_at = ctx.now
        await ctx.session.execute(delete(NewsArea).where(NewsArea.user_id == ctx.user.id))
        ctx.session.add_all(NewsArea(user_id=ctx.user.id, area=u) for u in units)
        await self._stop_search(ctx)
        ctx.user.active = True  # they are talking to the bot, so it can reach them again
        await ctx.session.flush()

    async def _stop_search(self, ctx: Context) -> None:
        await ctx.session.execute(delete(NewsAreaSearch).where(NewsAreaSearch.user_id == ctx.user.id))

    async def _toggle(self, ctx: Context, topic: str) -> list[Reply]:
        if await ctx.session.get(NewsSubscription, ctx.user.id) is None:
            return [await self._ask_area(ctx, edit=True)]
        if topic in {t.id for t in self._topics(ctx)}:
            row = await ctx.session.get(NewsTopic, (ctx.user.id, topic))
            if row is None:
                ctx.session.add(NewsTopic(user_id=ctx.user.id, topic=topic))
            else:
                await ctx.session.delete(row)
            await ctx.session.flush()
        return [await self._topics_screen(ctx)]

    async def _done(self, ctx: Context) -> list[Reply]:
        sub = await ctx.session.get(NewsSubscription, ctx.user.id)
        if sub is None:
            return [await self._ask_area(ctx, edit=True)]
        text = ctx.t("news.subscribed", area=await self._area_label(ctx), topics=await self._topics_label(ctx))
        return [Reply(text, self._subscribed_rows(ctx), edit=True)]

    async def _unsubscribe(self, ctx: Context) -> list[Reply]:
        again = ((Button(ctx.t("news.btn_resubscribe"), callbacks.encode(SUBSCRIBE)),),)
        sub = await ctx.session.get(NewsSubscription, ctx.user.id)
        if sub is None:
            return [Reply(ctx.t("news.not_subscribed"), again)]
        await ctx.session.execute(delete(NewsTopic).where(NewsTopic.user_id == ctx.user.id))
        await ctx.session.execute(delete(NewsArea).where(NewsArea.user_id == ctx.user.id))
        await self._stop_search(ctx)
        await ctx.session.delete(sub)
        await ctx.session.flush()
        log.info("news.unsubscribed")
        return [Reply(ctx.t("news.unsubscribed"), again)]

    # ---- helpers ---------------------------------------------------------------------------------------

    def _topics(self, ctx: Context) -> list[TopicDef]:
        return news_topics(ctx.content)

    async def _chosen(self, ctx: Context) -> set[str]:
        rows = await ctx.session.execute(select(NewsTopic.topic).where(NewsTopic.user_id == ctx.user.id))
        return set(rows.scalars())

    async def _topics_label(self, ctx: Context) -> str:
        chosen = await self._chosen(ctx)
        labels = [ctx.t(t.label) for t in self._topics(ctx) if t.id in chosen]
        return ", ".join(labels) if labels else ctx.t("news.all_topics")

    async def _area_label(self, ctx: Context) -> str:
        rows = await ctx.session.execute(select(NewsArea.area).where(NewsArea.user_id == ctx.user.id))
        return self.areas.label(list(rows.scalars()), ctx.lang)
