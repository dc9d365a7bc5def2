"""Organizer reports and home sizes on one real hub (proxy, containers, fake GPUs).

Cohort ``c1`` (teams red: r1, r2; blue: b1) and ``c2`` (q1) are groups made
through the REST API. Three GPUs: r1, r2 and b1 hold one each, so q1 waits
in the GPU queue until b1 stops. An instructor of c1 (the filtered scope
``custom:gpu-usage:read-all!group=c1`` through a role) sees c1's report,
through the hub's OAuth login and with a token, and gets 403 for c2's.
"""

import csv
import io
import subprocess
import sys
import time

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from gpuhub.hub.cohort import names
from tests.integration.hubrig import (
    PREFIX, REPO, container_of, docker_client, running_hub, wait_for,
)

USAGE = "/services/gpu-usage"
SOFT_LIMIT_MB = 8  # a fresh home of the test image is ~16 KiB; r1 writes 12 MiB

INSTRUCTORS = f"""
c.JupyterHub.load_roles.append({{
    "name": {names.instructor_role_name("c1")!r},
    "scopes": {names.instructor_scopes("c1")!r},
    "groups": [{names.instructors_group("c1")!r}],
}})
"""


def make_group(hub, name, properties, users):
    assert hub.api("POST", f"/groups/{name}").status_code in (201, 409)
    assert hub.api("PUT", f"/groups/{name}/properties", json=properties).status_code == 200
    if users:
        assert hub.api("POST", f"/groups/{name}/users", json={"users": users}).status_code == 200


@pytest.fixture(scope="module")
def hub(engine, nvml_library, tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("cohort-report"), 3, extra_config=INSTRUCTORS, extra_env={
        "GPUHUB_USAGE_INTERVAL": "1",
        "GPUHUB_USAGE_GROUPS_INTERVAL": "1",
        "GPUHUB_USAGE_STORAGE_INTERVAL": "2",
        "GPUHUB_USAGE_CONTAINER_PREFIX": f"{PREFIX}-",
        "GPUHUB_HOME_SOFT_LIMIT": f"{SOFT_LIMIT_MB}M",
    }) as hub:
        try:
            hub.create_users("r1", "r2", "b1", "q1", "loner")
            make_group(hub, "c1", {names.COHORT: "c1"}, ["r1", "r2", "b1", "loner"])
            make_group(hub, "c1-red", {names.COHORT: "c1", names.TEAM: "red"}, ["r1", "r2"])
            make_group(hub, "c1-blue", {names.COHORT: "c1", names.TEAM: "blue"}, ["b1"])
            make_group(hub, "c2", {names.COHORT: "c2"}, ["q1"])
            time.sleep(2)  # the service reads the groups every second: the peaks count from here
            for name in ("r1", "r2", "b1"):
                hub.start_server(name, {"gpus": 1})
        except BaseException:
            print(f"\n----- hub log ({hub.log_path}) -----\n{hub.log_tail(200)}")
            raise
        yield hub


def admin_token(hub):
    if not hasattr(hub, "admin_token"):
        hub.admin_token = hub.user_token("admin")  # read-all: the hub's admins
    return hub.admin_token


def usage_get(hub, path, token):
    return requests.get(f"{hub.url}{USAGE}{path}", headers={"Authorization": f"token {token}"}, timeout=30)


def report(hub, cohort, token=None, fmt=".csv"):
    return usage_get(hub, f"/api/cohorts/{cohort}/report{fmt}", token or admin_token(hub))


def csv_rows(hub, cohort):
    response = report(hub, cohort)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_the_csv_report_sums_gpu_hours_per_team(hub):
    def red_peak_and_hours():
        rows = csv_rows(hub, "c1")
        red = next(r for r in rows if r["kind"] == "team" and r["team"] == "red")
        members = [r for r in rows if r["kind"] == "user" and r["team"] == "red"]
        total = next(r for r in rows if r["kind"] == "total")
        ready = (red["peak_gpus"], total["peak_gpus"]) == ("2", "3") and all(
            float(r["gpu_hours"]) > 0 for r in members)
        return rows if ready else None

    rows = wait_for(red_peak_and_hours, "red's two GPUs at once and GPU-hours", timeout=60)
    assert [(r["kind"], r["team"], r["user"]) for r in rows] == [
        ("user", "blue", "b1"), ("team", "blue", ""),
        ("user", "red", "r1"), ("user", "red", "r2"), ("team", "red", ""),
        ("user", "", "loner"), ("total", "", ""),
    ]
    by = {(r["kind"], r["team"], r["user"]): r for r in rows}
    for team, members in (("red", ["r1", "r2"]), ("blue", ["b1"])):
        team_row = by[("team", team, "")]
        hours = [float(by[("user", team, user)]["gpu_hours"]) for user in members]
        assert float(team_row["gpu_hours"]) > 0
        assert float(team_row["gpu_hours"]) == pytest.approx(sum(hours), abs=2e-4)
    assert by[("user", "red", "r1")]["peak_gpus"] == "1"
    assert by[("team", "blue", "")]["peak_gpus"] == "1"
    assert float(by[("user", "", "loner")]["gpu_hours"]) == 0
    total = by[("total", "", "")]
    assert float(total["gpu_hours"]) == pytest.approx(
        sum(float(r["gpu_hours"]) for r in rows if r["kind"] == "user"), abs=2e-4)

    # The page, inside the hub's frame, for the admin (read-all).
    admin = hub.login("admin")
    page = admin.get(f"{hub.url}{USAGE}/cohorts/c1", timeout=30)
    assert page.status_code == 200 and "Team red" in page.text and 'id="cohort-csv"' in page.text
    assert "Cohorts" in page.text  # the tab
    missing = report(hub, "no-such-cohort")
    assert missing.status_code == 404 and "no cohort 'no-such-cohort'" in missing.json()["message"]


def test_an_instructor_sees_only_their_cohort(hub):
    browser = hub.login("prof")  # signs up, approved, logged in
    hub.create_users("prof", groups=(names.instructors_group("c1"),))
    # the browser's OAuth login to the service: its token keeps the filtered scope
    own = browser.get(f"{hub.url}{USAGE}/cohorts/c1", timeout=30)
    assert own.status_code == 200, own.text
    assert "Team blue" in own.text
    other = browser.get(f"{hub.url}{USAGE}/cohorts/c2", timeout=30)
    assert other.status_code == 403
    assert "custom:gpu-usage:read-all!group=c2" in other.text
    assert browser.get(f"{hub.url}{USAGE}/all", timeout=30).status_code == 403  # not every GPU
    listing = browser.get(f"{hub.url}{USAGE}/cohorts", timeout=30)
    assert 'href="/services/gpu-usage/cohorts/c1"' in listing.text and "cohorts/c2" not in listing.text

    # the command line, with the instructor's token, through the proxy
    token = hub.user_token("prof")
    command = [sys.executable, "-m", "gpuhub.hub.cohort.report_cli", "--hub-url", hub.url, "--token", token]
    table = subprocess.run([*command, "c1"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "Cohort c1" in table.stdout and "r2" in table.stdout and "= team" in table.stdout
    as_csv = subprocess.run([*command, "c1", "--csv"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert as_csv.stdout.startswith("kind,cohort,team,user,gpu_hours,peak_gpus")
    refused = subprocess.run([*command, "c2"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert refused.returncode == 1 and "403" in refused.stderr and "Traceback" not in refused.stderr
    assert report(hub, "c2", token).status_code == 403


def test_a_queue_wait_is_counted(hub):
    # r1, r2 and b1 hold the three GPUs: q1 waits in line until b1 stops.
    assert hub.spawn("q1", {"gpus": 1}).status_code in (201, 202)
    time.sleep(4)
    assert not (hub.server("q1") or {}).get("ready")
    hub.stop_server("b1")
    state, message = hub.wait_spawn("q1")
    assert state == "ready", message

    def q1_row():
        (row,) = [r for r in csv_rows(hub, "c2") if r["user"] == "q1"]
        return row if row["queue_waits"] == "1" else None

    row = wait_for(q1_row, "q1's wait in c2's report", timeout=30)
    assert float(row["queue_wait_s"]) >= 3
    assert float(row["queue_wait_max_s"]) == float(row["queue_wait_s"])
    label = container_of(docker_client(), "q1").labels["gpuhub.queue_wait"]  # the spawner's
    assert float(label) == pytest.approx(float(row["queue_wait_s"]), abs=0.1)
    time.sleep(2)  # seen in more samples, still counted once
    assert [r["queue_waits"] for r in csv_rows(hub, "c2") if r["kind"] == "total"] == ["1"]


def test_home_size_and_soft_limit(hub):
    hub.login("s1")  # signs up: the browser below logs in with the password
    hub.create_users("s1", groups=("c1",))
    hub.start_server("s1", {"gpus": 0})
    s1 = hub.user_token("s1")
    container = container_of(docker_client(), "s1")
    result = container.exec_run(["dd", "if=/dev/zero", "of=/home/jovyan/big.bin", "bs=1M", "count=12"])
    assert result.exit_code == 0, result.output

    def s1_home():
        home = usage_get(hub, "/api/me", s1).json()["home"]
        return home if (home["bytes"] or 0) >= 12 * 2**20 else None

    home = wait_for(s1_home, "s1's home measured at 12 MiB or more", timeout=60)
    assert home["over_soft_limit"] and home["soft_limit"] == SOFT_LIMIT_MB * 2**20
    page = usage_get(hub, "/", s1).text  # My GPUs
    assert 'id="home-size"' in page and f"{home['size']}</strong>" in page
    warning = f"Your files use {home['size']} of the {SOFT_LIMIT_MB} MiB soft limit"
    assert warning in usage_get(hub, "/embed", s1).text
    # r1 is under the limit: no warning (an admin reads another user's figures)
    r1 = usage_get(hub, "/api/users/r1", admin_token(hub)).json()
    assert r1["home"]["bytes"] is not None and r1["home"]["warning"] == ""
    assert 'id="home-soft-limit"' not in usage_get(hub, "/embed", hub.user_token("r1")).text

    rows = {r["user"]: r for r in csv_rows(hub, "c1") if r["kind"] == "user"}
    assert int(rows["s1"]["home_bytes"]) >= 12 * 2**20 and rows["s1"]["over_soft_limit"] == "1"
    assert rows["r1"]["over_soft_limit"] == "0"
    total = next(r for r in csv_rows(hub, "c1") if r["kind"] == "total")
    assert total["over_soft_limit"] == "1"

    # the hub's home page in a real browser: the warning in its GPUs frame
    from tests.integration.test_gpu_usage_browser import log_in
    from tests.integration.test_spawn_form_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = log_in(browser, hub, "s1")
            page.goto(f"{hub.url}/hub/home")
            frame = page.frame_locator("#gpuhub-home-gpus iframe")
            expect(frame.locator("#home-soft-limit")).to_contain_text(warning, timeout=30_000)
            page.screenshot(path=ARTIFACTS / "cohort-home-soft-limit.png", full_page=True)
            admin = log_in(browser, hub, "admin", hub.admin_password)
            admin.goto(f"{hub.url}{USAGE}/cohorts/c1")
            expect(admin.locator('#cohort-total tr[data-kind="total"]')).to_be_visible()
            expect(admin.locator('tr[data-user="s1"] .badge')).to_have_text("over soft limit")
            admin.screenshot(path=ARTIFACTS / "cohort-report.png", full_page=True)
        finally:
            browser.close()
