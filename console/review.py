"""The review queue in the console: list the open rows of nlu_review (already PII-redacted), record a maintainer's
label or dismissal, and export the labelled rows as a Rasa NLU YAML file with the writer `make nlu-review` uses."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nlu.tools import review as writer
from store.models import NluReview

OPEN, LABELLED, DISMISSED, EXPORTED = "open", "labelled", "dismissed", "exported"
PAGE = 200  # rows shown at once: a maintainer's session, not the whole backlog
TOP = 9  # keys 1-9


@dataclass(frozen=True)
class Item:
    id: int
    text: str
    reason: str
    created_at: dt.datetime
    top: list[tuple[str, float]]  # best first, nlu_fallback left out
    label: str | None = None


def _item(row: NluReview) -> Item:
    ranking = [(n, c) for n, c in writer._parse_ranking(row.ranking) if n != writer.FALLBACK]
    if row.intent and row.intent != writer.FALLBACK and row.intent not in dict(ranking):
        ranking.insert(0, (row.intent, row.confidence))
    ranking.sort(key=lambda nc: -nc[1])
    return Item(row.id, row.text, row.reason, row.created_at, ranking[:TOP], row.label)


async def open_items(session: AsyncSession) -> list[Item]:
    rows = await session.scalars(
        select(NluReview).where(NluReview.status == OPEN).order_by(NluReview.created_at, NluReview.id).limit(PAGE)
    )
    return [_item(r) for r in rows.all()]


async def labelled_items(session: AsyncSession) -> list[Item]:
    rows = await session.scalars(
        select(NluReview).where(NluReview.status == LABELLED).order_by(NluReview.decided_at, NluReview.id)
    )
    return [_item(r) for r in rows.all()]


async def decide(
    session: AsyncSession, review_id: int, staff_id: int, now: dt.datetime, label: str | None
) -> NluReview | None:
    """Label (an intent name) or dismiss (None) one open row; None when it is gone or someone decided first."""
    row = await session.get(NluReview, review_id, with_for_update=True)
    if row is None or row.status != OPEN:
        return None
    row.status = LABELLED if label else DISMISSED
    row.label = label
    row.decided_by, row.decided_at = staff_id, now
    return row


async def export(session: AsyncSession, directory: Path, now: dt.datetime) -> tuple[Path, int] | None:
    """Write every labelled row to `directory`/review_<time>.yml, grouped by the label, and mark them exported.

    Messages already in the training data are left out of the file by the writer (as `make nlu-review` does), and
    marked exported all the same: the model already learns from them. None when nothing is labelled."""
    rows = (
        await session.scalars(
            select(NluReview).where(NluReview.status == LABELLED).order_by(NluReview.decided_at, NluReview.id)
        )
    ).all()
    if not rows:
        return None
    drafts = [
        writer.Row(
            text=r.text,
            intent=r.label,
            confidence=dict(writer._parse_ranking(r.ranking)).get(r.label or "", 0.0),
            ranking=writer._parse_ranking(r.ranking),
            reason=r.reason,
            created_at=f"{r.created_at:%Y-%m-%d %H:%M}",
        )
        for r in rows
    ]
    # Reading data/nlu/ (to skip known examples) and writing the file are disk work: off the event loop.
    path = await asyncio.to_thread(_write, drafts, directory, now)
    await session.execute(
        update(NluReview)
        .where(NluReview.id.in_([r.id for r in rows]), NluReview.status == LABELLED)
        .values(status=EXPORTED)
        .execution_options(synchronize_session=False)
    )
    return path, len(rows)


def _write(drafts: list[writer.Row], directory: Path, now: dt.datetime) -> Path:
    text = writer.render(
        drafts,
        writer.known_texts(),
        heading=f"# Labelled in the staff console on {now:%Y-%m-%d %H:%M} UTC:"
        " {count} messages ({rows} rows). Check them, then commit this file.",
        grouped_as="labelled",
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"review_{now:%Y%m%d_%H%M%S}.yml"
    path.write_text(text, encoding="utf-8")
    return path
