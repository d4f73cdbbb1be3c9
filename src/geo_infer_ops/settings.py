"""One Settings object, read from the environment (``GEO_INFER_OPS_*``).

The home directory holds the state database, artifacts and logs, so that a laptop
run needs no set-up at all; a team points ``GEO_INFER_OPS_DATABASE_URL`` at
PostgreSQL instead.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".geo-infer-ops"


class Settings(BaseSettings):
    """Where state lives and how much runs at once."""

    model_config = SettingsConfigDict(env_prefix="GEO_INFER_OPS_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Folder for state.db, artifacts and logs.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in home.")
    max_parallel: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    imports: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Python modules imported to register user actions."
    )
    inline_result_max_bytes: int = Field(default=64 * 1024, ge=0)
    log_level: str = "INFO"

    @field_validator("imports", mode="before")
    @classmethod
    def _split_imports(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'state.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


def get_settings(**overrides: object) -> Settings:
    """Fresh settings from the environment, with explicit overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
