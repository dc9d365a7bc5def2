"""GPU-seconds per user and UTC day, in SQLite under the hub's state dir.

Requests read running totals kept in memory (per user, and per user and
week), updated by each sample's :meth:`UsageStore.add`: a request costs
O(users) at most, never a scan of the stored days. Each sample's increments
are written in one transaction, so a killed service loses at most one interval.
"""

from __future__ import annotations

import datetime
import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS gpu_seconds (
    user TEXT NOT NULL,
    day TEXT NOT NULL,  -- UTC date, YYYY-MM-DD
    seconds REAL NOT NULL,
    PRIMARY KEY (user, day)
)
"""


def utc_day(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).date().isoformat()


def week_of_day(day: str) -> str:
    """Monday of the week a YYYY-MM-DD day falls in."""
    date = datetime.date.fromisoformat(day)
    return (date - datetime.timedelta(days=date.weekday())).isoformat()


def week_start(epoch: float) -> str:
    """Monday (UTC) of the week ``epoch`` falls in."""
    return week_of_day(utc_day(epoch))


class UsageStore:
    """GPU-seconds per (user, day) on disk; totals per user and per week in memory.

    ``add`` updates the totals (event loop); ``write`` persists (blocking: run
    it in a thread).
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()  # the connection is used from one worker thread
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(SCHEMA)
        self._db.commit()
        self._total: dict[str, float] = {}  # user -> seconds, all time
        self._weeks: dict[str, dict[str, float]] = {}  # week start -> user -> seconds
        for user, day, seconds in self._db.execute("SELECT user, day, seconds FROM gpu_seconds"):
            self._count(user, week_of_day(day), seconds)

    def _count(self, user: str, week: str, seconds: float) -> None:
        self._total[user] = self._total.get(user, 0.0) + seconds
        week_totals = self._weeks.setdefault(week, {})
        week_totals[user] = week_totals.get(user, 0.0) + seconds

    def add(self, seconds_by_user: dict[str, float], now: float) -> dict[tuple[str, str], float]:
        """Count the increments in the totals; returns them for :meth:`write`."""
        day = utc_day(now)
        week = week_of_day(day)
        increments = {(user, day): s for user, s in seconds_by_user.items() if s > 0}
        for (user, _day), seconds in increments.items():
            self._count(user, week, seconds)
        return increments

    def write(self, increments: dict[tuple[str, str], float]) -> None:
        if not increments:
            return
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO gpu_seconds (user, day, seconds) VALUES (?, ?, ?) "
                "ON CONFLICT (user, day) DO UPDATE SET seconds = seconds + excluded.seconds",
                [(user, day, seconds) for (user, day), seconds in increments.items()],
            )

    def knows(self, user: str) -> bool:
        """Whether ``user`` ever held a GPU."""
        return user in self._total

    def total_hours(self) -> dict[str, float]:
        """GPU-hours per user, all time."""
        return {user: seconds / 3600 for user, seconds in self._total.items()}

    def week_hours(self, week: str) -> dict[str, float]:
        """GPU-hours per user in the week starting on ``week`` (see :func:`week_start`)."""
        return {user: seconds / 3600 for user, seconds in self._weeks.get(week, {}).items()}

    def user_hours(self, user: str, week: str) -> tuple[float, float]:
        """One user's GPU-hours: (in the week starting on ``week``, all time)."""
        return (self._weeks.get(week, {}).get(user, 0.0) / 3600, self._total.get(user, 0.0) / 3600)

    def close(self) -> None:
        with self._lock:
            self._db.close()
