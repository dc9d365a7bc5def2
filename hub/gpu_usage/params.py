"""Query parameters of the pages and the API, checked before use. Pure, no I/O.

Only ASCII digits count: ``str.isdigit`` also accepts "²" and other
Unicode digits that ``int`` then refuses, and an unbounded string of digits
costs time to convert (or fails past Python's digit limit).
"""

from __future__ import annotations

import re

WINDOW_MIN, WINDOW_MAX = 60, 3600
WINDOW_HELP = f"window must be a whole number of seconds from {WINDOW_MIN} to {WINDOW_MAX}"
_SECONDS = re.compile(r"[0-9]{1,6}", re.ASCII)


class InvalidParameter(ValueError):
    """A parameter a person typed wrong; the message says what is allowed."""


def parse_window(raw: str | None) -> int:
    """``?window=SECONDS``: seconds of history to show; missing means all of it."""
    if raw is None:
        return WINDOW_MAX
    if not _SECONDS.fullmatch(raw) or not WINDOW_MIN <= int(raw) <= WINDOW_MAX:
        raise InvalidParameter(f"{WINDOW_HELP}, got {raw[:40]!r}")
    return int(raw)
