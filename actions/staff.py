"""Who is staff: admins from settings, roles from the database; and the audit trail every staff action writes."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from actions.base import Context
from core.settings import Settings
from store.models_staff import AuditEntry, StaffMember

log = structlog.get_logger(__name__)


async def role_in(session: AsyncSession, settings: Settings, user_id: int) -> str | None:
    """The role of `user_id` now; the web console asks it on every request, outside any update."""
    if user_id in settings.admin_ids:
        return "admin"
    member = await session.get(StaffMember, user_id)
    return member.role if member else None


async def role_of(ctx: Context, user_id: int | None = None) -> str | None:
    return await role_in(ctx.session, ctx.settings, ctx.user.id if user_id is None else user_id)


async def is_staff(ctx: Context) -> bool:
    return await role_of(ctx) in ("admin", "staff")


async def is_admin(ctx: Context) -> bool:
    return await role_of(ctx) == "admin"


def audit(ctx: Context, action: str, detail: str = "", audience_size: int | None = None) -> None:
    ctx.session.add(
        AuditEntry(actor_id=ctx.user.id, action=action, detail=detail[:2000], audience_size=audience_size, at=ctx.now)
    )
    log.info("staff.action", actor=ctx.user.id, action=action, audience=audience_size)


def refused(ctx: Context, command: str) -> None:
    """A non-staff user tried a staff command: they get the unknown-command answer; we keep a trace."""
    log.warning("staff.refused", user=ctx.user.id, command=command)
