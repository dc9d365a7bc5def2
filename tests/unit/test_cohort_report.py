"""The organizer's report: cohorts from groups, who may see them, peaks, sums,
CSV and the text table; peaks, queue waits and homes kept across restarts."""

import csv
import io

import pytest
from traitlets.config import Config

from gpuhub.hub.cohort import names
from gpuhub.hub.environment import settings_from_environment
from gpuhub.hub.gpu_usage import READ_ALL_SCOPE
from gpuhub.hub.gpu_usage.app import ENVIRONMENT
from gpuhub.hub.gpu_usage.cohorts import (
    cohorts_from_groups, group_members, gpus_held, may_read_cohort, raised_peaks, readable_cohorts,
)
from gpuhub.hub.gpu_usage.records import PeakRecord, QueueWaits
from gpuhub.hub.gpu_usage.reclaim_log import Reclaim, ReclaimLog
from gpuhub.hub.gpu_usage.report import (
    Figures, WaitTotals, cohort_report, human_bytes, report_csv, rows, text_table,
)
from gpuhub.hub.gpu_usage.sampler import servers_from_containers
from gpuhub.hub.gpu_usage.storage import HomeSizes, volume_sizes
from gpuhub.hub.gpu_usage.tracker import Sample, Server
from gpuhub.hub.gpu_usage.views import home_model

GROUPS = [
    {"name": "ml-101", "users": ["alice", "dave"], "properties": {names.COHORT: "ml-101", "gpu_quota": 1}},
    {"name": "ml-101-red", "users": ["alice", "bob"], "properties": {names.COHORT: "ml-101", names.TEAM: "red"}},
    {"name": "ml-101-blue", "users": ["carol"], "properties": {names.COHORT: "ml-101", names.TEAM: "blue"}},
    {"name": "ml-101-instructors", "users": ["lee"],
     "properties": {names.COHORT: "ml-101", names.INSTRUCTORS: True}},
    {"name": "researchers", "users": ["zed"], "properties": {}},
    {"name": "stray-team", "users": ["x"], "properties": {names.COHORT: "gone", names.TEAM: "t"}},
]


def server(user, *gpus, container="c"):
    return Server(container_id=f"{container}-{user}", user=user, server="", gpus=gpus, created=0)


def test_cohorts_come_from_group_properties():
    cohorts = cohorts_from_groups(GROUPS)
    assert list(cohorts) == ["ml-101"]  # a team without its cohort's group is no cohort
    cohort = cohorts["ml-101"]
    assert cohort.members == ("alice", "bob", "carol", "dave")  # team members count, instructors do not
    assert cohort.teams == {"blue": ("carol",), "red": ("alice", "bob")}
    assert cohort.without_team == ("dave",)
    assert group_members(cohorts) == {
        "ml-101": frozenset({"alice", "bob", "carol", "dave"}),
        "ml-101-red": frozenset({"alice", "bob"}), "ml-101-blue": frozenset({"carol"}),
    }


def test_the_filtered_scope_shows_one_cohort_only():
    instructor = {"read:users!group=ml-101", f"{READ_ALL_SCOPE}!group=ml-101"}
    assert may_read_cohort(instructor, "ml-101")
    assert not may_read_cohort(instructor, "ml-102")
    assert not may_read_cohort({f"{READ_ALL_SCOPE}!user=ml-102"}, "ml-102")
    assert may_read_cohort({READ_ALL_SCOPE}, "anything")
    assert readable_cohorts(instructor, ["ml-102", "ml-101"]) == ["ml-101"]


def test_peaks_count_distinct_gpus_and_only_rise():
    members = group_members(cohorts_from_groups(GROUPS))
    held = gpus_held([server("alice", "G1"), server("bob", "G2", "G3"), server("carol", "G3", container="d"),
                      server("zed")], members)
    assert held == {("user", "alice"): 1, ("user", "bob"): 2, ("user", "carol"): 1,
                    ("group", "ml-101-red"): 3, ("group", "ml-101-blue"): 1,
                    ("group", "ml-101"): 3}  # carol shares G3 with bob: three GPUs in all
    peaks = {("group", "ml-101-red"): (5, 1.0), ("user", "alice"): (1, 1.0)}
    assert raised_peaks(peaks, held, 9.0) == {
        ("user", "bob"): (2, 9.0), ("user", "carol"): (1, 9.0),
        ("group", "ml-101-blue"): (1, 9.0), ("group", "ml-101"): (3, 9.0)}


FIGURES = Figures(
    hours={"alice": 1.5, "bob": 2.25, "carol": 4.0, "zed": 9.0},
    user_peaks={"alice": 1, "bob": 2, "carol": 1},
    group_peaks={"ml-101-red": 2, "ml-101-blue": 1, "ml-101": 3},
    waits={"bob": WaitTotals(2, 90.0, 60.0), "carol": WaitTotals(1, 30.0, 30.0)},
    reclaims={"alice": 1, "carol": 2},
    home_bytes={"alice": 11 * 2**30, "bob": 2**20},
    soft_limit=10 * 2**30,
)


def test_team_rows_sum_their_members_and_keep_their_own_peak():
    report = cohort_report(cohorts_from_groups(GROUPS)["ml-101"], FIGURES)
    red = next(t for t in report["teams"] if t["team"] == "red")
    assert red["total"] == {
        "kind": "team", "cohort": "ml-101", "team": "red", "user": "",
        "gpu_hours": 3.75, "peak_gpus": 2, "queue_waits": 2, "queue_wait_s": 90.0,
        "queue_wait_max_s": 60.0, "reclaims": 1, "home_bytes": 11 * 2**30 + 2**20, "over_soft_limit": 1,
    }
    alice = red["members"][0]
    assert (alice["user"], alice["over_soft_limit"], alice["home_bytes"]) == ("alice", 1, 11 * 2**30)
    total = report["total"]
    assert (total["gpu_hours"], total["peak_gpus"], total["queue_waits"], total["reclaims"]) == (7.75, 3, 3, 3)
    assert [r["user"] for r in report["without_team"]] == ["dave"]
    dave = report["without_team"][0]
    assert (dave["gpu_hours"], dave["home_bytes"], dave["over_soft_limit"]) == (0.0, None, 0)
    assert [(r["kind"], r["team"], r["user"]) for r in rows(report)] == [
        ("user", "blue", "carol"), ("team", "blue", ""), ("user", "red", "alice"), ("user", "red", "bob"),
        ("team", "red", ""), ("user", "", "dave"), ("total", "", "")]


def test_csv_has_one_row_per_member_team_and_total_and_no_formulas():
    groups = [*GROUPS[:3], {"name": "ml-101-red", "users": ["=cmd|x", "alice", "bob"],
                            "properties": {names.COHORT: "ml-101", names.TEAM: "red"}}]
    parsed = list(csv.DictReader(io.StringIO(report_csv(cohort_report(cohorts_from_groups(groups)["ml-101"],
                                                                         FIGURES)))))
    assert [r["user"] for r in parsed if r["kind"] == "user"] == ["carol", "'=cmd|x", "alice", "bob", "dave"]
    red = next(r for r in parsed if r["kind"] == "team" and r["team"] == "red")
    assert (red["gpu_hours"], red["peak_gpus"], red["queue_wait_s"], red["home_bytes"]) == (
        "3.7500", "2", "90", str(11 * 2**30 + 2**20))
    dave = next(r for r in parsed if r["user"] == "dave")
    assert (dave["gpu_hours"], dave["home_bytes"]) == ("0", "")


def test_text_table_and_sizes():
    table = text_table(cohort_report(cohorts_from_groups(GROUPS)["ml-101"], FIGURES))
    lines = table.splitlines()
    assert lines[0] == "Cohort ml-101, soft limit 10 GiB"
    assert lines[1].split()[:3] == ["Team", "User", "GPU-hours"]
    assert any(line.split()[:4] == ["red", "=", "team", "3.75"] for line in lines), table
    assert lines[-1].split()[:4] == ["ALL", "=", "cohort", "7.75"]
    assert [human_bytes(n) for n in (None, 0, 1536, 11.2 * 2**30, 10 * 2**30)] == [
        "–", "0 B", "1.5 KiB", "11.2 GiB", "10 GiB"]


def test_the_soft_limit_warns_only_above_it():
    assert home_model(int(11.2 * 2**30), 10 * 2**30)["warning"].startswith(
        "Your files use 11.2 GiB of the 10 GiB soft limit: ")
    assert home_model(9 * 2**30, 10 * 2**30)["warning"] == ""
    assert home_model(99 * 2**30, 0) == {"bytes": 99 * 2**30, "size": "99 GiB", "soft_limit": None,
                                         "over_soft_limit": False, "warning": ""}
    assert home_model(None, 2**30)["size"] == "–"


def test_sizes_in_the_environment_take_suffixes():
    # was: int("10G") failed, so GPUHUB_USAGE_BUSY_MEMORY=512M stopped the service
    config = Config()
    settings_from_environment(config, ENVIRONMENT, {"GPUHUB_HOME_SOFT_LIMIT": "10G",
                                                    "GPUHUB_USAGE_BUSY_MEMORY": "512M"})
    assert config.GpuUsageApp.home_soft_limit == 10 * 2**30
    assert config.GpuUsageApp.busy_memory_threshold == 512 * 2**20
    with pytest.raises(ValueError, match="GPUHUB_HOME_SOFT_LIMIT"):
        settings_from_environment(Config(), ENVIRONMENT, {"GPUHUB_HOME_SOFT_LIMIT": "ten"})


def test_containers_give_queue_wait_and_home_volume():
    (parsed,) = servers_from_containers([{
        "Id": "abc", "Names": ["/p-ann"], "Created": 5,
        "Labels": {"gpuhub.user": "ann", "gpuhub.gpus": "G1", "gpuhub.queue_wait": "42.5"},
        "Mounts": [{"Type": "volume", "Name": "p-team-red", "Destination": "/home/jovyan/team"},
                   {"Type": "volume", "Name": "p-user-ann", "Destination": "/home/jovyan"}],
    }])
    assert (parsed.queue_wait, parsed.home_volume) == (42.5, "p-user-ann")


def test_records_survive_a_restart_and_count_each_wait_once(tmp_path):
    path = tmp_path / "usage.sqlite"
    members = {"t": frozenset({"ann", "bob"})}
    waited = Server(container_id="c1", user="ann", server="", gpus=("G1",), created=0, queue_wait=30,
                    home_volume="v-ann")
    bob = Server(container_id="c2", user="bob", server="", gpus=("G2",), created=0)
    peaks, waits, homes = PeakRecord(path, lambda: members), QueueWaits(path), HomeSizes(path, 60)
    for time in (1.0, 2.0):  # the same container in two samples
        sample = Sample(time=time, servers=(waited, bob))
        for record in (peaks, waits, homes):
            record.write(record.observe(sample))
    peaks.write(peaks.observe(Sample(time=3.0, servers=(bob,))))
    assert peaks.peaks("group") == {"t": 2}
    assert waits.totals() == {"ann": WaitTotals(1, 30.0, 30.0)}
    for record in (peaks, waits, homes):
        record.close()
    again_peaks, again_waits, again_homes = PeakRecord(path, dict), QueueWaits(path), HomeSizes(path, 60)
    assert again_peaks.peaks("user") == {"ann": 1, "bob": 1} and again_peaks.peaks("group") == {"t": 2}
    assert again_waits.observe(Sample(time=4.0, servers=(waited,))) == []  # counted before the restart
    assert again_waits.totals() == {"ann": WaitTotals(1, 30.0, 30.0)}
    again_homes._sizes = volume_sizes({"Volumes": [{"Name": "v-ann", "UsageData": {"Size": 123}},
                                                   {"Name": "v-x", "UsageData": {"Size": -1}}]})
    assert again_homes.by_user() == {"ann": 123} and again_homes.size_of("bob") is None
    for record in (again_peaks, again_waits, again_homes):
        record.close()


def test_reclaims_are_counted_per_user_across_restarts(tmp_path):
    log = ReclaimLog(tmp_path / "r.sqlite", keep=1)
    for user in ("ann", "ann", "bob"):
        log.write(Reclaim(1.0, user, "", ("G1",), "idle", "idle"))
    assert log.counts() == {"ann": 2, "bob": 1}
    log.close()
    assert ReclaimLog(tmp_path / "r.sqlite", keep=1).counts() == {"ann": 2, "bob": 1}


@pytest.mark.parametrize("given", ["https://hub.example.org", "https://hub.example.org/hub/",
                                   "https://hub.example.org/hub/api"])
def test_services_are_reached_through_the_hubs_public_address(given):
    from gpuhub.hub.hub_client import HubClient, api_url

    client = HubClient(api_url(given), "t")
    assert client.service_url("gpu-usage") == "https://hub.example.org/services/gpu-usage"


def test_the_report_command_says_what_is_missing(capsys, monkeypatch):
    from gpuhub.hub.cohort.report_cli import main

    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert main(["ml-101"]) == 1
    assert "--hub-url and --token" in capsys.readouterr().err
