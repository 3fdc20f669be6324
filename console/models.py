"""The admins' models page: the NLU models on disk with what `make nlu-test` measured of each, the one the server
runs, whether the training data changed since the last training, a candidate beside the running model with the
hot-swap guard's verdict (nlu/figures.py), and what the review queue says about the model."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nlu import figures
from nlu.figures import Figures, Refusal
from nlu.tools.common import model_path_for, training_hash
from store.models import NluReview


@dataclass(frozen=True)
class Model:
    name: str
    size_mb: float
    built_at: dt.datetime
    running: bool
    current_data: bool  # trained from the training data as it is now
    figures: Figures | None  # what the last evaluation of this file measured


@dataclass(frozen=True)
class Models:
    models: list[Model]
    running: str | None  # the file name the NLU server reports, None when it does not answer
    current: str  # the file name a training of the present data would produce
    trained: bool  # whether that file exists
    field_set: str  # the field set's hash today: figures measured on another set are marked as such

    def find(self, name: str | None) -> Model | None:
        return next((m for m in self.models if m.name == name), None)

    def candidate(self, wanted: str | None = None) -> Model | None:
        """The model to set beside the running one: the one asked for, else the model of the current data, else
        the newest one that is not running."""
        if wanted is not None:
            return self.find(wanted)
        idle = [m for m in self.models if not m.running]
        return next((m for m in idle if m.current_data), idle[0] if idle else None)

    def verdict(self, candidate: Model) -> Refusal | None:
        """The hot-swap guard on the figures on disk (None: the swap may go ahead)."""
        running = self.find(self.running)
        return figures.refusal(candidate.figures, running.figures if running else None)


MODEL_NAME = re.compile(r"nlu-[0-9a-f]{12}\.tar\.gz")  # what nlu/tools/train.py writes; nothing else is swapped in


def scan(models_dir: Path, running_file: str | None) -> Models:
    """Disk work (it hashes the training data and reads the figures files): call it in a thread."""
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
                figures.read(path),
            )
        )
    found.sort(key=lambda m: m.built_at, reverse=True)
    return Models(found, running, current, any(m.current_data for m in found), figures.field_set_hash())


async def review_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Rows of the review queue by (status, reason): what was not understood and what became of it."""
    rows = await session.execute(
        select(NluReview.status, NluReview.reason, func.count()).group_by(NluReview.status, NluReview.reason)
    )
    return {(str(s), str(r)): int(n) for s, r, n in rows.all()}
