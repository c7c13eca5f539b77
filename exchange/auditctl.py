"""``python -m exchange.auditctl`` (``just audit``): the audit as a table, for operators.

It asks a running API for ``GET /api/v1/admin/audit`` (``API_HOST``/``API_PORT`` or ``--url``,
``EXCHANGE_ADMIN_TOKEN``), prints :func:`exchange.audit.audit_table` of the reply, and exits 0
when everything balances, 1 when anything is off (a difference, the history disagreeing with
the engine or behind it) and 2 when it cannot get an answer. Going through the API rather
than to Redis and PostgreSQL directly keeps one definition of the audit and needs no more
access than the admin token.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

from exchange import settings
from exchange.audit import audit_table
from exchange.errors import ConfigError

TIMEOUT_S = 30.0  # the API waits up to AUDIT_WAIT_S for the history, then sums the ledger


def fetch(api_url: str, admin_token: str, timeout_s: float = TIMEOUT_S) -> dict:
    """The audit report. Raises OSError (urllib's errors) or ValueError (not JSON)."""
    request = urllib.request.Request(
        api_url.rstrip("/") + "/api/v1/admin/audit", headers={"X-ADMIN-TOKEN": admin_token}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        return json.loads(response.read())


def run(api_url: str, admin_token: str) -> int:
    """Print the table; the exit status (0 balanced, 1 off, 2 no answer)."""
    try:
        report = fetch(api_url, admin_token)
    except urllib.error.HTTPError as exc:
        print(f"audit: {api_url} answered {exc.code}: {exc.read().decode(errors='replace')}")
        return 2
    except (OSError, ValueError) as exc:
        print(f"audit: no answer from {api_url}: {exc}")
        return 2
    print(audit_table(report))
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the API's base URL (default: API_HOST and API_PORT)")
    args = parser.parse_args(argv)
    try:
        config = settings.load()
    except ConfigError as exc:
        print(f"audit: {exc}")
        return 2
    if not config.admin_token:
        print("audit: EXCHANGE_ADMIN_TOKEN is not set")
        return 2
    url = args.url or f"http://{config.api_host}:{config.api_port}"
    return run(url, config.admin_token)


if __name__ == "__main__":
    sys.exit(main())
