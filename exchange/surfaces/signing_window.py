"""The signing clock and the timestamp window every signature scheme checks (pure but the clock).

A signed request (or AUTH frame) carries the client's epoch milliseconds and, optionally, how
far from the server's clock they may be; a timestamp outside that window is refused, so a
captured request cannot be replayed later. The native HMAC scheme and Backpack's ED25519 scheme
check the same rule and differ only in their words: the header names, what a stale request is
told, and whether a blank window means the default (:class:`TimestampWindow`). Each scheme turns
:class:`WindowRefused` into its own error.
"""

from __future__ import annotations

import time

import attrs

DEFAULT_WINDOW_MS = 5000
MAX_WINDOW_MS = 60_000


def wall_clock_ms() -> int:
    """The server's clock every signature is checked against (epoch milliseconds)."""
    return time.time_ns() // 1_000_000


class WindowRefused(ValueError):
    """A window or timestamp is malformed (``kind`` ``"window"``/``"timestamp"``) or stale
    (``"stale"``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@attrs.frozen
class TimestampWindow:
    """One scheme's spelling of the window rule."""

    timestamp_header: str
    window_header: str
    stale_message: str
    blank_window_is_default: bool = False

    def window_ms(self, raw: str | None) -> int:
        """The window a request asks for (default 5000 ms). Raises WindowRefused("window")."""
        if raw is None or (raw == "" and self.blank_window_is_default):
            return DEFAULT_WINDOW_MS
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_WINDOW_MS:
            raise WindowRefused(
                "window", f"{self.window_header} must be an integer from 1 to {MAX_WINDOW_MS}"
            )
        return int(raw)

    def check(self, raw: str | None, now_ms: int, window_ms: int) -> int:
        """The request's timestamp, if it is integer ms within ``window_ms`` of ``now_ms``.

        Raises:
            WindowRefused: ``"timestamp"`` when missing or malformed, ``"stale"`` when outside.
        """
        if not raw or not (raw.isascii() and raw.isdigit()) or len(raw) > 16:
            raise WindowRefused(
                "timestamp", f"{self.timestamp_header} must be integer milliseconds"
            )
        timestamp = int(raw)
        if abs(now_ms - timestamp) > window_ms:
            raise WindowRefused("stale", self.stale_message)
        return timestamp
