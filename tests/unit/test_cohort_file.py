"""The cohort file (hub/cohort/cohort_file.py) and the import/remove plans
(hub/cohort/importer.py): every kind of bad row with its line, the CSV, and a
good file's plan against a hub's state."""

import re
import textwrap

import pytest

from gpuhub.hub.cohort import names
from gpuhub.hub.cohort.cli import write_passwords
from gpuhub.hub.cohort.cohort_file import CohortFileError, parse_cohort
from gpuhub.hub.cohort.importer import HubState, import_plan, remove_plan

GOOD = textwrap.dedent("""\
    cohort: ml-101
    gpu_quota: 1            # group property
    starts: 2026-12-01T09:00:00Z
    ends: 2026-12-19T18:00:00+01:00
    instructors: [prof-lee]
    teams:
      red: [alice, Bob]
      blue: [carol]
    users: [dave]
    """)


def problems(text, csv=None) -> list[str]:
    with pytest.raises(CohortFileError) as error:
        parse_cohort(text, "c.yaml", read_csv=(lambda name: csv) if csv is not None else None)
    return error.value.problems


def test_a_good_file():
    cohort = parse_cohort(GOOD, "c.yaml")
    assert (cohort.name, cohort.instructors, cohort.teams, cohort.users) == (
        "ml-101", ["prof-lee"], {"red": ["alice", "bob"], "blue": ["carol"]}, ["dave"])
    assert cohort.properties() == {
        "ml-101": {"gpuhub_cohort": "ml-101", "gpu_quota": 1,
                   "starts": "2026-12-01T09:00:00+00:00", "ends": "2026-12-19T17:00:00+00:00"},
        "ml-101-instructors": {"gpuhub_cohort": "ml-101", "gpuhub_instructors": True},
        "ml-101-red": {"gpuhub_cohort": "ml-101", "gpuhub_team": "red"},
        "ml-101-blue": {"gpuhub_cohort": "ml-101", "gpuhub_team": "blue"},
    }


def test_every_bad_row_is_named_with_its_line():
    text = textwrap.dedent("""\
        cohort: ml-101
        gpu_quota: -1
        mem_limit: lots
        gpu_models: 3
        teams:
          red: [alice, alice]
          blue:
            - bob
            - Alice
            - "x/y"
          instructors: [eve]
        users: [prof-lee, ""]
        instructors: [prof-lee]
        colour: red
        cohort: again
        """)
    assert problems(text) == [
        "c.yaml:2: gpu_quota = -1: it must be a whole number of GPUs, 0 or more, e.g. 2",
        "c.yaml:3: mem_limit = 'lots': it must be a size with a suffix K, M, G or T, e.g. \"32G\"",
        "c.yaml:4: gpu_models = 3: it must be a list of GPU models such as [\"A100\", \"H100\"] "
        "or \"A100, H100\"; [] or \"\" allows every model",
        "c.yaml:6: duplicate user alice (also at c.yaml:6)",
        "c.yaml:9: alice is in team blue and in team red (at c.yaml:6): a user is in one team "
        "of a cohort, or none",
        "c.yaml:10: invalid user name 'x/y': up to 128 characters: letters, digits, '.', '_', "
        "'@' or '-', starting with a letter or digit (upper case is read as lower case, as the "
        "hub does)",
        "c.yaml:11: invalid team name 'instructors': 2 to 50 characters: lowercase letters, "
        "digits, '-' or '_', starting with a letter and ending with a letter or digit, "
        "not 'instructors'",
        "c.yaml:12: prof-lee is in users and in instructors (at c.yaml:13): an instructor is "
        "not also a member of the cohort",
        "c.yaml:12: '' is not a user name: up to 128 characters: letters, digits, '.', '_', '@' "
        "or '-', starting with a letter or digit (upper case is read as lower case, as the hub "
        "does)",
        "c.yaml:14: unknown key 'colour': the keys are cohort, instructors, teams, users, "
        "users_csv, starts, ends, gpu_quota, default_gpus, mem_limit, cpu_limit, gpu_share, "
        "gpu_models, gpu_lease, gpu_idle_timeout, queue_priority",
        "c.yaml:15: cohort is given twice (also at c.yaml:1)",
    ]


@pytest.mark.parametrize("starts, ends, expected", [
    ("2026-12-01T09:00:00", "2026-12-19T18:00:00Z", "c.yaml:2: starts = '2026-12-01T09:00:00': "
     "it must be an ISO 8601 time with a time zone"),
    ("2026-12-01T09:00:00Z", "19 Dec", "c.yaml:3: ends = '19 Dec': it must be an ISO 8601"),
    ("2026-12-01T09:00:00Z", "2026-12-01T10:00:00+01:00",
     "c.yaml:3: ends (2026-12-01T10:00:00+01:00) must be after starts (2026-12-01T09:00:00Z)"),
])
def test_bad_starts_and_ends(starts, ends, expected):
    found = problems(f"cohort: ml-101\nstarts: {starts}\nends: {ends}\nusers: [ann]\n")
    assert len(found) == 1 and found[0].startswith(expected), found


@pytest.mark.parametrize("text, expected", [
    ("cohort: ML 101\nusers: [ann]\n", "c.yaml:1: invalid cohort name 'ML 101'"),
    ("users: [ann]\n", "c.yaml:1: the cohort's name is missing"),
    ("cohort: ml-101\n", "c.yaml:1: the cohort has nobody"),
    ("cohort: ml-101\nteams: [a, b]\n", "c.yaml:2: teams: expected a mapping"),
    ("cohort: ml-101\nusers: ann\n", "c.yaml:2: users: expected a list of user names"),
    ("- a\n- b\n", "c.yaml:1: a cohort file is a mapping"),
    ("cohort: ml-101\nusers: [ann\n", "c.yaml:3: not valid YAML"),
])
def test_bad_shapes(text, expected):
    found = problems(text)
    assert found[0].startswith(expected), found


def test_users_from_a_csv_with_its_lines():
    csv = "username,team,role\nann,red,\nBen,,\nprof-kim,,instructor\n"
    cohort = parse_cohort("cohort: ml-101\nteams:\n  red: [zoe]\nusers_csv: people.csv\n",
                          "c.yaml", read_csv=lambda name: {"people.csv": csv}[name])
    assert (cohort.teams, cohort.users, cohort.instructors) == (
        {"red": ["zoe", "ann"]}, ["ben"], ["prof-kim"])

    bad = ("username,team,role\nann,red,\nann,blue,\n\nbo b,,\ncy,red\ndi,,teacher\n"
           "eve,red,instructor\nzoe,,\n")
    assert problems("cohort: ml-101\nteams:\n  red: [zoe]\nusers_csv: p.csv\n", bad) == [
        "p.csv:3: ann is in team blue and in team red (at p.csv:2): a user is in one team of "
        "a cohort, or none",
        "p.csv:5: invalid user name 'bo b': up to 128 characters: letters, digits, '.', '_', "
        "'@' or '-', starting with a letter or digit (upper case is read as lower case, as the "
        "hub does)",
        "p.csv:6: expected 3 columns (username,team,role), got 2",
        "p.csv:7: role 'teacher': it must be student or instructor",
        "p.csv:8: an instructor has no team: leave the team empty",
        "p.csv:9: zoe is in users and in team red (at c.yaml:3): a user is in one team of a "
        "cohort, or none",
    ]
    assert problems("cohort: ml-101\nusers_csv: p.csv\n", "name,group\nann,red\n") == [
        "p.csv:1: the header must name the columns username, and optionally team and role "
        "(got name,group)"]


def test_a_csv_that_cannot_be_read():
    def missing(name):
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(CohortFileError) as error:
        parse_cohort("cohort: ml-101\nusers_csv: gone.csv\n", "c.yaml", read_csv=missing)
    assert error.value.problems == [
        "c.yaml:2: cannot read users_csv 'gone.csv': No such file or directory"]


TEAM_VOLUME = re.compile(r"(set (ml-101-\w+) gpuhub_team_volume = )\2-[0-9a-f]{8}$")


def lines(changes) -> list[str]:
    """The plan's lines; a new team volume's random part shown as ``…``."""
    return [TEAM_VOLUME.sub(r"\1\2-…", line)
            for change in changes for line in change.line.splitlines()]


def test_the_plan_on_an_empty_hub_then_on_a_hub_that_has_it():
    cohort = parse_cohort(GOOD, "c.yaml")
    plan = import_plan(cohort, HubState())
    assert lines(plan) == [
        "created user alice", "created user bob", "created user carol", "created user dave",
        "created user prof-lee",
        "created group ml-101", "created group ml-101-instructors", "created group ml-101-red",
        "created group ml-101-blue",
        "set ml-101 gpuhub_cohort = ml-101", "set ml-101 gpu_quota = 1",
        "set ml-101 starts = 2026-12-01T09:00:00+00:00",
        "set ml-101 ends = 2026-12-19T17:00:00+00:00",
        "set ml-101-instructors gpuhub_cohort = ml-101",
        "set ml-101-instructors gpuhub_instructors = true",
        "set ml-101-red gpuhub_cohort = ml-101", "set ml-101-red gpuhub_team = red",
        "set ml-101-red gpuhub_team_volume = ml-101-red-…",
        "set ml-101-blue gpuhub_cohort = ml-101", "set ml-101-blue gpuhub_team = blue",
        "set ml-101-blue gpuhub_team_volume = ml-101-blue-…",
        "added alice to ml-101", "added bob to ml-101", "added carol to ml-101",
        "added dave to ml-101", "added prof-lee to ml-101-instructors",
        "added alice to ml-101-red", "added bob to ml-101-red", "added carol to ml-101-blue",
        "created role gpuhub-instructors-ml-101 for group ml-101-instructors",
    ]
    members = {change.path: change.body for change in plan if change.path.endswith("/users")}
    assert members["/groups/ml-101-red/users"] == {"users": ["alice", "bob"]}

    # the hub as the import left it, plus a description, an old setting and a
    # team the file dropped; carol moved from blue to red
    made = {change.path: change.body for change in plan if change.path.endswith("/properties")}
    assert made["/groups/ml-101-red/properties"]["gpuhub_team_volume"] != \
        made["/groups/ml-101-blue/properties"]["gpuhub_team_volume"]
    state = HubState(
        groups={
            name: {"users": sorted(members), "properties": made[f"/groups/{name}/properties"]}
            for name, members in cohort.groups().items()
        },
        users={name: [] for name in ["alice", "bob", "carol", "dave", "prof-lee"]},
        role={"name": "gpuhub-instructors-ml-101", "groups": ["ml-101-instructors"],
              "scopes": names.instructor_scopes("ml-101")},
    )
    assert import_plan(cohort, state) == []
    state.groups["ml-101"]["properties"].update(description="Autumn", gpu_share=2)
    state.groups["ml-101-green"] = {"users": ["dave"], "properties": {
        "gpuhub_cohort": "ml-101", "gpuhub_team": "green"}}
    moved = parse_cohort(GOOD.replace("red: [alice, Bob]", "red: [alice, Bob, carol]")
                         .replace("blue: [carol]", "blue: []"), "c.yaml")
    plan = import_plan(moved, state)
    assert lines(plan) == ["unset ml-101 gpu_share", "added carol to ml-101-red",
                           "removed carol from ml-101-blue", "deleted group ml-101-green"]
    assert plan[0].body == {**cohort.properties()["ml-101"], "description": "Autumn"}


def test_the_remove_plan_keeps_users_of_other_groups():
    cohort = parse_cohort(GOOD, "c.yaml")
    state = HubState(
        groups={"ml-101": {"users": ["alice", "bob"], "properties": {}},
                "ml-101-instructors": {"users": ["prof-lee"], "properties": {}}},
        users={"alice": ["ml-101"], "bob": ["ml-101"], "prof-lee": ["ml-101-instructors", "ml-102"]},
        role={"name": "gpuhub-instructors-ml-101"},
    )
    assert lines(remove_plan(cohort, state)) == [
        "deleted user alice", "deleted user bob", "kept user prof-lee (also in ml-102)",
        "deleted group ml-101", "deleted group ml-101-instructors",
        "deleted role gpuhub-instructors-ml-101",
    ]
    assert remove_plan(cohort, HubState()) == []


def test_the_passwords_file_is_new_and_private_from_its_creation(tmp_path):
    path = tmp_path / "passwords.csv"
    write_passwords(str(path), {"bob": "b-pass", "alice": "a-pass"})
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "username,password\nalice,a-pass\nbob,b-pass\n"
    with pytest.raises(FileExistsError):
        write_passwords(str(path), {"eve": "e"})
    assert "eve" not in path.read_text()
