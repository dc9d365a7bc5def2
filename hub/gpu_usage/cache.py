"""A small bounded cache: least recently used entries go first, entries
expire after a time to live. Pure, no I/O (the clock is injectable).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

_MISSING = object()


class TTLCache:
    """At most ``maxsize`` entries, each valid for ``ttl`` seconds."""

    def __init__(self, maxsize: int = 4096, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, default: Any = None) -> Any:
        entry = self._entries.get(key, _MISSING)
        if entry is _MISSING:
            return default
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return default
        self._entries.move_to_end(key)
        return value

    def set(self, key: Hashable, value: Any) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
