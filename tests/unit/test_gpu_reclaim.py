"""GPU idle reclaim and leases: the pure decision, the notices users read, the
idle-since reading from samples, and the reclaim record (SQLite in a tmp dir)."""

import datetime

import pytest

from gpuhub.hub.gpu_usage.reclaim import Action, Kind, decide, user_notices, warning_window
from gpuhub.hub.gpu_usage.reclaim_log import Reclaim, ReclaimLog
from gpuhub.hub.gpu_usage.reclaimer import epoch, gpu_idle_since
from gpuhub.hub.gpu_usage.tracker import Server, Tracker
from gpuhub.spawner.container_spec import activity_environment
from gpuhub.spawner.gpu_status import in_use
from gpuhub.spawner.inventory import GPU, Inventory

T0 = datetime.datetime(2026, 11, 22, 14, 0, tzinfo=datetime.timezone.utc).timestamp()


def verdict(now, started=T0, gpus=1, idle_timeout=1800, lease=0, gpu_idle_since=T0,
            last_activity=None, warn_before=900, ends=0):
    return decide(now=now, started=started, gpus=gpus, idle_timeout=idle_timeout, lease=lease,
                  gpu_idle_since=gpu_idle_since, last_activity=last_activity, warn_before=warn_before,
                  ends=ends)


def test_idle_gpus_and_no_activity_for_the_timeout_reclaim():
    assert verdict(T0 + 1799).action is Action.KEEP
    reclaimed = verdict(T0 + 1800)
    assert (reclaimed.action, reclaimed.kind) == (Action.RECLAIM, Kind.IDLE)
    assert reclaimed.reason == "its GPU was idle for 30 min"
    assert verdict(T0 + 1800, gpus=2).reason == "its 2 GPUs were idle for 30 min"


def test_gpu_use_activity_or_a_late_start_restart_the_window():
    assert verdict(T0 + 1800, gpu_idle_since=T0 + 1).action is Action.KEEP
    assert verdict(T0 + 1800, last_activity=T0 + 600).action is Action.KEEP
    assert verdict(T0 + 2400, last_activity=T0 + 600).action is Action.RECLAIM
    assert verdict(T0 + 1800, started=T0 + 10, gpu_idle_since=T0).action is Action.KEEP


def test_no_reading_off_or_cpu_only_never_reclaims_for_idleness():
    assert verdict(T0 + 10**6, gpu_idle_since=None).action is Action.KEEP
    assert verdict(T0 + 10**6, idle_timeout=0).action is Action.KEEP
    assert verdict(T0 + 10**6, gpus=0, lease=60).action is Action.KEEP


def test_a_lease_warns_in_its_last_window_then_ends():
    lease = 8 * 3600
    end = T0 + lease
    kept = verdict(end - 901, lease=lease, idle_timeout=0)
    assert kept.action is Action.KEEP and kept.lease_ends == end
    warned = verdict(end - 900, lease=lease, idle_timeout=0)
    assert (warned.action, warned.lease_ends) == (Action.WARN, end)
    assert warned.reason == "its GPU lease ends at 22:00 UTC"
    ended = verdict(end, lease=lease, idle_timeout=0)
    assert (ended.action, ended.kind, ended.reason) == (Action.RECLAIM, Kind.LEASE,
                                                      "its GPU lease of 8 h ended")


def test_a_lease_end_wins_over_idleness_and_a_short_lease_warns_for_a_quarter():
    assert verdict(T0 + 3600, lease=3600).kind is Kind.LEASE
    assert warning_window(1200, 900) == 300
    assert verdict(T0 + 899, lease=1200, idle_timeout=0).action is Action.KEEP
    assert verdict(T0 + 900, lease=1200, idle_timeout=0).action is Action.WARN


def test_notices_explain_a_stop_until_the_server_runs_again_and_announce_leases():
    now = T0 + 3600
    records = [Reclaim(T0 + 60, "ann", "", ("GPU-0",), "idle", "its GPU was idle for 30 min"),
               Reclaim(T0, "ann", "", ("GPU-0",), "lease", "older, not shown"),
               Reclaim(T0 - 2 * 86400, "ann", "big", ("GPU-1",), "idle", "too old")]
    lease = verdict(T0 + 7200 - 600, lease=7200, idle_timeout=0)
    notices = user_notices(records, set(), {("ann", "b"): lease, ("bob", ""): lease}, "ann", now)
    assert [n["text"] for n in notices] == [
        "Your server 'b''s GPU lease ends at 16:00 UTC (in 60 min): save your work; "
        "it will be stopped then, files kept.",
        "Your server was stopped at 14:01 UTC: its GPU was idle for 30 min (files kept).",
    ]
    assert user_notices(records, {""}, {}, "ann", now) == []


def test_in_use_is_a_process_or_the_threshold():
    assert not in_use(4, 0) and in_use(5, 0) and in_use(0, 1) and not in_use(None, 0)
    assert in_use(10, 0, threshold=10) and not in_use(9, 0, threshold=10)


def gpu(index, util):
    return GPU(index=str(index), uuid=f"GPU-{index}", name="H100", memory_total=80,
               memory_used=1, utilization=util)


def test_gpu_idle_since_is_the_latest_use_of_any_of_the_servers_gpus():
    tracker = Tracker(max_gap=100)
    server = Server("a" * 64, "ann", "", ("GPU-0", "GPU-1"), created=0)
    tracker.update(0, Inventory(gpus=(gpu(0, 0), gpu(1, 0))), (server,), {})
    tracker.update(10, Inventory(gpus=(gpu(0, 0), gpu(1, 80))), (server,), {})
    sample, _ = tracker.update(50, Inventory(gpus=(gpu(0, 0), gpu(1, 0))), (server,), {})
    assert gpu_idle_since(sample, server) == 10
    sample, _ = tracker.update(60, Inventory(gpus=(gpu(0, 0), gpu(1, 99))), (server,), {})
    assert gpu_idle_since(sample, server) == 60
    missing, _ = tracker.update(70, Inventory(gpus=(gpu(0, 0),)), (server,), {})
    assert gpu_idle_since(missing, server) is None


def test_a_fresh_service_counts_idleness_from_its_first_sample():
    tracker = Tracker()
    server = Server("a" * 64, "ann", "", ("GPU-0",), created=0)
    sample, _ = tracker.update(5000, Inventory(gpus=(gpu(0, 0),)), (server,), {})
    assert gpu_idle_since(sample, server) == 5000


def test_reclaims_are_stored_and_read_back_newest_first(tmp_path):
    log = ReclaimLog(tmp_path / "usage.sqlite")
    log.write(Reclaim(1.0, "ann", "", ("GPU-0",), "idle", "idle"))
    log.write(Reclaim(2.0, "bob", "big", ("GPU-1", "GPU-2"), "lease", "lease"))
    log.close()
    again = ReclaimLog(tmp_path / "usage.sqlite")
    assert [r.user for r in again.recent()] == ["bob", "ann"]
    assert again.recent(user="bob")[0].gpus == ("GPU-1", "GPU-2")
    assert again.recent(since=1.5) == again.recent(user="bob")
    assert again.recent()[0].model()["gpus"] == ["GPU-1", "GPU-2"]


def test_the_hubs_timestamps_parse():
    assert epoch("2026-11-22T14:00:00.000000Z") == T0
    assert epoch(None) is None


@pytest.mark.parametrize("timeout, interval", [(0, None), (20, "5"), (1800, "300"), (3, "1"), (86400, "300")])
def test_servers_report_activity_within_a_quarter_of_the_idle_timeout(timeout, interval):
    expected = {"JUPYTERHUB_ACTIVITY_INTERVAL": interval} if interval else {}
    assert activity_environment(timeout) == expected


def test_the_idle_culler_is_a_scoped_service_never_admin():
    from traitlets.config import Config

    from gpuhub.hub.idle_culler import IdleCullerSettingsError, configure_idle_culler

    c = Config()
    c.JupyterHub.services.append({"name": "site-service"})  # lazily, as sites do
    assert configure_idle_culler(c, {}) == 3600
    site, culler = c.JupyterHub.services
    assert site == {"name": "site-service"} and "admin" not in culler
    assert culler["command"][1:] == ["-m", "jupyterhub_idle_culler", "--timeout=3600"]
    (role,) = c.JupyterHub.load_roles
    assert role == {"name": "idle-culler", "services": ["idle-culler"],
                    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}
    assert configure_idle_culler(Config(), {"GPUHUB_IDLE_TIMEOUT": "120"}) == 120
    off = Config()
    assert configure_idle_culler(off, {"GPUHUB_IDLE_TIMEOUT": "0"}) == 0 and "services" not in off.JupyterHub
    for bad in ("1h", "-5", "²", "1.5"):
        with pytest.raises(IdleCullerSettingsError, match="whole number of seconds"):
            configure_idle_culler(Config(), {"GPUHUB_IDLE_TIMEOUT": bad})


class FakeHub:
    """Stands in for the hub REST API (HubServers) in a unit test of the loop's choices."""

    def __init__(self, last_activity=None):
        self.stopped = []
        self.asked = 0
        self.last_activity = last_activity

    async def server(self, user, server):
        self.asked += 1
        return {"ready": True, "pending": None, "started": None, "last_activity": self.last_activity}

    async def stop(self, user, server):
        self.stopped.append((user, server))


async def test_the_loop_stops_this_hubs_idle_servers_once_and_never_another_hubs(tmp_path):
    from gpuhub.hub.gpu_usage.reclaimer import Reclaimer

    tracker = Tracker(max_gap=10**6)
    ours = Server("a" * 64, "ann", "", ("GPU-0",), created=0, idle_timeout=20, hub="hub-a")
    theirs = Server("b" * 64, "ann", "x", ("GPU-1",), created=0, idle_timeout=20, hub="hub-b")
    tracker.update(0, Inventory(gpus=(gpu(0, 0), gpu(1, 0))), (ours, theirs), {})
    tracker.update(30, Inventory(gpus=(gpu(0, 0), gpu(1, 0))), (ours, theirs), {})
    hub, log = FakeHub(), ReclaimLog(tmp_path / "usage.sqlite")
    reclaimer = Reclaimer(lambda: tracker.latest, hub, log, interval=1, warn_before=900,
                          max_sample_age=60, hub_id="hub-a")
    await reclaimer.check(now=31)
    await reclaimer.check(now=32)  # its container is still there: not stopped twice
    assert hub.stopped == [("ann", "")]
    (record,) = log.recent()
    assert (record.user, record.gpus, record.kind) == ("ann", ("GPU-0",), "idle")
    await reclaimer.check(now=31 + 61)  # a stale sample: nobody can say a GPU is idle
    assert len(hub.stopped) == 1


async def test_a_user_at_work_with_an_idle_gpu_costs_one_hub_request_per_idle_timeout(tmp_path):
    from gpuhub.hub.gpu_usage.reclaimer import Reclaimer

    tracker = Tracker(max_gap=10**6)
    server = Server("a" * 64, "ann", "", ("GPU-0",), created=T0, idle_timeout=20)
    hub = FakeHub(last_activity="2026-11-22T14:00:25Z")  # T0 + 25
    reclaimer = Reclaimer(lambda: tracker.latest, hub, ReclaimLog(tmp_path / "usage.sqlite"),
                          interval=1, warn_before=900, max_sample_age=60)
    for now in range(21, 45):
        tracker.update(T0 + now, Inventory(gpus=(gpu(0, 0),)), (server,), {})
        await reclaimer.check(now=T0 + now)
    assert hub.asked == 1 and hub.stopped == []  # asked at +21; next when +25 + 20 passes
    tracker.update(T0 + 45, Inventory(gpus=(gpu(0, 0),)), (server,), {})
    await reclaimer.check(now=T0 + 45)
    assert hub.asked == 2 and hub.stopped == [("ann", "")]


async def test_one_servers_failed_lookup_does_not_stop_the_others_checks(tmp_path):
    from gpuhub.hub.gpu_usage.reclaimer import Reclaimer

    class HalfBrokenHub(FakeHub):
        async def server(self, user, server):
            if user == "ann":
                raise ConnectionError("hub restarting")
            return await super().server(user, server)

    tracker = Tracker(max_gap=10**6)
    servers = tuple(Server(c * 64, user, "", (f"GPU-{i}",), created=0, idle_timeout=20)
                    for i, (c, user) in enumerate((("a", "ann"), ("b", "bob"))))
    for now in (0, 30):
        tracker.update(now, Inventory(gpus=(gpu(0, 0), gpu(1, 0))), servers, {})
    hub = HalfBrokenHub()
    reclaimer = Reclaimer(lambda: tracker.latest, hub, ReclaimLog(tmp_path / "usage.sqlite"),
                          interval=1, warn_before=900, max_sample_age=60)
    await reclaimer.check(now=31)
    assert hub.stopped == [("bob", "")]


def test_a_cohorts_end_stops_any_server_gpus_or_not_before_everything_else():
    for gpus in (0, 1):
        assert verdict(T0 - 1, gpus=gpus, ends=T0).action is Action.WARN
        ended = verdict(T0, gpus=gpus, ends=T0, lease=60, started=T0 - 3600)
        assert (ended.action, ended.kind) == (Action.RECLAIM, Kind.COHORT)
        assert ended.reason == "the cohort ended at 2026-11-22 14:00 UTC"
    assert verdict(T0 + 10**6, gpus=0, ends=0).action is Action.KEEP  # 0: no cohort end


def test_the_sampler_reads_a_servers_cohort_end():
    from gpuhub.hub.gpu_usage.sampler import servers_from_containers
    from gpuhub.spawner import labels

    container = {"Id": "c" * 64, "Names": ["/gh-ann"], "Created": 5,
                 "Labels": {labels.USER_LABEL: "ann", labels.ENDS_LABEL: "1796000000"}}
    (server,) = servers_from_containers([container])
    assert (server.ends, server.gpus) == (1796000000.0, ())
    del container["Labels"][labels.ENDS_LABEL]
    assert servers_from_containers([container])[0].ends == 0


async def test_the_loop_stops_a_cpu_only_server_at_its_cohorts_end_and_records_why(tmp_path):
    from gpuhub.hub.gpu_usage.reclaimer import Reclaimer

    tracker = Tracker(max_gap=10**6)
    cohort = Server("a" * 64, "ann", "", (), created=T0, ends=T0 + 60)
    plain = Server("b" * 64, "bob", "", (), created=T0)
    hub, log = FakeHub(), ReclaimLog(tmp_path / "usage.sqlite")
    reclaimer = Reclaimer(lambda: tracker.latest, hub, log, interval=1, warn_before=900, max_sample_age=60)
    for now in (T0 + 59, T0 + 60, T0 + 61):
        tracker.update(now, Inventory(gpus=()), (cohort, plain), {})
        await reclaimer.check(now=now)
    assert hub.stopped == [("ann", "")] and hub.asked == 2  # warned, then stopped; bob never looked at
    assert reclaimer.warnings == {}
    (record,) = log.recent()
    assert (record.user, record.gpus, record.kind, record.reason) == (
        "ann", (), "cohort", "the cohort ended at 2026-11-22 14:01 UTC")
    (notice,) = user_notices(log.recent("ann"), set(), {}, "ann", T0 + 120)
    assert notice["text"] == ("Your server was stopped at 14:01 UTC: the cohort ended at "
                              "2026-11-22 14:01 UTC (files kept).")


def test_a_cohorts_end_is_announced_like_a_lease_and_the_earlier_end_wins():
    ends = T0 + 3600
    assert verdict(ends - 901, gpus=0, ends=ends).action is Action.KEEP
    warned = verdict(ends - 900, gpus=0, ends=ends)
    assert (warned.action, warned.kind, warned.cohort_ends) == (Action.WARN, Kind.COHORT, ends)
    # a GPU lease ending later than the cohort: the cohort's end is announced; earlier: the lease's
    assert verdict(ends - 600, ends=ends, lease=7200, idle_timeout=0).kind is Kind.COHORT
    leased = verdict(ends - 600, ends=ends + 60, lease=3600, idle_timeout=0)
    assert (leased.kind, leased.lease_ends) == (Kind.LEASE, T0 + 3600)
    assert verdict(ends - 600, ends=ends, idle_timeout=600).kind is Kind.IDLE  # a reclaim beats a warning
    (notice,) = user_notices([], set(), {("ann", "b"): warned}, "ann", ends - 900)
    assert notice == {"kind": "cohort", "server": "b", "ends": ends, "text":
                      "Your cohort ends at 2026-11-22 15:00 UTC (in 15 min): save your work; "
                      "your server 'b' will be stopped then, files kept."}
