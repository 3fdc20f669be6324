"""Carrying stored areas over a reorganisation: old (district, ward) ids to the new units' ids.

Used by the Alembic revision that replaced districts and wards with commune-level units (1 July 2025); the table
of which old unit went where is data (data/areas_migration.yml), with its legal source. No subscriber is dropped:
an id the table does not know widens to what is known (the district's units, else the whole province).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import structlog
import yaml
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, select
from sqlalchemy.engine import Connection

log = structlog.get_logger(__name__)

MIGRATION_FILE = Path(__file__).resolve().parent.parent / "data" / "areas_migration.yml"


class AreaMapping(BaseModel):
    """Old district id -> new unit ids; "district/ward" -> new unit id."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    districts: dict[str, list[str]]
    wards: dict[str, str]

    def new_areas(self, district: str | None, ward: str | None) -> list[str]:
        """The new unit ids for a stored old area; [] is the whole province (as NULL district was)."""
        if district is None:
            return []
        if ward is not None and (unit := self.wards.get(f"{district}/{ward}")):
            return [unit]
        return sorted(set(self.districts.get(district, [])))

    def targets(self) -> set[str]:
        return {u for units in self.districts.values() for u in units} | set(self.wards.values())


def load_mapping(path: Path = MIGRATION_FILE) -> AreaMapping:
    return AreaMapping.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@dataclass
class Rewritten:
    subscriptions: int = 0
    unit_rows: int = 0
    broadcasts: int = 0
    widened: list[str] = field(default_factory=list)  # old ids the table did not know (logged)


# The tables as they were before the revision: the migration must not depend on today's models.
_meta = MetaData()
_subs = Table(
    "news_subscriptions",
    _meta,
    Column("user_id", Integer, primary_key=True),
    Column("district", String(32)),
    Column("ward", String(32)),
)
_sub_areas = Table(
    "news_subscription_areas",
    _meta,
    Column("user_id", Integer, primary_key=True),
    Column("area", String(32), primary_key=True),
)
_broadcasts = Table(
    "broadcasts",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("district", String(32)),
    Column("ward", String(32)),
    Column("areas", Text),
)


def rewrite(conn: Connection, mapping: AreaMapping) -> Rewritten:
    """Fill news_subscription_areas and broadcasts.areas from the old district/ward columns (still present)."""
    done = Rewritten()

    def convert(district: str | None, ward: str | None) -> list[str]:
        units = mapping.new_areas(district, ward)
        known = district is None or (ward is not None and f"{district}/{ward}" in mapping.wards)
        known = known or (ward is None and district in mapping.districts)
        if not known:
            done.widened.append(f"{district}/{ward or '-'}")
        return units

    rows = conn.execute(select(_subs.c.user_id, _subs.c.district, _subs.c.ward)).all()
    area_rows = [{"user_id": uid, "area": unit} for uid, district, ward in rows for unit in convert(district, ward)]
    if area_rows:
        conn.execute(_sub_areas.insert(), area_rows)
    done.subscriptions, done.unit_rows = len(rows), len(area_rows)

    for bid, district, ward in conn.execute(select(_broadcasts.c.id, _broadcasts.c.district, _broadcasts.c.ward)):
        units = convert(district, ward)
        if units:
            conn.execute(_broadcasts.update().where(_broadcasts.c.id == bid).values(areas=",".join(units)))
        done.broadcasts += 1
    if done.widened:
        log.warning("areas.migration.widened", old=sorted(set(done.widened)))
    log.info(
        "areas.migration.done",
        subscriptions=done.subscriptions,
        unit_rows=done.unit_rows,
        broadcasts=done.broadcasts,
    )
    return done
