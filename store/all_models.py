"""Imports every model module so that Base.metadata knows all tables (Alembic, create_all, privacy checks)."""

from store import (  # noqa: F401
    models,
    models_console,
    models_dossier,
    models_guides,
    models_handover,
    models_news,
    models_reminders,
    models_staff,
)
from store.base import Base

__all__ = ["Base"]
