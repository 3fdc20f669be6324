"""Imports every model module so that Base.metadata knows all tables (Alembic, create_all, privacy checks)."""

from store import models, models_staff  # noqa: F401
from store.base import Base

__all__ = ["Base"]
