"""The admins' models page: the NLU models on disk, the one the server runs, whether the training data changed
since the last training, and what the review queue says about the model."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nlu.tools.common import model_path_for, training_hash
from store.models import NluReview


@dataclass(frozen=True)
class Model:
    name: str
    size_mb: float
    built_at: dt.datetime
    running: bool
    current_data: bool  # trained from the training data as it is now


@dataclass(frozen=True)
class Models:
    models: list[Model]
    running: str | None  # the file name the NLU server reports, None when it does not answer
    current: str  # the file name a training of the present data would produce
    trained: bool  # whether that file exists


def scan(models_dir: Path, running_file: str | None) -> Models:
    """Disk work (it hashes the training data): call it in a thread."""
    current = model_path_for(training_hash(), models_dir).name
    running = Path(running_file).name if running_file else None
    found = []
    for path in models_dir.glob("nlu-*.tar.gz"):
        st = path.stat()
        found.append(
            Model(
                path.name,
                st.st_size / 1e6,
                dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
                path.name == running,
                path.name == current,
            )
        )
    found.sort(key=lambda m: m.built_at, reverse=True)
    return Models(found, running, current, any(m.current_data for m in found))


async def review_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Rows of the review queue by (status, reason): what was not understood and what became of it."""
    rows = await session.execute(
        select(NluReview.status, NluReview.reason, func.count()).group_by(NluReview.status, NluReview.reason)
    )
    return {(str(s), str(r)): int(n) for s, r, n in rows.all()}
