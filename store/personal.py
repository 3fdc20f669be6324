"""Which tables hold rows about a person, and which rows: the one walk behind /mydata and the privacy tests.

A table is about users when it has a foreign key to `users.id` (directly or through another such table) or a
column that names a Telegram user or chat id (`USER_COLUMNS`), so a new table that refers to citizens is found
without being listed anywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.all_models import Base

# Columns that hold a Telegram user or chat id even without a foreign key to users.id.
USER_COLUMNS = frozenset(
    {
        "user_id",
        "chat_id",
        "open_user_id",
        "actor_id",
        "taken_by",
        "closed_by",
        "created_by",
        "added_by",
        "staff_id",
        "report_chat_id",
    }
)
# Tables about staff members acting for the authority, kept for accountability (actions/privacy.py).
STAFF_ONLY = {
    "staff_members": "staff roles: who may broadcast or answer tickets",
    "audit_log": "the trail of staff actions (actor_id is a staff member)",
    "broadcasts": "announcements, created_by a staff member; recipients live in broadcast_deliveries",
    "console_links": "sign-in links to the staff console, sent only to staff members",
}


def user_tables() -> dict[str, Table]:
    """Every table that refers to a user, parents before children."""
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    found: dict[str, Table] = {"users": tables["users"]}
    changed = True
    while changed:
        changed = False
        for name, table in tables.items():
            if name in found:
                continue
            refers = any(fk.column.table.name in found for fk in table.foreign_keys)
            if refers or USER_COLUMNS & set(table.c.keys()):
                found[name] = table
                changed = True
    return {t.name: t for t in Base.metadata.sorted_tables if t.name in found}


async def rows_about(session: AsyncSession, uid: int) -> dict[str, list[dict[str, Any]]]:
    """For each user table, the rows about `uid`: through a user column, or a foreign key to a row about them."""
    owned: dict[str, list[dict[str, Any]]] = {}
    for name, table in user_tables().items():  # parents first: a child row follows its owned parent
        conds: list[ColumnElement[bool]] = [table.c[c] == uid for c in USER_COLUMNS if c in table.c]
        if name == "users":
            conds.append(table.c.id == uid)
        for fk in table.foreign_keys:
            parent = owned.get(fk.column.table.name)
            if parent and fk.column.table.primary_key.columns.keys() == [fk.column.name]:
                conds.append(fk.parent.in_([row[fk.column.name] for row in parent]))
        pk = list(table.primary_key.columns)
        query = select(table).where(or_(false(), *conds)).order_by(*pk)
        owned[name] = [dict(row) for row in (await session.execute(query)).mappings().all()]
    return owned
