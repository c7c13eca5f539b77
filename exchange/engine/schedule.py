"""When the engine service takes a snapshot: a count of commands or an age, whichever first.

Pure: the service passes the clock in (``now``, trio's clock there, any number in tests).
"""

from __future__ import annotations


class SnapshotSchedule:
    """Snapshot after ``every_commands`` applied commands, or ``every_s`` seconds after the
    first command not yet in a snapshot, whichever comes first; never for an unchanged state.

    Either bound caps the work a restart replays; counting time from the first unsaved change
    (not from the last snapshot) means an engine waking from a quiet night does not snapshot
    for its very first command.
    """

    def __init__(self, every_commands: int, every_s: float) -> None:
        self.every_commands = every_commands
        self.every_s = every_s
        self.pending = 0
        self.first_pending_at = 0.0

    def note(self, commands: int, now: float) -> None:
        """``commands`` more were applied at ``now``."""
        if commands and not self.pending:
            self.first_pending_at = now
        self.pending += commands

    def due(self, now: float) -> bool:
        if self.pending == 0:
            return False
        return self.pending >= self.every_commands or now - self.first_pending_at >= self.every_s

    def done(self) -> None:
        """A snapshot now holds everything applied so far."""
        self.pending = 0
