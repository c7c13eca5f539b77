"""``python -m exchange.backup backup [DIR]`` / ``restore DIR``, on REDIS_URL and DATABASE_URL.

Exit status 0 on success, 2 when the backup is refused or cannot be taken (the message says
why; nothing was changed), 1 on any other failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from exchange import settings as settings_module
from exchange.backup.postgres_part import PostgresToolError
from exchange.backup.restore import BackupRefused, restore_backup
from exchange.backup.take import BackupFailed, take_backup
from exchange.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exchange.backup", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    backup = sub.add_parser("backup", help="back the running exchange up into a new directory")
    backup.add_argument(
        "directory",
        nargs="?",
        help="where (default: backups/<UTC time>)",
    )
    restore = sub.add_parser("restore", help="restore a backup into empty servers")
    restore.add_argument("directory")
    args = parser.parse_args(argv)
    try:
        settings = settings_module.load()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(message)s")
    try:
        if args.action == "backup":
            directory = Path(
                args.directory or f"backups/{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            )
            manifest = take_backup(settings, directory)
            verb = "backed up into"
        else:
            directory = Path(args.directory)
            manifest = restore_backup(settings, directory)
            verb = "restored from"
    except (BackupRefused, BackupFailed) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except PostgresToolError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    engine, history = manifest.engine, manifest.history
    print(
        f"{verb} {directory}: engine sequence {engine['seq']} (log up to {engine['log_until']}, "
        f"{engine['commands']} commands after the snapshot), history up to sequence "
        f"{history['seq']} ({history['storage']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
