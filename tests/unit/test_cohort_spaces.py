"""A cohort's window (spawner/cohort_window.py), its team and dataset folders
(spawner/shared_volumes.py), and how GPUDockerSpawner applies both at a spawn."""

import datetime
from types import SimpleNamespace

import pytest

from gpuhub.hub.cohort.names import COHORT, ENDS, STARTS, TEAM, TEAM_VOLUME
from gpuhub.spawner import labels
from gpuhub.spawner.cohort_window import CohortClosed, cohorts_of, open_until
from gpuhub.spawner.group_properties import BadGroupProperty
from gpuhub.spawner.shared_volumes import home_of, owner_of, shared_volumes
from gpuhub.spawner.user_errors import UserMistake
from tests.unit.test_hardening import create_request
from tests.unit.test_spawner_config import make_spawner

UTC = datetime.timezone.utc
DEC_1 = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DEC_19 = datetime.datetime(2026, 12, 19, 18, 0, tzinfo=UTC)
ML_101 = ("The cohort ml-101 runs from 2026-12-01 09:00 UTC to 2026-12-19 18:00 UTC: "
          "servers can be started only then.")


def group(name, **properties):
    return SimpleNamespace(name=name, properties=properties)


def cohort(name="ml-101", starts="2026-12-01T09:00:00Z", ends="2026-12-19T18:00:00Z", **more):
    window = {k: v for k, v in ((STARTS, starts), (ENDS, ends)) if v is not None}
    return group(name, **{COHORT: name, **window, **more})


def test_a_member_starts_only_inside_the_window_and_is_told_the_dates():
    member = [cohort(), group("ml-101-red", **{COHORT: "ml-101", TEAM: "red"})]
    for before_or_after in (DEC_1 - datetime.timedelta(seconds=1), DEC_19):
        with pytest.raises(CohortClosed) as closed:
            open_until(member, before_or_after)
        assert str(closed.value) == ML_101
    assert open_until(member, DEC_1) == DEC_19.timestamp()


def test_users_outside_cohorts_and_groups_without_dates_are_unaffected():
    assert open_until([], DEC_1) is None
    assert open_until([group("staff", gpu_quota=2), group("ml-101-red", **{COHORT: "ml-101", TEAM: "red"})],
                      DEC_1 - datetime.timedelta(days=30)) is None


def test_one_open_cohort_of_several_is_enough_and_the_latest_end_counts():
    later = cohort("dl-201", starts="2026-11-01T00:00:00Z", ends="2027-01-31T00:00:00Z")
    closed = cohort()
    now = datetime.datetime(2026, 11, 20, tzinfo=UTC)
    assert open_until([closed, later], now) == datetime.datetime(2027, 1, 31, tzinfo=UTC).timestamp()
    both_open = datetime.datetime(2026, 12, 5, tzinfo=UTC)
    assert open_until([closed, later], both_open) == datetime.datetime(2027, 1, 31, tzinfo=UTC).timestamp()
    assert open_until([closed, cohort("open-ended", starts="2026-01-01", ends=None)], both_open) is None


def test_half_open_windows_say_what_they_have():
    with pytest.raises(CohortClosed, match=r"^The cohort ml-101 runs from 2026-12-01 09:00 UTC: "):
        open_until([cohort(ends=None)], DEC_1 - datetime.timedelta(hours=1))
    with pytest.raises(CohortClosed, match=r"^The cohort ml-101 runs until 2026-12-19 18:00 UTC: "):
        open_until([cohort(starts=None)], DEC_19)


@pytest.mark.parametrize("key, value", [(STARTS, "next monday"), (ENDS, 20261219), (STARTS, "")])
def test_a_bad_date_is_a_bad_group_property_that_says_the_format(key, value):
    with pytest.raises(BadGroupProperty) as bad:
        cohorts_of([cohort(**{key: value})])
    assert (f"The group 'ml-101' has an invalid property {key} = {value!r}: it must be an ISO 8601 "
            'date and time, e.g. "2026-12-01T09:00:00Z"') in str(bad.value)


def test_an_end_before_the_start_is_refused_and_a_zone_less_date_is_utc():
    with pytest.raises(BadGroupProperty, match="it must be later than starts"):
        cohorts_of([cohort(starts="2026-12-19T18:00:00Z", ends="2026-12-01T09:00:00Z")])
    (read,) = cohorts_of([cohort(starts="2026-12-01T09:00:00", ends="2026-12-19T19:00:00+01:00")])
    assert (read.starts, read.ends) == (DEC_1, DEC_19)


async def test_the_spawner_refuses_a_closed_cohort_with_400_and_labels_an_open_ones_end():
    s = make_spawner(image="img")
    s.user.groups = [cohort(starts="2020-01-01T00:00:00Z", ends="2020-02-01T00:00:00Z")]
    with pytest.raises(UserMistake) as refused:
        await s.apply_group_overrides()
    assert refused.value.status_code == 400
    assert refused.value.jupyterhub_message.startswith("The cohort ml-101 runs from 2020-01-01 00:00 UTC")
    s.user.groups = [cohort(starts="2020-01-01T00:00:00Z", ends="2099-01-01T00:00:00Z")]
    await s.apply_group_overrides()
    created = s._final_create_kwargs(create_request())
    assert created["labels"][labels.ENDS_LABEL] == "4070908800"
    s.user.groups = []  # left the cohort: no end on the next server
    await s.apply_group_overrides()
    assert labels.ENDS_LABEL not in s._final_create_kwargs(create_request())["labels"]


def team(group_name, team_name):
    return group(group_name, **{COHORT: "ml-101", TEAM: team_name})


def test_one_team_at_team_several_at_teams_and_datasets_read_only_for_all():
    def mounts(groups, datasets="gh-datasets"):
        found = shared_volumes(groups=groups, home="/home/jovyan", prefix="gh", hub="hub-1",
                               datasets_volume=datasets, escape=lambda n: n.replace("_", "-5f"))
        return [(v.name, v.mount, v.read_only, v.for_the_user) for v in found]

    assert mounts([cohort(), team("ml-101-red", "red")]) == [
        ("gh-team-ml-101-red", "/home/jovyan/team", False, True),
        ("gh-datasets", "/home/jovyan/datasets", True, False),
    ]
    assert mounts([team("ml-101-red", "red"), team("hack_blue", "blue")], datasets="") == [
        ("gh-team-hack-5fblue", "/home/jovyan/teams/hack_blue", False, True),
        ("gh-team-ml-101-red", "/home/jovyan/teams/ml-101-red", False, True),
    ]
    assert mounts([cohort(), group("staff")], datasets="") == []
    (red, _) = shared_volumes(groups=[team("ml-101-red", "red")], home="/h", prefix="gh", hub="hub-1",
                              datasets_volume="d", escape=str)
    assert red.labels == {labels.HUB_LABEL: "hub-1", "gpuhub.team": "ml-101-red"}


def test_the_spawners_home_follows_its_volumes_then_home_directory():
    """One home for team/dataset folders and the reset: where ``volumes`` mounts the user's volume."""
    assert make_spawner().home == "/home/jovyan"
    assert make_spawner(home_directory="/home/student").home == "/home/student"
    assert make_spawner(volumes={"{prefix}-user-{username}": "/work"}).home == "/work"


def test_home_is_where_the_users_volume_is_mounted():
    assert home_of({"{prefix}-user-{username}": "/home/jovyan"}, "/home/x") == "/home/jovyan"
    named = {"/data": "/data", "{prefix}-{username}": {"bind": "/home/ann", "mode": "rw"}}
    assert home_of(named, "/home/x") == "/home/ann"
    assert home_of({}, "/home/jovyan") == "/home/jovyan"
    assert owner_of("1000:100") == ("1000", "100") and owner_of("1000") == ("1000", None)


def test_a_team_groups_volume_property_names_its_volume():
    """gpuhub cohort import gives each new team group a volume of its own
    (names.TEAM_VOLUME): next term's ml-101-red does not see this term's files."""
    red = group("ml-101-red", **{COHORT: "ml-101", TEAM: "red", TEAM_VOLUME: "ml-101-red-0a1b2c3d"})
    (volume,) = shared_volumes(groups=iter([red]), home="/h", prefix="gh", hub="hub-1",
                               datasets_volume="", escape=lambda name: name)
    assert (volume.name, volume.mount) == ("gh-team-ml-101-red-0a1b2c3d", "/h/team")
    assert volume.labels["gpuhub.team"] == "ml-101-red"


def test_the_spawner_mounts_its_users_team_and_the_datasets_and_only_those():
    s = make_spawner(image="img", prefix="gh")
    s.user.groups = [team("ml-101-red", "red")]
    binds = s.volume_binds
    assert binds["gh-team-ml-2d101-2dred"] == {"bind": "/home/jovyan/team", "mode": "rw"}
    assert binds["gh-datasets"] == {"bind": "/home/jovyan/datasets", "mode": "ro"}
    assert binds["gh-user-ann"] == {"bind": "/home/jovyan", "mode": "rw"}
    s.user.groups = []  # left the team: the next container has no team folder
    assert not any("team" in name for name in s.volume_binds)
    assert "gh-datasets" not in make_spawner(image="img", prefix="gh", datasets_volume="").volume_binds
