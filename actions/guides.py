"""Step-by-step guides defined in data/content/guides.yml, with troubleshooting detours and saved progress."""

from __future__ import annotations

import structlog

from actions.base import Context
from actions.feedback import offer_feedback
from kernel import callbacks
from kernel.content import Content
from kernel.content_schema import MAX_DETOUR_DEPTH, GuideDef, GuidesSection, guides_section
from kernel.types import Button, Incoming, Reply
from store.models_guides import GuideProgress

log = structlog.get_logger(__name__)

# Callback actions. Every payload names the guide and step it was drawn for, so a button pressed on an old
# message still does the right thing whatever the saved progress says (Telegram keeps old keyboards alive).
START = "g_start"  # g_start|<guide>: begin a guide from step 1
DONE = "g_done"  # g_done|<guide>|<step>: the step worked, go on
FAIL = "g_fail"  # g_fail|<guide>|<step>: it didn't work, open the step's troubleshooting branch
BACK = "g_back"  # g_back|<guide>|<step>: one step back (or out of a branch to where it was opened)
RETURN = "g_ret"  # g_ret|<guide>|<step>: leave a finished branch, back to that guide's step
CONTINUE = "g_cont"  # g_cont: resume the saved step
MENU = "g_menu"  # g_menu|<menu>: a choice screen from guides.yml `menus`
CALLBACKS = (START, DONE, FAIL, BACK, RETURN, CONTINUE, MENU)
# The router's own actions (actions/router.py): its main menu, and an intent started by a button.
ROUTER_MENU, ROUTER_INTENT = "c_menu", "c_intent"
callbacks.register(ROUTER_MENU, ROUTER_INTENT)
callbacks.register(*CALLBACKS)

Frame = tuple[str, int]  # (guide id, 1-based step)


def encode_stack(stack: list[Frame]) -> str:
    return ">".join(f"{gid}:{step}" for gid, step in stack)


def decode_stack(raw: str, book: GuidesSection) -> list[Frame]:
    """The stored stack, dropping anything the current content no longer has (guides change between releases)."""
    stack: list[Frame] = []
    for part in raw.split(">"):
        gid, _, step_s = part.partition(":")
        guide = book.guides.get(gid)
        if guide is None or not step_s.isdigit() or not 1 <= int(step_s) <= len(guide.steps):
            break
        stack.append((gid, int(step_s)))
    return stack


async def load_stack(ctx: Context, book: GuidesSection) -> list[Frame]:
    row = await ctx.session.get(GuideProgress, ctx.user.id)
    return decode_stack(row.stack, book) if row is not None else []


async def save_stack(ctx: Context, stack: list[Frame]) -> None:
    row = await ctx.session.get(GuideProgress, ctx.user.id)
    if not stack:
        if row is not None:
            await ctx.session.delete(row)
        return
    if row is None:
        ctx.session.add(GuideProgress(user_id=ctx.user.id, stack=encode_stack(stack), updated_at=ctx.now))
    else:
        row.stack = encode_stack(stack)
        row.updated_at = ctx.now
    await ctx.session.flush()


async def resume_button(ctx: Context) -> Button | None:
    """[Continue the guide] for the main menu when the citizen left a guide half-way, else None."""
    row = await ctx.session.get(GuideProgress, ctx.user.id)
    if row is None:
        return None
    return Button(ctx.t("guides.btn_resume"), callbacks.encode(CONTINUE))


def seek(stack: list[Frame], gid: str, step: int) -> list[Frame]:
    """Position the stack on `gid` at `step`: drop detours opened above it, or start afresh if it is absent."""
    for i in range(len(stack) - 1, -1, -1):
        if stack[i][0] == gid:
            return [*stack[:i], (gid, step)]
    return [(gid, step)]


class GuideEngine:
    """Renders guides and menus and moves citizens through them. Built once from the loaded content."""

    def __init__(self, content: Content) -> None:
        self.book = guides_section(content)

    # --- entry points ---------------------------------------------------------------------------------

    async def start(self, ctx: Context, gid: str, *, edit: bool = False, step: int = 1) -> list[Reply]:
        await save_stack(ctx, [(gid, step)])
        log.info("guide_started", guide=gid, step=step)
        return [self._step_reply(ctx, [(gid, step)], edit=edit)]

    async def resume(self, ctx: Context, *, edit: bool = False) -> list[Reply]:
        stack = await load_stack(ctx, self.book)
        if not stack:
            return [self.menu_reply(ctx, "main", edit=edit, lead=ctx.t("guides.no_progress"))]
        log.info("guide_resumed", guide=stack[-1][0], step=stack[-1][1])
        return [self._step_reply(ctx, stack, edit=edit, lead=ctx.t("guides.resumed"))]

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, args = inc.callback
        if action == CONTINUE:
            return await self.resume(ctx, edit=True)
        if action == MENU:
            menu = args[0] if args and args[0] in self.book.menus else "main"
            has_progress = bool(await load_stack(ctx, self.book))
            return [self.menu_reply(ctx, menu, edit=True, offer_resume=has_progress)]
        if action == START:
            if not args or args[0] not in self.book.guides:
                return [self.menu_reply(ctx, "main", edit=True)]
            return await self.start(ctx, args[0], edit=True)
        position = self._position(args)
        if position is None:  # a payload this content cannot have drawn (e.g. a guide removed since)
            return [self.menu_reply(ctx, "main", edit=True)]
        gid, step = position
        stack = seek(await load_stack(ctx, self.book), gid, step)
        if action == DONE:
            return await self._done(ctx, stack)
        if action == FAIL:
            return await self._fail(ctx, stack)
        if action == BACK:
            return await self._back(ctx, stack)
        await save_stack(ctx, stack)  # RETURN
        return [self._step_reply(ctx, stack, edit=True)]

    # --- moves ----------------------------------------------------------------------------------------

    async def _done(self, ctx: Context, stack: list[Frame]) -> list[Reply]:
        gid, step = stack[-1]
        guide = self.book.guides[gid]
        if step < len(guide.steps):
            stack[-1] = (gid, step + 1)
            await save_stack(ctx, stack)
            return [self._step_reply(ctx, stack, edit=True)]
        parent = stack[:-1]
        await save_stack(ctx, parent)
        log.info("guide_finished", guide=gid, detour=bool(parent))
        if parent:
            pgid, pstep = parent[-1]
            text = "\n\n".join(
                (
                    f"✅ <b>{ctx.t(guide.done)}</b>",
                    ctx.t("guides.branch_done", n=pstep, title=ctx.t(self.book.guides[pgid].title)),
                )
            )
            buttons = (
                (Button(ctx.t("guides.btn_return", n=pstep), callbacks.encode(RETURN, pgid, pstep)),),
                (self._menu_button(ctx),),
            )
            return [Reply(text, buttons, edit=True)]
        if guide.kind == "branch":
            text = f"✅ <b>{ctx.t(guide.done)}</b>\n\n{ctx.t('guides.branch_done_alone')}"
        else:
            text = ctx.t(guide.done)
        rows = [(self._guide_button(ctx, nxt),) for nxt in guide.next]
        rows.append((self._menu_button(ctx),))
        return [await offer_feedback(ctx, f"guide:{gid}", guide.done, Reply(text, tuple(rows), edit=True))]

    async def _fail(self, ctx: Context, stack: list[Frame]) -> list[Reply]:
        gid, step = stack[-1]
        branch = self.book.guides[gid].branch_for(step)
        if branch is None or len(stack) >= MAX_DETOUR_DEPTH:  # no button offers this; a forged payload
            return [self._step_reply(ctx, stack, edit=True)]
        stack = seek(stack, branch, 1) if any(g == branch for g, _ in stack) else [*stack, (branch, 1)]
        await save_stack(ctx, stack)
        log.info("guide_detour", guide=gid, step=step, branch=branch)
        lead = None
        if len(stack) > 1:
            pgid, pstep = stack[-2]
            lead = ctx.t("guides.detour_note", n=pstep, title=ctx.t(self.book.guides[pgid].title))
        return [self._step_reply(ctx, stack, edit=True, lead=lead)]

    async def _back(self, ctx: Context, stack: list[Frame]) -> list[Reply]:
        gid, step = stack[-1]
        if step > 1:
            stack[-1] = (gid, step - 1)
        elif len(stack) > 1:
            stack = stack[:-1]
        else:
            return [self.menu_reply(ctx, "main", edit=True, offer_resume=True)]
        await save_stack(ctx, stack)
        return [self._step_reply(ctx, stack, edit=True)]

    # --- rendering ------------------------------------------------------------------------------------

    def _position(self, args: tuple[str, ...]) -> Frame | None:
        if len(args) != 2 or args[0] not in self.book.guides or not args[1].isdigit():
            return None
        step = int(args[1])
        if not 1 <= step <= len(self.book.guides[args[0]].steps):
            return None
        return args[0], step

    def _step_reply(self, ctx: Context, stack: list[Frame], *, edit: bool, lead: str | None = None) -> Reply:
        gid, step = stack[-1]
        guide: GuideDef = self.book.guides[gid]
        header = ctx.t("guides.step_header", title=ctx.t(guide.title), n=step, total=len(guide.steps))
        parts = [p for p in (lead, header, ctx.t(guide.steps[step - 1].text)) if p]
        first = [Button(ctx.t("guides.btn_done"), callbacks.encode(DONE, gid, step))]
        if guide.branch_for(step) is not None and len(stack) < MAX_DETOUR_DEPTH:
            first.append(Button(ctx.t("guides.btn_fail"), callbacks.encode(FAIL, gid, step)))
        else:  # nowhere further in the guides (the hotline, the police): a person, rather than a forced "solved"
            first.append(Button(ctx.t("common.btn_staff"), callbacks.encode(ROUTER_INTENT, "human_handover")))
        second = []
        if step > 1 or len(stack) > 1:
            second.append(Button(ctx.t("guides.btn_back"), callbacks.encode(BACK, gid, step)))
        second.append(self._menu_button(ctx))
        return Reply("\n\n".join(parts), (tuple(first), tuple(second)), edit=edit)

    def menu_reply(
        self,
        ctx: Context,
        menu_id: str,
        *,
        edit: bool = False,
        lead: str | None = None,
        offer_resume: bool = False,
    ) -> Reply:
        menu = self.book.menus[menu_id]
        rows: list[tuple[Button, ...]] = []
        if offer_resume:
            rows.append((Button(ctx.t("guides.btn_resume"), callbacks.encode(CONTINUE)),))
        for opt in menu.options:
            if opt.guide is not None:
                rows.append((self._guide_button(ctx, opt.guide, opt.label),))
            elif opt.menu is not None and opt.label is not None:
                rows.append((Button(ctx.t(opt.label), callbacks.encode(MENU, opt.menu)),))
        if menu_id != "main":
            rows.append((self._menu_button(ctx),))
        text = ctx.t(menu.text) if lead is None else f"{lead}\n\n{ctx.t(menu.text)}"
        return Reply(text, tuple(rows), edit=edit)

    def _guide_button(self, ctx: Context, gid: str, label: str | None = None) -> Button:
        return Button(ctx.t(label or self.book.guides[gid].button), callbacks.encode(START, gid))

    def _menu_button(self, ctx: Context) -> Button:
        """[☰ Menu] is the assistant's main menu, as everywhere else, not the list of guides."""
        return Button(ctx.t("guides.btn_menu"), callbacks.encode(ROUTER_MENU))
