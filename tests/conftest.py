"""Shared fixtures: an isolated home folder, SQLite and PostgreSQL stores, a clean action registry."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from geo_infer_ops.modules.registry import registry
from geo_infer_ops.settings import Settings
from geo_infer_ops.store import Store

POSTGRES_URL = os.environ.get("GEO_INFER_OPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own GEO_INFER_OPS_HOME, so no test sees another's runs."""
    path = tmp_path / "gio-home"
    monkeypatch.setenv("GEO_INFER_OPS_HOME", str(path))
    monkeypatch.delenv("GEO_INFER_OPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("GEO_INFER_OPS_IMPORTS", raising=False)
    return path


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    """Actions registered during a test are removed after it, and user files it imported are forgotten.

    Built-in modules (``geo_infer_ops.modules.*``) stay: they are imported once per process, so
    removing their actions would lose them for the rest of the session.
    """
    import sys

    registry.load_builtins()  # first, so that a test overriding a built-in gets it back afterwards
    before = dict(registry._actions)
    sources = set(registry._loaded_sources)
    yield
    for key, spec in list(registry._actions.items()):
        if key in before:
            registry._actions[key] = before[key]
        elif not (spec.func.__module__ or "").startswith("geo_infer_ops."):
            del registry._actions[key]
    for source in set(registry._loaded_sources) - sources:
        if source.endswith(".py"):
            registry._loaded_sources.discard(source)
    for name in [m for m in sys.modules if m.startswith("geo_infer_ops_user_")]:
        del sys.modules[name]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}; .ci/run should have started it")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    import psycopg

    schema = f"gio_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, home: Path) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{home / 'state.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home, max_parallel=4)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store, once on SQLite and once on PostgreSQL."""
    s = Store(database_url)
    try:
        yield s
    finally:
        s.close()
