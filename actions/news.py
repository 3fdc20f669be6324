"""Citizens' news subscriptions: area (district, then ward/commune, or the whole province) and topics, by buttons."""

from __future__ import annotations

import structlog
from sqlalchemy import delete, select

from actions import callbacks
from actions.base import Context
from actions.types import Button, Incoming, Reply
from broadcast.audience import Areas, District, TopicDef, load_areas, news_topics
from broadcast.message import UNSUBSCRIBE
from store.models_news import NewsSubscription, NewsTopic

log = structlog.get_logger(__name__)

# Callback actions (every payload names what it was drawn for, so an old keyboard still does the right thing).
SUBSCRIBE = "n_sub"  # n_sub: open the subscription screen
AREA = "n_area"  # n_area|<district id | "all">: the whole province, or a district (then its wards)
WARD = "n_ward"  # n_ward|<district>|<ward id | "all">
TOPIC = "n_top"  # n_top|<topic>: toggle a topic
DONE = "n_done"  # n_done: topics chosen
CALLBACKS = (SUBSCRIBE, AREA, WARD, TOPIC, DONE, UNSUBSCRIBE)
callbacks.register(*CALLBACKS)
ALL = "all"


def _rows(buttons: list[Button], per_row: int = 2) -> tuple[tuple[Button, ...], ...]:
    return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))


class News:
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
        if action == WARD and len(args) == 2:
            return await self._pick_ward(ctx, args[0], args[1])
        if action == TOPIC and args:
            return await self._toggle(ctx, args[0])
        if action == DONE:
            return await self._done(ctx)
        return [Reply(ctx.t("news.stale"))]

    # ---- screens ---------------------------------------------------------------------------------------

    async def _open(self, ctx: Context, *, edit: bool = False) -> list[Reply]:
        sub = await ctx.session.get(NewsSubscription, ctx.user.id)
        if sub is None:
            return [self._district_picker(ctx, edit=edit)]
        text = ctx.t("news.status", area=self._area_label(ctx, sub), topics=await self._topics_label(ctx))
        return [Reply(text, self._subscribed_rows(ctx), edit=edit)]

    def _district_picker(self, ctx: Context, *, edit: bool) -> Reply:
        buttons = [Button(ctx.t("news.btn_whole_province"), callbacks.encode(AREA, ALL))]
        buttons += [Button(d.name, callbacks.encode(AREA, d.id)) for d in self.areas.districts]
        return Reply(ctx.t("news.choose_district"), _rows(buttons), edit=edit)

    def _ward_picker(self, ctx: Context, district: District) -> Reply:
        buttons = [
            Button(ctx.t("news.btn_whole_district", name=district.name), callbacks.encode(WARD, district.id, ALL))
        ]
        buttons += [Button(w.name, callbacks.encode(WARD, district.id, w.id)) for w in district.wards]
        rows = (*_rows(buttons), (Button(ctx.t("news.btn_back"), callbacks.encode(SUBSCRIBE)),))
        return Reply(ctx.t("news.choose_ward", district=district.name), rows, edit=True)

    async def _topics_screen(self, ctx: Context) -> Reply:
        chosen = await self._chosen(ctx)
        buttons = []
        for topic in self._topics(ctx):
            mark = "✅ " if topic.id in chosen else ""
            buttons.append(Button(mark + ctx.t(topic.label), callbacks.encode(TOPIC, topic.id)))
        rows = (*_rows(buttons), (Button(ctx.t("news.btn_done"), callbacks.encode(DONE)),))
        sub = await ctx.session.get(NewsSubscription, ctx.user.id)
        area = self._area_label(ctx, sub) if sub else ""
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
        if choice == "change":
            return [self._district_picker(ctx, edit=True)]
        if choice == ALL:
            await self._save_area(ctx, None, None)
            return [await self._topics_screen(ctx)]
        district = self.areas.district(choice)
        if district is None:
            return [self._district_picker(ctx, edit=True)]
        if district.wards:
            return [self._ward_picker(ctx, district)]
        await self._save_area(ctx, district.id, None)
        return [await self._topics_screen(ctx)]

    async def _pick_ward(self, ctx: Context, district_id: str, ward_id: str) -> list[Reply]:
        ward = None if ward_id == ALL else ward_id
        if not self.areas.valid(district_id, ward):
            return [self._district_picker(ctx, edit=True)]
        await self._save_area(ctx, district_id, ward)
        return [await self._topics_screen(ctx)]

    async def _save_area(self, ctx: Context, district: str | None, ward: str | None) -> None:
        sub = await ctx.session.get(NewsSubscription, ctx.user.id)
        if sub is None:
            ctx.session.add(
                NewsSubscription(
                    user_id=ctx.user.id, district=district, ward=ward, created_at=ctx.now, updated_at=ctx.now
                )
            )
            log.info("news.subscribed")
        else:
            sub.district, sub.ward, sub.updated_at = district, ward, ctx.now
        ctx.user.active = True  # they are talking to the bot, so it can reach them again
        await ctx.session.flush()

    async def _toggle(self, ctx: Context, topic: str) -> list[Reply]:
        if await ctx.session.get(NewsSubscription, ctx.user.id) is None:
            return [self._district_picker(ctx, edit=True)]
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
            return [self._district_picker(ctx, edit=True)]
        text = ctx.t("news.subscribed", area=self._area_label(ctx, sub), topics=await self._topics_label(ctx))
        return [Reply(text, self._subscribed_rows(ctx), edit=True)]

    async def _unsubscribe(self, ctx: Context) -> list[Reply]:
        again = ((Button(ctx.t("news.btn_resubscribe"), callbacks.encode(SUBSCRIBE)),),)
        sub = await ctx.session.get(NewsSubscription, ctx.user.id)
        if sub is None:
            return [Reply(ctx.t("news.not_subscribed"), again)]
        await ctx.session.execute(delete(NewsTopic).where(NewsTopic.user_id == ctx.user.id))
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

    def _area_label(self, ctx: Context, sub: NewsSubscription) -> str:
        return self.areas.label(sub.district, sub.ward, ctx.lang)
