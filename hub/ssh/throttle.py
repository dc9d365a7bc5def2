"""Failed SSH logins slow down, then stop being answered: per source address
and per user name. Pure bookkeeping, no I/O (the caller passes the time).

A failure is a password (token) refused, or a connection that closed without
logging in after offering a key or password. The first ``free_failures`` in
``window`` seconds cost nothing; each further one doubles the wait before the
next attempt is answered (1 s, 2 s, 4 s … up to ``max_delay``). At
``max_failures`` from one address the address is refused until its oldest
counted failure leaves the window; a user name is refused at
``user_factor × max_failures`` (higher, because anyone can fail for a name
they do not own: a lower limit would let a stranger lock a user out).
A login that succeeds clears nothing: an attacker with one account could
otherwise reset their address's count.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

MAX_TRACKED = 50_000  # addresses + names kept; the oldest are dropped beyond it


@dataclass
class Throttle:
    free_failures: int = 3
    max_failures: int = 10
    window: float = 900.0
    max_delay: float = 10.0
    user_factor: int = 3
    _failures: OrderedDict = field(default_factory=OrderedDict)  # key -> deque of times

    def _recent(self, key: tuple[str, str], now: float) -> deque:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _limit(self, kind: str) -> int:
        return self.max_failures * (self.user_factor if kind == "user" else 1)

    def record_failure(self, source: str, user: str, now: float) -> None:
        for key in (("addr", source), ("user", user)):
            times = self._recent(key, now)
            times.append(now)
            while len(times) > self._limit(key[0]):
                times.popleft()
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > MAX_TRACKED:
            self._failures.popitem(last=False)

    def delay(self, source: str, user: str, now: float) -> float:
        """Seconds to wait before answering the next attempt."""
        counts = [len(self._recent(("addr", source), now)),
                  len(self._recent(("user", user), now)) // self.user_factor]
        extra = max(counts) - self.free_failures
        return 0.0 if extra < 0 else min(self.max_delay, 2.0 ** extra)

    def blocked_for(self, source: str, user: str, now: float) -> float:
        """Seconds until attempts from ``source`` for ``user`` are answered again (0: now)."""
        wait = 0.0
        for key in (("addr", source), ("user", user)):
            times = self._recent(key, now)
            if len(times) >= self._limit(key[0]):
                wait = max(wait, times[0] + self.window - now)
        return wait
