"""Control-plane settings; field names are the environment variable names.

Validated once at start-up; :func:`load_settings` turns a problem into one
:class:`SettingsError` line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """One line: the variable and what is wrong with it."""


class Settings(BaseSettings):
    """Environment of the control plane (``crbroker-server``'s upstream half)."""

    model_config = SettingsConfigDict(case_sensitive=False, env_ignore_empty=True, extra="ignore")

    #: directory for the SQLite database and the generated key file
    CRBROKER_DATA_DIR: Path = Path("crbroker-data")
    #: SQLAlchemy URL (``postgresql+asyncpg://…`` or ``sqlite+aiosqlite:///…``); unset: a
    #: SQLite file ``control-plane.db`` in CRBROKER_DATA_DIR
    DATABASE_URL: str | None = None
    #: API token created for the first admin user on first start (stored hashed only)
    CRBROKER_ADMIN_TOKEN: str | None = None
    #: console password of the admin user, set on first start when the admin has none
    #: (stored as an argon2 hash only)
    CRBROKER_ADMIN_PASSWORD: str | None = Field(None, min_length=8)
    #: name of the organisation created on first start
    CRBROKER_ORG_NAME: str = "Default"
    #: Fernet key (urlsafe base64 of 32 bytes) encrypting direct integrations' credentials
    #: and brokered integrations' broker tokens at rest
    CRBROKER_SECRET_KEY: str | None = None
    #: file holding that key; unset: ``secret.key`` in CRBROKER_DATA_DIR, created (mode 0600)
    #: on first start when CRBROKER_SECRET_KEY is not set either
    CRBROKER_SECRET_KEY_FILE: Path | None = None
    #: SQL connection pool size per process (PostgreSQL)
    DATABASE_POOL_SIZE: int = Field(10, ge=1, le=1000)

    @field_validator("DATABASE_URL")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        elif value.startswith("sqlite://"):
            value = "sqlite+aiosqlite://" + value.removeprefix("sqlite://")
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a postgresql:// or sqlite:// URL")
        return value

    @field_validator("CRBROKER_ADMIN_TOKEN")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and (len(value) < 16 or any(c.isspace() for c in value)):
            raise ValueError("must be at least 16 characters without spaces")
        return value

    @property
    def database_url(self) -> str:
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite+aiosqlite:///{self.CRBROKER_DATA_DIR.resolve() / 'control-plane.db'}"

    @property
    def secret_key_file(self) -> Path:
        return self.CRBROKER_SECRET_KEY_FILE or self.CRBROKER_DATA_DIR / "secret.key"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the environment; raises :class:`SettingsError` with one line on any problem."""
    fields = {name.upper(): name for name in Settings.model_fields}
    source = os.environ if environ is None else environ
    values: dict[str, Any] = {
        fields[k.upper()]: v for k, v in source.items() if v and k.upper() in fields
    }
    try:
        return Settings(_env_file=None, **values)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first.get("loc") else "settings"
        raise SettingsError(f"{name}: {first['msg'].removeprefix('Value error, ')}") from None
