"""Every setting, read from the environment once, with defaults that run locally.

Each program builds one :class:`Settings` with :func:`load` at start and passes it down; nothing
else reads ``os.environ``. The README's configuration table lists the same variables.
"""

from __future__ import annotations

import os

import attrs

from exchange.errors import ConfigError


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


def _str(name: str, default: str) -> str:
    return os.environ.get(name) or default


@attrs.frozen
class Settings:
    """Configuration shared by the four programs (each reads the part it needs)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    markets_file: str | None = None
    # engine
    snapshot_every_commands: int = 50_000
    snapshot_every_s: float = 60.0
    snapshots_kept: int = 3
    command_batch: int = 512
    # api
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    auth_mode: str = "apikey"
    admin_token: str = ""
    engine_timeout_s: float = 5.0
    # ws
    ws_host: str = "127.0.0.1"
    ws_port: int = 8080


def load() -> Settings:
    """Read the environment. Raises ConfigError for malformed values."""
    auth_mode = _str("EXCHANGE_AUTH", "apikey")
    if auth_mode not in ("apikey", "dev"):
        raise ConfigError(f"EXCHANGE_AUTH must be 'apikey' or 'dev', not {auth_mode!r}")
    return Settings(
        redis_url=_str("REDIS_URL", Settings.redis_url),
        database_url=_str("DATABASE_URL", Settings.database_url),
        markets_file=os.environ.get("EXCHANGE_MARKETS_FILE") or None,
        snapshot_every_commands=_int(
            "ENGINE_SNAPSHOT_EVERY_COMMANDS", Settings.snapshot_every_commands
        ),
        snapshot_every_s=_float("ENGINE_SNAPSHOT_EVERY_S", Settings.snapshot_every_s),
        snapshots_kept=_int("ENGINE_SNAPSHOTS_KEPT", Settings.snapshots_kept),
        command_batch=_int("ENGINE_COMMAND_BATCH", Settings.command_batch),
        api_host=_str("API_HOST", Settings.api_host),
        api_port=_int("API_PORT", Settings.api_port),
        auth_mode=auth_mode,
        admin_token=_str("EXCHANGE_ADMIN_TOKEN", ""),
        engine_timeout_s=_float("ENGINE_TIMEOUT_S", Settings.engine_timeout_s),
        ws_host=_str("WS_HOST", Settings.ws_host),
        ws_port=_int("WS_PORT", Settings.ws_port),
    )
