"""A cohort's window, team folders, the datasets folder and the stop at ``ends``,
on one real hub (module-scoped), proxy and containers, with fake GPUs.

Servers are CPU-only: the window and the folders do not depend on GPUs, and
the stop at ``ends`` must reach CPU-only servers too (the gpu-usage
service's reclaimer once looked only at GPU servers).
"""

import datetime
import os
import subprocess
import sys
import time

import pytest

from gpuhub.hub.cohort.names import COHORT, ENDS, STARTS, TEAM
from gpuhub.spawner.labels import ENDS_LABEL
from tests.integration.hubrig import IMAGE, PREFIX, REPO, container_of, running_hub, wait_for

USAGE = "/services/gpu-usage"
HOME = "/home/jovyan"


def iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def hub(engine, nvml_library, tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("cohort-spaces"), 1, extra_env={
        "GPUHUB_USAGE_INTERVAL": "1",
        "GPUHUB_RECLAIM_INTERVAL": "1",
        "GPUHUB_USAGE_CONTAINER_PREFIX": f"{PREFIX}-",
    }) as hub:
        yield hub


def set_properties(hub, group: str, properties: dict):
    hub.api("POST", f"/groups/{group}")
    response = hub.api("PUT", f"/groups/{group}/properties", json=properties)
    assert response.status_code == 200, response.text


def run(container, command: str) -> tuple[int, str]:
    """``command`` in a server, as its notebook user (the container's user)."""
    result = container.exec_run(["sh", "-c", command])
    return result.exit_code, result.output.decode(errors="replace").strip()


def datasets(hub, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPUHUB_PREFIX": PREFIX, "GPUHUB_IMAGE": IMAGE,
           "GPUHUB_STATE_DIR": str(hub.workdir / "state")}
    return subprocess.run([sys.executable, "-m", "gpuhub.hub.cli", "datasets", *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def test_a_cohorts_members_start_servers_only_inside_its_dates(hub, engine):
    starts = utc_now() + datetime.timedelta(days=3)
    ends = starts + datetime.timedelta(days=18)
    set_properties(hub, "ml-101", {COHORT: "ml-101", STARTS: iso(starts), ENDS: iso(ends)})
    hub.create_users("stu", groups=("ml-101",))
    hub.create_users("otto")  # in no cohort
    message = (f"The cohort ml-101 runs from {starts:%Y-%m-%d %H:%M} UTC to {ends:%Y-%m-%d %H:%M} UTC: "
               "servers can be started only then.")

    refused = hub.spawn("stu", {"gpus": 0})
    assert refused.status_code == 400 and refused.json()["message"] == message, refused.text
    page = hub.login("stu").get(f"{hub.url}/hub/spawn", timeout=60)
    assert page.status_code == 400 and message in page.text, page.text
    said = [line for line in hub.log_path.read_text().splitlines() if "The cohort ml-101 runs" in line]
    assert said and not any(line.startswith("[E") for line in said), said  # warnings, not errors
    assert "Traceback" not in hub.log_tail(200)
    assert hub.server("stu") is None
    hub.start_server("otto", {"gpus": 0})  # outside the cohort: unaffected
    # no `gpuhub datasets add` yet: nothing hides a user's own ~/datasets
    assert not any(m["Destination"] == f"{HOME}/datasets" for m in container_of(engine, "otto").attrs["Mounts"])

    # A bad date: the group-property message, 400.
    set_properties(hub, "ml-101", {COHORT: "ml-101", STARTS: "next monday", ENDS: iso(ends)})
    bad = hub.spawn("stu", {"gpus": 0})
    assert bad.status_code == 400 and "invalid property starts = 'next monday': it must be an ISO 8601" \
        in bad.json()["message"], bad.text

    # The cohort opens: stu starts, and the server carries the cohort's end.
    opened = utc_now() - datetime.timedelta(minutes=1)
    set_properties(hub, "ml-101", {COHORT: "ml-101", STARTS: iso(opened), ENDS: iso(ends)})
    hub.start_server("stu", {"gpus": 0})
    assert container_of(engine, "stu").labels[ENDS_LABEL] == f"{ends.timestamp():.0f}"
    assert ENDS_LABEL not in container_of(engine, "otto").labels
    hub.stop_server("stu")
    hub.stop_server("otto")


def test_team_folders_are_shared_by_members_only_and_datasets_are_read_only(hub, engine, tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / "train.csv").write_text("x,y\n1,2\n")
    (course / "train.csv").chmod(0o600)  # the admin's private file: every user reads the copy
    added = datasets(hub, "add", str(course))
    assert added.returncode == 0, added.stderr
    assert f"into ~/datasets/course (volume {PREFIX}-datasets): 1 file(s)" in added.stdout, added.stdout
    again = datasets(hub, "add", str(course))
    assert again.returncode == 2 and "'course' is already in ~/datasets" in again.stderr, again.stderr

    set_properties(hub, "ml-101-red", {COHORT: "ml-101", TEAM: "red"})
    hub.create_users("ana", "ben", groups=("ml-101-red",))
    hub.create_users("cal")
    for name in ("ana", "ben", "cal"):
        hub.start_server(name, {"gpus": 0})
    ana, ben, cal = (container_of(engine, name) for name in ("ana", "ben", "cal"))

    # ana writes in ~/team, ben reads it; the file is the notebook user's
    assert run(ana, f"echo from ana > {HOME}/team/notes.txt") == (0, "")
    assert run(ben, f"cat {HOME}/team/notes.txt; stat -c %u:%g {HOME}/team/notes.txt") == (
        0, "from ana\n1000:100")
    assert run(ben, f"stat -c %u {HOME}/team") == (0, "1000")  # the new volume was given to the user
    team_volume = next(m["Name"] for m in ana.attrs["Mounts"] if m["Destination"] == f"{HOME}/team")
    assert engine.volumes.get(team_volume).attrs["Labels"]["gpuhub.team"] == "ml-101-red"
    # cal is in no team: no ~/team, and no mount of the team's volume anywhere
    assert not any(m.get("Name") == team_volume or "team" in m["Destination"] for m in cal.attrs["Mounts"])
    assert run(cal, f"ls {HOME}/team")[0] != 0

    # ~/datasets: the copy, readable, read-only; a later add shows at once
    assert run(cal, f"cat {HOME}/datasets/course/train.csv") == (0, "x,y\n1,2")
    code, said = run(ana, f"touch {HOME}/datasets/mine.txt")
    assert code != 0 and "Read-only file system" in said, said
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    assert datasets(hub, "add", str(tmp_path / "labels.txt"), "--name", "labels").returncode == 0
    assert run(ben, f"cat {HOME}/datasets/labels") == (0, "cat\ndog")
    listed = datasets(hub, "list")
    assert listed.returncode == 0 and listed.stdout.splitlines()[0].startswith("course\t1 file(s)"), listed
    for name in ("ana", "ben", "cal"):
        hub.stop_server(name)

    # cal joins the team: at the next start the team's files are there (they outlived the servers)
    assert hub.api("POST", "/groups/ml-101-red/users", json={"users": ["cal"]}).status_code == 200
    hub.start_server("cal", {"gpus": 0})
    assert run(container_of(engine, "cal"), f"cat {HOME}/team/notes.txt") == (0, "from ana")
    hub.stop_server("cal")


def test_a_cohorts_servers_are_stopped_at_its_end_files_kept(hub, engine):
    ends = utc_now() + datetime.timedelta(seconds=40)
    window = {COHORT: "sprint", STARTS: iso(ends - datetime.timedelta(hours=1)), ENDS: iso(ends)}
    set_properties(hub, "sprint", window)
    hub.create_users("dee", groups=("sprint",))
    hub.start_server("dee", {"gpus": 0})  # CPU-only
    assert run(container_of(engine, "dee"), f"echo kept > {HOME}/work.txt") == (0, "")
    warned = wait_for(lambda: [n for n in _usage(hub, "/api/me", hub.user_token("dee"))["notices"]
                               if n["kind"] == "cohort"], "dee warned of the cohort's end", timeout=20)
    assert warned[0]["text"].startswith(f"Your cohort ends at {ends:%Y-%m-%d %H:%M} UTC (in "), warned
    assert hub.server("dee") and time.time() < ends.timestamp() - 5  # warned, still running

    wait_for(lambda: hub.server("dee") is None, "dee's server to be stopped at the cohort's end",
             timeout=ends.timestamp() - time.time() + 40)
    stopped_after = time.time() - ends.timestamp()
    assert stopped_after >= 0, stopped_after
    reclaimed = _usage(hub, "/api/gpus", hub.user_token("admin"))["reclaimed"]
    history = [r for r in reclaimed if r["user"] == "dee"]
    assert [(r["kind"], r["reason"]) for r in history] == [
        ("cohort", f"the cohort ended at {ends:%Y-%m-%d %H:%M} UTC")]
    token = hub.user_token("dee")
    # told on the next visit, once the service's sample no longer lists the container
    notices = wait_for(lambda: _usage(hub, "/api/me", token)["notices"], "dee's notice", timeout=20)
    assert [n["kind"] for n in notices] == ["stopped"] and "the cohort ended at" in notices[0]["text"]

    # Ended: no new start. Reopened: the files are there.
    assert hub.spawn("dee", {"gpus": 0}).status_code == 400
    set_properties(hub, "sprint", {**window, ENDS: iso(utc_now() + datetime.timedelta(hours=1))})
    hub.start_server("dee", {"gpus": 0})
    assert run(container_of(engine, "dee"), f"cat {HOME}/work.txt") == (0, "kept")
    hub.stop_server("dee")


def _usage(hub, path: str, token: str) -> dict:
    import requests

    response = requests.get(f"{hub.url}{USAGE}{path}", headers={"Authorization": f"token {token}"},
                            timeout=30)
    assert response.status_code == 200, response.text
    return response.json()
