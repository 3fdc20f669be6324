"""The citizen's right to erasure (Decree 13/2023): `/forget` or "xoá dữ liệu của tôi", confirmed with buttons.

Every table that refers to a citizen does so through a foreign key to `users.id` with ON DELETE CASCADE, so
deleting the user row deletes their reminders, follows, tickets (and relayed messages), feedback, review-queue
texts, subscriptions, guide progress and drafts in one statement. Broadcast delivery records are the exception:
the staff report must still add up, so a delivered one loses everything that points at the citizen and keeps
only its state (an anonymous count); one not yet sent is dropped. Replies kept through a Telegram outage are
keyed by chat, not user, and are dropped with it. `tests/test_privacy.py` walks every table of
the schema, so a new table that refers to citizens cannot escape this.

Staff records (roles, the audit trail of staff actions) are about staff members acting for the authority and
are kept for accountability; they hold no citizen data.
"""

from __future__ import annotations

import structlog
from sqlalchemy import delete, update

from actions import callbacks
from actions.base import Context
from actions.types import Button, Incoming, Reply
from store.models import PendingReply, User
from store.models_news import PENDING, SENDING, Delivery

log = structlog.get_logger(__name__)

YES = "pv_yes"  # pv_yes: erase everything
NO = "pv_no"  # pv_no: keep it
CALLBACKS = (YES, NO)
callbacks.register(*CALLBACKS)


async def forget(ctx: Context, user_id: int) -> None:
    """Erase every row about the citizen, in the caller's transaction."""
    session = ctx.session
    await session.execute(
        delete(Delivery)
        .where(Delivery.user_id == user_id, Delivery.state.in_((PENDING, SENDING)))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Delivery)
        .where(Delivery.user_id == user_id)
        .values(user_id=None, chat_id=0, message_id=None, error=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(PendingReply)
        .where(PendingReply.chat_id.in_({user_id, ctx.user.chat_id}))  # the private chat's id is the user's
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(User).where(User.id == user_id).execution_options(synchronize_session=False))
    session.expunge(ctx.user)  # the row is gone; the adapter must not write it back


class PrivacyCapability:
    """Answers `delete_my_data` and `/forget`; owns the confirmation buttons."""

    intents: tuple[str, ...] = ("delete_my_data",)
    callbacks: tuple[str, ...] = CALLBACKS
    commands: tuple[str, ...] = ("forget",)

    async def on_intent(self, inc: Incoming, ctx: Context) -> list[Reply]:
        return [self._ask(ctx)]

    async def on_command(self, name: str, args: str, inc: Incoming, ctx: Context) -> list[Reply]:
        return [self._ask(ctx)]

    async def on_callback(self, inc: Incoming, ctx: Context) -> list[Reply]:
        assert inc.callback is not None
        action, _args = inc.callback
        if action == YES:
            lang = ctx.lang
            await forget(ctx, ctx.user.id)
            log.info("privacy.forgotten")  # no id: the log must not say who asked to be forgotten
            return [Reply(ctx.content.text("privacy.done", lang), edit=True)]
        return [
            Reply(ctx.t("privacy.kept"), ((Button(ctx.t("common.btn_menu"), callbacks.encode("c_menu")),),), edit=True)
        ]

    def _ask(self, ctx: Context) -> Reply:
        return Reply(
            ctx.t("privacy.confirm"),
            (
                (
                    Button(ctx.t("privacy.btn_yes"), callbacks.encode(YES)),
                    Button(ctx.t("privacy.btn_no"), callbacks.encode(NO)),
                ),
            ),
        )
