"""``gpuhub cohort import|remove`` (the real command) against one real hub for
the module: a 20-student cohort imported twice, a malformed file that changes
nothing, an imported user's one-time password, an instructor's reach, the
role across a hub restart, least privilege of the role API, and remove."""

import os
import re
import subprocess
import sys
import textwrap

import pytest
import requests

from gpuhub.hub.cohort.names import ORGANIZER_SCOPES

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import (
    PREFIX,
    REPO,
    Hub,
    other_prefix,
    running_hub,
    wait_for,
)

COHORT = "ml-101"
TEAMS = {
    "red": [f"s{n:02d}" for n in range(1, 8)],
    "blue": [f"s{n:02d}" for n in range(8, 15)],
    "green": [f"s{n:02d}" for n in range(15, 19)],  # from the CSV
}
LOOSE = ["s19", "s20"]  # members without a team
STUDENTS = [u for members in TEAMS.values() for u in members] + LOOSE
INSTRUCTOR = "prof-lee"
ROLE = f"gpuhub-instructors-{COHORT}"
INSTRUCTOR_SCOPES = sorted(
    f"{scope}!group={COHORT}" for scope in (
        "list:users", "read:users", "read:users:activity", "read:servers", "servers",
        "access:servers", "read:groups", "list:groups", "custom:gpu-usage:read-all"))


def cohort_yaml(red=TEAMS["red"], blue=TEAMS["blue"]) -> str:
    return textwrap.dedent(f"""\
        cohort: {COHORT}
        gpu_quota: 1
        mem_limit: 1G
        starts: 2026-01-01T09:00:00Z
        ends: 2099-12-19T18:00:00+01:00
        teams:
          red: [{", ".join(red)}]
          blue: [{", ".join(blue)}]
        users: [{", ".join(LOOSE)}]
        users_csv: people.csv
        """)


PEOPLE_CSV = "username,team,role\n" + "".join(f"{u},green,\n" for u in TEAMS["green"]) \
    + f"{INSTRUCTOR.upper()},,instructor\n"


@pytest.fixture(scope="module")
def hub(request, engine, nvml_library, tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("cohort-hub"), 1) as hub:
        yield hub
        if request.session.testsfailed:
            print(f"\n----- hub log ({hub.log_path}) -----\n{hub.log_tail(200)}")


def organizer_token(hub) -> str:
    """An admin's token with exactly the organizer's scopes."""
    response = hub.api("POST", "/users/admin/tokens", json={"scopes": ORGANIZER_SCOPES})
    assert response.status_code == 201, response.text
    return response.json()["token"]


@pytest.fixture(scope="module")
def organizer(hub):
    return organizer_token(hub)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort-files")
    (folder / "people.csv").write_text(PEOPLE_CSV)
    (folder / "ml-101.yaml").write_text(cohort_yaml())
    return folder


def gpuhub(hub, token, *args) -> subprocess.CompletedProcess:
    """The real command, the hub's address and token from JupyterHub's variables."""
    env = {**os.environ, "JUPYTERHUB_API_URL": f"{hub.url}/hub/api", "JUPYTERHUB_API_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "gpuhub.hub.cli", "cohort", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def snapshot(hub) -> tuple[list, list]:
    users = sorted(u["name"] for u in hub.api("GET", "/users?limit=200").json())
    groups = sorted((g["name"], sorted(g["users"]), sorted(g["properties"].items()))
                    for g in hub.api("GET", "/groups?limit=200").json())
    return users, groups


def test_import_twice_creates_then_changes_nothing(hub, organizer, files):
    before = snapshot(hub)
    dry = gpuhub(hub, organizer, "import", str(files / "ml-101.yaml"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "created user s01" in dry.stdout.splitlines()
    assert dry.stdout.endswith("dry run: nothing changed\n") and snapshot(hub) == before
    missing = gpuhub(hub, organizer, "import", str(files / "ml-101.yaml"))
    assert missing.returncode == 2 and "give --passwords OUT.csv" in missing.stderr
    assert snapshot(hub) == before

    first = gpuhub(hub, organizer, "import", str(files / "ml-101.yaml"),
                   "--passwords", str(files / "passwords.csv"))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    for expected in ("created user s01", "created user prof-lee", f"created group {COHORT}",
                     f"created group {COHORT}-green", f"created group {COHORT}-instructors",
                     f"set {COHORT} gpu_quota = 1", f"set {COHORT}-red gpuhub_team = red",
                     f"added s15 to {COHORT}-green", f"added prof-lee to {COHORT}-instructors",
                     f"created role {ROLE} for group {COHORT}-instructors"):
        assert expected in lines, first.stdout
    assert sum(line.startswith("created user ") for line in lines) == 21
    assert "wrote one-time passwords of 21 new users" in first.stdout

    # a property the file does not manage is kept
    response = hub.api("PUT", f"/groups/{COHORT}/properties", json={
        **hub.api("GET", f"/groups/{COHORT}").json()["properties"], "description": "Autumn"})
    assert response.status_code == 200, response.text
    second = gpuhub(hub, organizer, "import", str(files / "ml-101.yaml"))
    assert (second.returncode, second.stdout) == (0, "nothing changed\n"), second.stderr

    groups = {g["name"]: g for g in hub.api("GET", "/groups").json()}
    assert {name: sorted(g["users"]) for name, g in groups.items() if name.startswith(COHORT)} == {
        COHORT: sorted(STUDENTS), f"{COHORT}-instructors": [INSTRUCTOR],
        **{f"{COHORT}-{team}": sorted(members) for team, members in TEAMS.items()},
    }
    assert groups[COHORT]["properties"] == {
        "gpuhub_cohort": COHORT, "gpu_quota": 1, "mem_limit": "1G", "description": "Autumn",
        "starts": "2026-01-01T09:00:00+00:00", "ends": "2099-12-19T17:00:00+00:00"}
    red = dict(groups[f"{COHORT}-red"]["properties"])
    assert re.fullmatch(rf"{COHORT}-red-[0-9a-f]{{8}}", red.pop("gpuhub_team_volume"))
    assert red == {"gpuhub_cohort": COHORT, "gpuhub_team": "red"}
    assert groups[f"{COHORT}-instructors"]["properties"] == {
        "gpuhub_cohort": COHORT, "gpuhub_instructors": True}
    role = hub.api("GET", f"/gpuhub/cohorts/{COHORT}/instructors-role", token=organizer).json()
    assert role == {"name": ROLE, "scopes": INSTRUCTOR_SCOPES, "groups": [f"{COHORT}-instructors"]}

    # s07 moves from red to blue: leaves the red group
    (files / "moved.yaml").write_text(cohort_yaml(TEAMS["red"][:-1], TEAMS["blue"] + ["s07"]))
    moved = gpuhub(hub, organizer, "import", str(files / "moved.yaml"))
    assert sorted(moved.stdout.splitlines()) == [f"added s07 to {COHORT}-blue",
                                                 f"removed s07 from {COHORT}-red"], moved.stderr


def test_a_malformed_file_names_its_bad_lines_and_changes_nothing(hub, organizer, files):
    before = snapshot(hub)
    (files / "bad.csv").write_text("username,team\nzed,red\nbad name,red\n")
    (files / "bad.yaml").write_text(textwrap.dedent("""\
        cohort: ml-102
        gpu_quota: -1
        starts: 2026-12-01
        teams:
          red: [ann, ann]
          blue: [ann]
        colour: blue
        users_csv: bad.csv
        """))
    result = gpuhub(hub, organizer, "import", str(files / "bad.yaml"), "--passwords",
                    str(files / "never.csv"))
    assert result.returncode == 2
    for where in ("bad.yaml:2: gpu_quota = -1", "bad.yaml:3: starts", "bad.yaml:5: duplicate user ann",
                  "bad.yaml:6: ann is in team blue and in team red", "bad.yaml:7: unknown key 'colour'",
                  "bad.csv:3: invalid user name 'bad name'"):
        assert where in result.stderr, result.stderr
    assert "nothing was changed" in result.stderr
    assert snapshot(hub) == before
    assert not (files / "never.csv").exists()


def passwords(files) -> dict[str, str]:
    lines = (files / "passwords.csv").read_text().splitlines()
    return dict(line.split(",", 1) for line in lines[1:])


def log_in(hub, name, password) -> requests.Session:
    """Through the real login page, as a browser does."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    response = hub.form_post(session, "/hub/login", {"username": name, "password": password})
    assert response.status_code == 302, response.text
    return session


def test_an_imported_user_logs_in_with_the_one_time_password(hub, files):
    path = files / "passwords.csv"
    assert path.stat().st_mode & 0o777 == 0o600
    rows = passwords(files)
    assert sorted(rows) == sorted([*STUDENTS, INSTRUCTOR])
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    response = hub.form_post(session, "/hub/login", {"username": "s02", "password": rows["s02"]})
    assert response.status_code == 302, response.text
    assert response.headers["Location"].endswith("/hub/change-password")
    page = session.get(f"{hub.url}/hub/change-password", timeout=30)
    assert "given to you by the organizers" in page.text
    new = "s02-own-Password-9"
    changed = hub.form_post(session, "/hub/change-password", {
        "old_password": rows["s02"], "new_password": new, "new_password_confirmation": new})
    assert "changed successfully" in changed.text
    again = requests.Session()
    again.get(f"{hub.url}/hub/login", timeout=30)
    response = hub.form_post(again, "/hub/login", {"username": "s02", "password": new})
    assert response.status_code == 302
    assert not response.headers["Location"].endswith("/change-password")


def test_an_instructor_manages_members_servers_only(hub, files):
    token = hub.user_token(INSTRUCTOR)
    hub.create_users("outsider")
    response = hub.api("POST", "/users/s01/server", token=token, json={})
    assert response.status_code in (201, 202), response.text
    assert hub.wait_spawn("s01")[0] == "ready"
    # enter it to help, in a browser: JupyterHub asks the instructor to confirm
    # (another user's server), then the member's Jupyter server lets them in.
    # (An API token alone is not enough there: the server's HubAuth does not
    # resolve a group filter, a JupyterHub limitation.)
    session = log_in(hub, INSTRUCTOR, passwords(files)[INSTRUCTOR])
    page = session.get(f"{hub.url}/user/s01/files/help.txt", timeout=60)  # a page: to the hub
    assert "/oauth2/authorize" in page.url, (page.url, page.status_code)
    fields = {"_xsrf": re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1),
              "scopes": re.findall(r'type="hidden" name="scopes" value="([^"]+)"', page.text)}
    session.post(page.url, data=fields, timeout=60)  # back to the server, its cookie set
    inside = session.get(f"{hub.url}/user/s01/api/status", timeout=60)
    assert inside.status_code == 200 and "started" in inside.json(), inside.text
    assert hub.api("GET", "/users/s01").json()["servers"][""]["ready"]
    response = hub.api("DELETE", "/users/s01/server", token=token)
    assert response.status_code in (202, 204), response.text
    wait_for(lambda: hub.server("s01") is None, "s01's server to stop")
    # JupyterHub refuses a resource outside a token's filters with 404, not 403:
    # it does not say whether such a user exists.
    for method in ("POST", "DELETE"):
        response = hub.api(method, "/users/outsider/server", token=token, json={})
        assert response.status_code == 404, response.text
        assert response.json()["message"] == "No access to resources or resources not found"
    assert hub.server("outsider") is None
    assert hub.api("GET", "/users/outsider", token=token).status_code == 404
    assert hub.api("GET", "/users/s01", token=token).status_code == 200
    # nothing else: no new users, no changes to the cohort's groups
    assert hub.api("POST", "/users/intruder", token=token).status_code == 403
    response = hub.api("POST", f"/groups/{COHORT}/users", token=token, json={"users": ["outsider"]})
    assert response.status_code in (403, 404) and "outsider" not in \
        hub.api("GET", f"/groups/{COHORT}").json()["users"]


def test_the_role_api_is_least_privilege(hub, organizer):
    weak = hub.api("POST", "/users/admin/tokens",
                   json={"scopes": ["admin:users", "admin:groups"]}).json()["token"]
    response = hub.api("PUT", f"/gpuhub/cohorts/{COHORT}/instructors-role", token=weak)
    assert response.status_code == 403
    assert f"access:servers!group={COHORT}" in response.json()["message"]
    response = hub.api("DELETE", f"/gpuhub/cohorts/{COHORT}/instructors-role", token=weak)
    assert response.status_code == 403
    response = hub.api("PUT", "/gpuhub/cohorts/ML%20101/instructors-role", token=organizer)
    assert response.status_code == 400 and "invalid cohort name" in response.json()["message"]
    response = hub.api("POST", "/gpuhub/accounts", token=organizer, json={"users": ["s03"]})
    assert response.status_code == 409 and '"reset": true' in response.json()["message"]
    response = hub.api("POST", "/gpuhub/accounts", token=organizer, json={"users": "s03"})
    assert response.status_code == 400
    # the organizer is no admin: the admin's password is not theirs to set
    response = hub.api("POST", "/gpuhub/accounts", token=organizer,
                       json={"users": ["admin"], "reset": True})
    assert response.status_code == 403, response.text
    assert "admin (" in response.json()["message"] and "shutdown" in response.json()["message"]
    groups_only = hub.api("POST", "/users/admin/tokens",
                          json={"scopes": ["admin:groups"]}).json()["token"]
    response = hub.api("POST", "/gpuhub/accounts", token=groups_only,
                       json={"users": ["s03"], "reset": True})
    assert response.status_code == 403 and "admin:users" in response.json()["message"]


def test_the_role_survives_a_hub_restart(hub, organizer):
    hub.restart()
    role = hub.api("GET", f"/gpuhub/cohorts/{COHORT}/instructors-role", token=organizer)
    assert role.status_code == 200 and role.json()["scopes"] == INSTRUCTOR_SCOPES
    token = hub.user_token(INSTRUCTOR)
    assert hub.api("GET", "/users/s01", token=token).status_code == 200


def test_remove_deletes_users_groups_role_and_archives_volumes(hub, organizer, files, engine):
    volume = f"{PREFIX}-user-s01"
    assert engine.volumes.get(volume)  # s01's home, from the instructor's start
    result = gpuhub(hub, organizer, "remove", str(files / "moved.yaml"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "deleted user s01" in lines and "deleted user prof-lee" in lines
    assert f"deleted group {COHORT}-red" in lines and f"deleted role {ROLE}" in lines
    users, groups = snapshot(hub)
    assert not set(users) & {*STUDENTS, INSTRUCTOR}
    assert not [g for g in groups if g[0].startswith(COHORT)]
    role = hub.api("GET", f"/gpuhub/cohorts/{COHORT}/instructors-role", token=organizer)
    assert role.status_code == 404
    assert not engine.volumes.list(filters={"name": volume})
    archives = engine.volumes.list(filters={"name": f"{PREFIX}-archive-s01-"})
    assert [v.attrs["Labels"]["gpuhub.archived-from"] for v in archives] == [volume]
    again = gpuhub(hub, organizer, "remove", str(files / "moved.yaml"))
    assert again.stdout == "nothing changed\n"


HACKATHON = """
c.SharedPasswordAuthenticator.manage_groups = True
c.SharedPasswordAuthenticator.allow_all = True  # whoever has a password below
c.SharedPasswordAuthenticator.password_groups = {
    "red-team-correct-horse": ["hack-24", "hack-24-red"],
    "mentors-battery-staple": ["hack-24-instructors"],
}
"""


def test_a_hackathon_with_one_password_per_team(hub, engine, files):
    """GPUHUB_AUTHENTICATOR=shared-password: no passwords from the import, a
    team's password puts whoever logs in into the team's groups."""
    nvml = FakeNVML(hub.workdir / "hack-gpus.state")
    nvml.write(FakeNVML.make_gpus(1))
    hack = Hub(workdir=hub.workdir / "hack", nvml=nvml, extra_config=HACKATHON,
               prefix=other_prefix(), extra_env={"GPUHUB_AUTHENTICATOR": "shared-password"})
    try:
        hack.start()
        (files / "hack.yaml").write_text("cohort: hack-24\ngpu_quota: 1\n"
                                         "teams:\n  red: []\ninstructors: [mentor]\n")
        result = gpuhub(hack, organizer_token(hack), "import", str(files / "hack.yaml"))
        assert result.returncode == 0, result.stderr
        assert "no passwords: this hub's authenticator (SharedPasswordAuthenticator)" \
            in result.stdout
        session = requests.Session()
        session.get(f"{hack.url}/hub/login", timeout=30)
        response = hack.form_post(session, "/hub/login",
                                  {"username": "zoe", "password": "red-team-correct-horse"})
        assert response.status_code == 302, response.text
        assert sorted(hack.api("GET", "/users/zoe").json()["groups"]) == ["hack-24", "hack-24-red"]
        admin_password = (hack.workdir / "state/admin_passwords/shared-password").read_text()
        assert (hack.workdir / "state/admin_passwords/shared-password").stat().st_mode & 0o777 \
            == 0o600
        session = requests.Session()
        session.get(f"{hack.url}/hub/login", timeout=30)
        response = hack.form_post(session, "/hub/login",
                                  {"username": "admin", "password": admin_password.strip()})
        assert response.status_code == 302, response.text
    finally:
        if not hack.proc or hack.proc.poll() is not None:
            print(hack.log_tail(60))
        hack.stop()
