"""Durable state: SQLAlchemy Core tables, Alembic migrations and the Store."""

from .store import Store, TransitionBatch

__all__ = ["Store", "TransitionBatch"]
