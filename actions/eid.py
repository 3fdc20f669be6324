"""The VNeID capability: account levels, registration and activation guides, troubleshooting, resume."""

from __future__ import annotations

import structlog

from actions.base import Capability, Context
from actions.feedback import offer_feedback
from actions.guides import CALLBACKS, MENU, START, GuideEngine, resume_button
from kernel import callbacks
from kernel.content import Content
from kernel.types import Button, Incoming, Reply

log = structlog.get_logger(__name__)

# Intents that open one troubleshooting branch, or a button choice between branches (menus in guides.yml).
_BRANCH_FOR_INTENT = {
    "eid_otp_problem": "otp",
    "eid_account_locked": "locked",
}
_MENU_FOR_INTENT = {
    "eid_face_nfc_problem": "scan_face",
    "eid_forgot_password": "password",
    "eid_change_phone": "phone",
}
_GUIDE_FOR_LEVEL = {"1": "level1", "2": "level2"}


class EidCapability(Capability):
    """Answers the eid_* intents and `resume_guide`; owns the g_* guide callbacks."""

    intents: tuple[str, ...] = (
        "eid_info",
        "eid_activate",
        *_BRANCH_FOR_INTENT,
        *_MENU_FOR_INTENT,
        "resume_guide",
    )
    callbacks: tuple[str, ...] = CALLBACKS

    def __init__(self, content: Content) -> None:
        self.engine = GuideEngine(content)
        missing = {*_BRANCH_FOR_INTENT.values(), *_GUIDE_FOR_LEVEL.values()} - set(self.engine.book.guides)
        missing |= ({*_MENU_FOR_INTENT.values(), "level"}) - set(self.engine.book.menus)
        if missing:
            raise ValueError(f"guides.yml lacks {sorted(missing)}")

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        intent = inc.nlu.intent if inc.nlu else None
        guide = inc.nlu.entity("guide") if inc.nlu else None
        if guide in self.engine.book.guides:  # the message's own words named the case (actions/faq.py)
            assert guide is not None
            return await self.engine.start(ctx, guide)
        if intent == "resume_guide":
            return await self.engine.resume(ctx)
        if intent == "eid_activate":
            level = (inc.nlu.entity("eid_level") or "").strip() if inc.nlu else ""
            gid = _GUIDE_FOR_LEVEL.get(level)
            if gid is None:  # ask with buttons, never free text
                return [self.engine.menu_reply(ctx, "level")]
            # "level 2 — where?" opens the guide at the step that answers it; [Back] still leads to step 1.
            aspect = inc.nlu.entity("aspect") if inc.nlu else None
            return await self.engine.start(ctx, gid, step=self.engine.book.guides[gid].step_for(aspect))
        if intent in _BRANCH_FOR_INTENT:
            return await self.engine.start(ctx, _BRANCH_FOR_INTENT[intent])
        if intent in _MENU_FOR_INTENT:
            return [self.engine.menu_reply(ctx, _MENU_FOR_INTENT[intent])]
        return [await offer_feedback(ctx, "eid_info", "eid.info", self._info(ctx))]

    async def menu_buttons(self, ctx: Context) -> list[Button]:
        """[Continue the guide] first in the main menu while a guide is left half-way."""
        button = await resume_button(ctx)
        return [button] if button is not None else []

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        return await self.engine.on_callback(inc, ctx)

    def _info(self, ctx: Context) -> Reply:
        book = self.engine.book
        rows = tuple(
            (Button(ctx.t(book.guides[gid].button), callbacks.encode(START, gid)),)
            for gid in ("level1", "activate", "level2")
            if gid in book.guides
        )
        trouble = (Button(ctx.t("guides.menu.btn_trouble"), callbacks.encode(MENU, "trouble")),)
        text = f"{ctx.t('eid.info')}\n\n{ctx.t('eid.level2_unlocks')}"
        return Reply(text, (*rows, trouble))
