"""GPU-hours in SQLite: per user and UTC day, kept across a reopen (service restart);
running totals equal to a scan of every day, at a cost that does not grow with history."""

import datetime
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from gpuhub.hub.gpu_usage.store import UsageStore, utc_day, week_start

MONDAY = datetime.datetime(2026, 11, 16, 12, tzinfo=datetime.timezone.utc).timestamp()
DAY = 86400


def test_hours_accumulate_and_survive_a_restart(tmp_path):
    store = UsageStore(tmp_path / "usage.sqlite")
    store.write(store.add({"ann": 1800, "bob": 3600}, MONDAY))
    store.write(store.add({"ann": 1800, "nobody": 0}, MONDAY + 60))
    assert store.total_hours() == {"ann": 1.0, "bob": 1.0}
    store.close()

    reopened = UsageStore(tmp_path / "usage.sqlite")
    assert reopened.total_hours() == {"ann": 1.0, "bob": 1.0}
    reopened.write(reopened.add({"ann": 3600}, MONDAY + 8 * DAY))  # next week
    next_week = week_start(MONDAY + 8 * DAY)
    assert reopened.total_hours()["ann"] == 2.0
    assert reopened.week_hours(next_week) == {"ann": 1.0}
    assert reopened.week_hours(week_start(MONDAY)) == {"ann": 1.0, "bob": 1.0}
    assert reopened.user_hours("ann", next_week) == (1.0, 2.0)
    assert reopened.user_hours("zed", next_week) == (0.0, 0.0)
    assert reopened.knows("bob") and not reopened.knows("zed")


def test_days_and_weeks_are_utc():
    assert utc_day(MONDAY) == "2026-11-16"
    assert week_start(MONDAY + 6 * DAY) == "2026-11-16"  # Sunday
    assert week_start(MONDAY + 7 * DAY) == "2026-11-23"


def old_scan(rows, user=None, since_day=""):
    """The former UsageStore.hours: a scan of every (user, day) on each request."""
    totals = {}
    for name, day, seconds in rows:
        if (user is None or name == user) and day >= since_day:
            totals[name] = totals.get(name, 0.0) + seconds / 3600
    return totals


def close_enough(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 for k in a)


samples = st.lists(
    st.tuples(st.sampled_from(["ann", "bob", "cid", "dee"]),
              st.integers(min_value=0, max_value=60 * DAY),  # seconds after MONDAY
              st.floats(min_value=0, max_value=36_000)),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_running_totals_equal_the_old_scan(tmp_path_factory, increments):
    path = tmp_path_factory.mktemp("store") / "usage.sqlite"
    store = UsageStore(path)
    rows = []
    for user, offset, seconds in sorted(increments, key=lambda i: i[1]):  # samples come in time order
        now = MONDAY + offset
        store.write(store.add({user: seconds}, now))
        if seconds > 0:
            rows.append((user, utc_day(now), seconds))
    weeks = {week_start(MONDAY + offset) for _, offset, _ in increments} | {week_start(MONDAY)}
    for reader in (store, UsageStore(path)):  # in memory, and rebuilt from SQLite
        assert close_enough(reader.total_hours(), old_scan(rows))
        latest = week_start(MONDAY + max((i[1] for i in increments), default=0))
        assert close_enough(reader.week_hours(latest), old_scan(rows, since_day=latest))
        for week in weeks:
            in_week = [r for r in rows if week_start_of_day(r[1]) == week]
            assert close_enough(reader.week_hours(week), old_scan(in_week))
        for user in ("ann", "bob", "zed"):
            week, total = reader.user_hours(user, latest)
            assert abs(week - old_scan(rows, user, latest).get(user, 0.0)) < 1e-9
            assert abs(total - old_scan(rows, user).get(user, 0.0)) < 1e-9


def week_start_of_day(day: str) -> str:
    return week_start(datetime.datetime.fromisoformat(day).replace(
        tzinfo=datetime.timezone.utc).timestamp())


def request_seconds(store: UsageStore, now: float) -> float:
    """The best of several timings of what one request reads (all users' hours)."""
    week = week_start(now)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(200):
            store.total_hours()
            store.week_hours(week)
            store.user_hours("user-7", week)
        best = min(best, time.perf_counter() - started)
    return best


def test_request_cost_does_not_grow_with_the_days_stored(tmp_path):
    """20 users: one day of history, then 2,000 days. The old scan read every
    (user, day) per request (2,000 times more work); running totals do not."""
    users = [f"user-{n}" for n in range(20)]
    short = UsageStore(tmp_path / "short.sqlite")
    short.add({user: 60.0 for user in users}, MONDAY)
    long = UsageStore(tmp_path / "long.sqlite")
    for day in range(2000):
        long.add({user: 60.0 for user in users}, MONDAY - day * DAY)
    now = MONDAY
    assert long.total_hours()["user-7"] == 2000 * 60 / 3600
    assert request_seconds(long, now) < 3 * request_seconds(short, now)
