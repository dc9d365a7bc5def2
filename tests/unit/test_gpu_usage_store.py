"""GPU-hours in SQLite: per user and UTC day, kept across a reopen (service restart)."""

import datetime

from gpuhub.hub.gpu_usage.store import UsageStore, utc_day, week_start

MONDAY = datetime.datetime(2026, 11, 16, 12, tzinfo=datetime.timezone.utc).timestamp()
DAY = 86400


def test_hours_accumulate_and_survive_a_restart(tmp_path):
    store = UsageStore(tmp_path / "usage.sqlite")
    store.write(store.add({"ann": 1800, "bob": 3600}, MONDAY))
    store.write(store.add({"ann": 1800, "nobody": 0}, MONDAY + 60))
    assert store.hours() == {"ann": 1.0, "bob": 1.0}
    store.close()

    reopened = UsageStore(tmp_path / "usage.sqlite")
    assert reopened.hours() == {"ann": 1.0, "bob": 1.0}
    reopened.write(reopened.add({"ann": 3600}, MONDAY + 8 * DAY))  # next week
    assert reopened.hours("ann") == {"ann": 2.0}
    assert reopened.hours("ann", week_start(MONDAY + 8 * DAY)) == {"ann": 1.0}
    assert reopened.hours("zed") == {}


def test_days_and_weeks_are_utc():
    assert utc_day(MONDAY) == "2026-11-16"
    assert week_start(MONDAY + 6 * DAY) == "2026-11-16"  # Sunday
    assert week_start(MONDAY + 7 * DAY) == "2026-11-23"
