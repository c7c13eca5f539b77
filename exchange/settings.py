"""Every setting, read from the environment once, with defaults that run locally.

Each program builds one :class:`Settings` with :func:`load` at start and passes it down; nothing
else reads ``os.environ``. The README's configuration table lists the same variables.
"""

from __future__ import annotations

import ipaddress
import os

import attrs

from exchange.errors import ConfigError

# The default EXCHANGE_SECRET_KEY. It is public (it is right here), so anyone who sees an API key
# can derive its secret under it: fine on a developer's machine, refused on a reachable address.
DEV_SECRET_KEY = "dev-only-exchange-secret-key-change-me"


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


def _positive(name: str, default: float) -> float:
    value = _float(name, default)
    if value <= 0:
        raise ConfigError(f"{name} must be above 0, not {value}")
    return value


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
    events_maxlen: int = 0  # approximate MAXLEN of the events stream; 0 = the db writer trims
    # api
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    auth_mode: str = "apikey"
    admin_token: str = ""
    engine_timeout_s: float = 5.0
    api_workers: int = 1
    # Protects API secrets (see exchange.credentials); the default is public: dev only.
    secret_key: str = DEV_SECRET_KEY
    # token buckets per process: private per API key/user, public per client IP; rate 0 = off
    rate_limit_private_per_s: float = 1000.0
    rate_limit_private_burst: float = 2000.0
    rate_limit_public_per_s: float = 200.0
    rate_limit_public_burst: float = 400.0
    # ws
    ws_host: str = "127.0.0.1"
    ws_port: int = 8080
    ws_send_queue: int = 1024  # pending engine batches per client before it is dropped (1008)
    ws_workers: int = 1  # processes sharing WS_PORT (SO_REUSEPORT), each a whole ws server
    # "direct": pre-framed bytes to the socket (exchange.ws.direct_write); "public": through
    # trio-websocket's send_message, to measure what the direct path saves
    ws_write: str = "direct"
    # db writer
    db_consumer: str = (
        "db-writer-1"  # its name in the events consumer group; stable across restarts
    )
    db_read_count: int = 32  # events-stream entries (engine batches) per transaction
    db_claim_idle_s: float = 30.0  # take over another consumer's entries pending this long
    # PostgreSQL deadlines (see exchange.history.pg): a call that takes longer is cut off at the socket
    db_connect_timeout_s: int = 2  # libpq connect_timeout (whole seconds, at least 2)
    db_query_timeout_s: float = 2.0  # a history read, waiting for a connection included; then 503
    db_write_timeout_s: float = 30.0  # one writer transaction; then a new connection and a retry
    # history archival (TimescaleDB; see exchange.db.archival): compress trade and order chunks
    # older than this many days (None: the default, 7; 0: never), drop trades older than this
    # many days (0: keep them all; candles are kept regardless)
    history_compress_after_days: int | None = None
    history_retain_days: int = 0

    def check_listen(self, host: str) -> None:
        """Refuse to serve on ``host`` what is safe only on this machine; every program that
        listens calls it before it starts anything.

        On an address other machines can reach, dev auth would let anyone act as any
        ``user_id``, and the public default ``EXCHANGE_SECRET_KEY`` would let anyone who sees
        an API key derive its secret. Raises ConfigError saying what to change.
        """
        if is_loopback(host):
            return
        problems = []
        if self.auth_mode == "dev":
            problems.append("EXCHANGE_AUTH=dev trusts any user_id (use EXCHANGE_AUTH=apikey)")
        if self.secret_key == DEV_SECRET_KEY:
            problems.append(
                "EXCHANGE_SECRET_KEY is the public default, from which anyone who sees an API "
                "key derives its secret (set it to a long random value, e.g. the output of "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if problems:
            raise ConfigError(
                f"refusing to listen on {host!r}, an address other machines can reach: "
                + "; ".join(problems)
                + ". Bind a loopback address (127.0.0.1) to run it this way."
            )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` exposes a server only to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load() -> Settings:
    """Read the environment. Raises ConfigError for malformed values."""
    # Read defaults from an instance: on a slotted attrs class, Settings.x is a descriptor.
    defaults = Settings()
    ws_write = _str("WS_WRITE", defaults.ws_write)
    if ws_write not in ("direct", "public"):
        raise ConfigError(f"WS_WRITE must be 'direct' or 'public', not {ws_write!r}")
    auth_mode = _str("EXCHANGE_AUTH", "apikey")
    if auth_mode not in ("apikey", "dev"):
        raise ConfigError(f"EXCHANGE_AUTH must be 'apikey' or 'dev', not {auth_mode!r}")
    return Settings(
        redis_url=_str("REDIS_URL", defaults.redis_url),
        database_url=_str("DATABASE_URL", defaults.database_url),
        markets_file=os.environ.get("EXCHANGE_MARKETS_FILE") or None,
        snapshot_every_commands=_int(
            "ENGINE_SNAPSHOT_EVERY_COMMANDS", defaults.snapshot_every_commands
        ),
        snapshot_every_s=_float("ENGINE_SNAPSHOT_EVERY_S", defaults.snapshot_every_s),
        snapshots_kept=_int("ENGINE_SNAPSHOTS_KEPT", defaults.snapshots_kept),
        command_batch=_int("ENGINE_COMMAND_BATCH", defaults.command_batch),
        events_maxlen=_int("ENGINE_EVENTS_MAXLEN", defaults.events_maxlen),
        api_host=_str("API_HOST", defaults.api_host),
        api_port=_int("API_PORT", defaults.api_port),
        auth_mode=auth_mode,
        admin_token=_str("EXCHANGE_ADMIN_TOKEN", ""),
        engine_timeout_s=_float("ENGINE_TIMEOUT_S", defaults.engine_timeout_s),
        api_workers=_int("API_WORKERS", defaults.api_workers),
        secret_key=_str("EXCHANGE_SECRET_KEY", defaults.secret_key),
        rate_limit_private_per_s=_float(
            "RATE_LIMIT_PRIVATE_PER_S", defaults.rate_limit_private_per_s
        ),
        rate_limit_private_burst=_float(
            "RATE_LIMIT_PRIVATE_BURST", defaults.rate_limit_private_burst
        ),
        rate_limit_public_per_s=_float("RATE_LIMIT_PUBLIC_PER_S", defaults.rate_limit_public_per_s),
        rate_limit_public_burst=_float("RATE_LIMIT_PUBLIC_BURST", defaults.rate_limit_public_burst),
        ws_host=_str("WS_HOST", defaults.ws_host),
        ws_port=_int("WS_PORT", defaults.ws_port),
        ws_send_queue=_int("WS_SEND_QUEUE", defaults.ws_send_queue),
        ws_workers=_int("WS_WORKERS", defaults.ws_workers),
        ws_write=ws_write,
        db_consumer=_str("DB_CONSUMER", defaults.db_consumer),
        db_read_count=_int("DB_READ_COUNT", defaults.db_read_count),
        db_claim_idle_s=_float("DB_CLAIM_IDLE_S", defaults.db_claim_idle_s),
        db_connect_timeout_s=_int("DB_CONNECT_TIMEOUT_S", defaults.db_connect_timeout_s),
        db_query_timeout_s=_positive("DB_QUERY_TIMEOUT_S", defaults.db_query_timeout_s),
        db_write_timeout_s=_positive("DB_WRITE_TIMEOUT_S", defaults.db_write_timeout_s),
        history_compress_after_days=(
            _int("HISTORY_COMPRESS_AFTER_DAYS", 0)
            if os.environ.get("HISTORY_COMPRESS_AFTER_DAYS")
            else None
        ),
        history_retain_days=_int("HISTORY_RETAIN_DAYS", defaults.history_retain_days),
    )
