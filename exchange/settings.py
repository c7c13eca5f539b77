"""Every setting, read from the environment once, with defaults that run locally.

Each setting is one field of :class:`Settings` that names its environment variable and how its
text is parsed; the object checks its values when it is built, so a malformed or out-of-range
value raises :class:`~exchange.errors.ConfigError` naming the variable, from :func:`load` as
from ``Settings(...)`` in a test. An empty variable counts as unset. Each program builds one
``Settings`` with :func:`load` at start and passes it down; the developer tools
(:mod:`exchange.dev`) read theirs here too. The README's configuration table lists the same
variables (a test compares them).

Two environment variables are read elsewhere because they are not settings of ours:
``PROMETHEUS_MULTIPROC_DIR`` is prometheus_client's own protocol between the API's worker
processes (``bin/api`` sets it for them, :mod:`exchange.api.metrics` asks whether it is set), and
programs that start children hand them the whole environment.

Why fields with metadata rather than a settings library (pydantic-settings, environ-config): one
``attrs`` class already gives the frozen record, the validators run at construction, and the
variable's name sits beside its default, so nothing is named twice and no dependency is added.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from exchange.errors import ConfigError

# The default EXCHANGE_SECRET_KEY. It is public (it is right here), so anyone who sees an API key
# can derive its secret under it: fine on a developer's machine, refused on a reachable address.
DEV_SECRET_KEY = "dev-only-exchange-secret-key-change-me"
AUTH_MODES = ("apikey", "dev")
APPENDFSYNC_POLICIES = ("everysec", "always")
WS_WRITES = ("direct", "public")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _env(attribute: attrs.Attribute) -> str:
    return attribute.metadata["env"]


def _parse(kind: type, what: str) -> Callable[[str, str], Any]:
    def parse(env: str, text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{env} must be {what}, not {text!r}") from None

    return parse


_integer = _parse(int, "an integer")
_number = _parse(float, "a number")


def _text(env: str, text: str) -> str:
    return text


def _flag(env: str, text: str) -> bool:
    return text != "0"


def _setting(
    env: str,
    default: Any,
    parse: Callable[[str, str], Any] = _text,
    *validators: Callable[[Any, attrs.Attribute, Any], None],
) -> Any:
    """A field read from ``$env``: text from the environment goes through ``parse`` (values
    given in code pass as they are), then ``validators`` check it when the object is built."""

    def convert(value: Any) -> Any:
        return parse(env, value) if isinstance(value, str) else value

    return attrs.field(
        default=default,
        converter=convert,
        validator=list(validators),
        metadata={"env": env},
    )


def _above_zero(_instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{_env(attribute)} must be above 0, not {value}")


def _at_least_one(_instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{_env(attribute)} must be at least 1")


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, attrs.Attribute, Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            shown = (
                " or ".join(map(repr, choices))
                if len(choices) == 2
                else "one of " + ", ".join(choices)
            )
            raise ConfigError(f"{_env(attribute)} must be {shown}, not {value!r}")

    return check


@attrs.frozen
class Settings:
    """Configuration shared by the four programs and the developer tools (each reads the part
    it needs). Raises ConfigError for a value it cannot take."""

    redis_url: str = _setting("REDIS_URL", "redis://127.0.0.1:6379/0")
    database_url: str = _setting("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    # a streaming replica of DATABASE_URL for the history reads (None: the primary serves them),
    # used while it is at most REPLICA_MAX_LAG_S behind (see exchange.history.replica)
    database_replica_url: str | None = _setting("DATABASE_REPLICA_URL", None)
    replica_max_lag_s: float = _setting("REPLICA_MAX_LAG_S", 5.0, _number, _above_zero)
    markets_file: str | None = _setting("EXCHANGE_MARKETS_FILE", None)  # None: the packaged one
    log_level: str = _setting("LOG_LEVEL", "INFO", _text, _one_of(LOG_LEVELS))
    # engine
    snapshot_every_commands: int = _setting("ENGINE_SNAPSHOT_EVERY_COMMANDS", 50_000, _integer)
    snapshot_every_s: float = _setting("ENGINE_SNAPSHOT_EVERY_S", 60.0, _number)
    snapshots_kept: int = _setting("ENGINE_SNAPSHOTS_KEPT", 3, _integer)
    command_batch: int = _setting("ENGINE_COMMAND_BATCH", 512, _integer)
    # approximate MAXLEN of the events stream; 0 = the db writer trims
    events_maxlen: int = _setting("ENGINE_EVENTS_MAXLEN", 0, _integer)
    # api
    api_host: str = _setting("API_HOST", "127.0.0.1")
    api_port: int = _setting("API_PORT", 8000, _integer)
    auth_mode: str = _setting("EXCHANGE_AUTH", "apikey", _text, _one_of(AUTH_MODES))
    admin_token: str = _setting("EXCHANGE_ADMIN_TOKEN", "")  # empty: admin endpoints refuse
    engine_timeout_s: float = _setting("ENGINE_TIMEOUT_S", 5.0, _number)
    api_workers: int = _setting("API_WORKERS", 1, _integer, _at_least_one)
    # Protects API secrets (see exchange.credentials); the default is public: dev only.
    secret_key: str = _setting("EXCHANGE_SECRET_KEY", DEV_SECRET_KEY)
    # token buckets per process: private per API key/user, public per client IP; rate 0 = off
    rate_limit_private_per_s: float = _setting("RATE_LIMIT_PRIVATE_PER_S", 1000.0, _number)
    rate_limit_private_burst: float = _setting("RATE_LIMIT_PRIVATE_BURST", 2000.0, _number)
    rate_limit_public_per_s: float = _setting("RATE_LIMIT_PUBLIC_PER_S", 200.0, _number)
    rate_limit_public_burst: float = _setting("RATE_LIMIT_PUBLIC_BURST", 400.0, _number)
    # ws
    ws_host: str = _setting("WS_HOST", "127.0.0.1")
    ws_port: int = _setting("WS_PORT", 8080, _integer)
    # pending engine batches per client before it is dropped (1008)
    ws_send_queue: int = _setting("WS_SEND_QUEUE", 1024, _integer)
    # processes sharing WS_PORT (SO_REUSEPORT), each a whole ws server
    ws_workers: int = _setting("WS_WORKERS", 1, _integer)
    # "direct": pre-framed bytes to the socket (exchange.ws.direct_write); "public": through
    # trio-websocket's send_message, to measure what the direct path saves
    ws_write: str = _setting("WS_WRITE", "direct", _text, _one_of(WS_WRITES))
    # db writer: its name in the events consumer group, stable across restarts
    db_consumer: str = _setting("DB_CONSUMER", "db-writer-1")
    db_read_count: int = _setting("DB_READ_COUNT", 32, _integer)  # engine batches per transaction
    # after a read that found the stream drained, wait this long before the next (bigger batches)
    db_linger_ms: int = _setting("DB_LINGER_MS", 20, _integer)
    # take over another consumer's entries pending this long
    db_claim_idle_s: float = _setting("DB_CLAIM_IDLE_S", 30.0, _number)
    # write the account ledger (every movement of a balance); 0 only to measure what it costs
    db_ledger: bool = _setting("DB_LEDGER", True, _flag)
    # how long the admin audit waits for the history's ledger to reach the engine's last movement
    audit_wait_s: float = _setting("AUDIT_WAIT_S", 5.0, _number, _above_zero)
    # PostgreSQL deadlines (see exchange.history.pg): a call that takes longer is cut off at the socket
    # libpq connect_timeout (whole seconds, at least 2)
    db_connect_timeout_s: int = _setting("DB_CONNECT_TIMEOUT_S", 2, _integer)
    # a history read, waiting for a connection included; then 503
    db_query_timeout_s: float = _setting("DB_QUERY_TIMEOUT_S", 2.0, _number, _above_zero)
    # one writer transaction; then a new connection and a retry
    db_write_timeout_s: float = _setting("DB_WRITE_TIMEOUT_S", 30.0, _number, _above_zero)
    # the migrator's directory; None: sql/migrations of the checkout (see exchange.db.migrate)
    migrations_dir: str | None = _setting("EXCHANGE_MIGRATIONS_DIR", None)
    # history archival (TimescaleDB; see exchange.db.archival, which checks the ranges once the
    # storage mode is known): compress trade and order chunks older than this many days (None:
    # the default, 7; 0: never), drop trades older than this many days (0: keep them all;
    # candles are kept regardless)
    history_compress_after_days: int | None = _setting(
        "HISTORY_COMPRESS_AFTER_DAYS", None, _integer
    )
    history_retain_days: int = _setting("HISTORY_RETAIN_DAYS", 0, _integer)
    # developer tools (exchange.dev): `just up`'s data directory (None: var/ of the checkout),
    # its private Redis's AOF fsync policy, and whether the system's redis-server / postgres may
    # be used (False: always the PyPI wheels)
    data_dir: str | None = _setting("EXCHANGE_DATA_DIR", None)
    redis_appendfsync: str = _setting(
        "EXCHANGE_REDIS_APPENDFSYNC", "everysec", _text, _one_of(APPENDFSYNC_POLICIES)
    )
    system_servers: bool = _setting("EXCHANGE_SYSTEM_SERVERS", True, _flag)

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


def environment_names() -> dict[str, str]:
    """Each setting's environment variable, by field name."""
    return {field.name: _env(field) for field in attrs.fields(Settings)}


def given(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings the environment sets, by field name, as their text (empty means unset).

    For tools that act differently when a variable is set at all (``just up`` starts its own
    Redis unless ``REDIS_URL`` is given), which a default value cannot tell them.
    """
    environ = os.environ if environ is None else environ
    names = environment_names()
    return {field: environ[env] for field, env in names.items() if environ.get(env)}


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the environment (``os.environ`` unless given). Raises ConfigError for malformed
    values."""
    return Settings(**given(environ))
