"""`/console` for staff: a single-use sign-in link to the web console; everyone else gets the unknown command."""

from __future__ import annotations

import structlog

from actions.base import Capability, Context
from actions.staff import is_staff, refused
from console.auth import new_link
from kernel.types import Incoming, Reply

log = structlog.get_logger(__name__)


class ConsoleCapability(Capability):
    commands: tuple[str, ...] = ("console",)

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        # In a group anyone could read the link: it is only ever sent in the staff member's private chat.
        if inc.chat_type != "private" or not await is_staff(ctx):
            refused(ctx, name)
            return [Reply(ctx.t("common.unknown_command"))]
        s = ctx.settings
        if s.console_port is None:
            return [Reply(ctx.t("console.off"))]
        token = await new_link(ctx.session, ctx.user.id, ctx.now, s.console_link_minutes)
        url = f"{s.console_url.rstrip('/')}/signin?t={token}"
        log.info("console.link_sent", staff=ctx.user.id)
        return [Reply(ctx.t("console.link", url=url, minutes=f"{s.console_link_minutes:g}"))]
