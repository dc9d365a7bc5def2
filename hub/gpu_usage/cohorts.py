"""Cohorts as the hub's groups say (hub/cohort/names.py), who may see their
report, and the GPUs each group holds at one sample. Pure, no I/O.

A cohort ``ml-101`` is the group named ``ml-101`` whose property
``gpuhub_cohort`` is ``"ml-101"``; its teams are the groups with the same
``gpuhub_cohort`` and a ``gpuhub_team`` property (``ml-101-red``: team
``red``). The instructors' group is not a team.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gpuhub.hub.cohort import names

from . import READ_ALL_SCOPE
from .tracker import Server


@dataclass(frozen=True)
class Cohort:
    name: str
    members: tuple[str, ...]  # the cohort group's users and every team's, sorted
    teams: dict[str, tuple[str, ...]] = field(default_factory=dict)  # team -> members
    team_groups: dict[str, str] = field(default_factory=dict)  # team -> its group's name

    @property
    def without_team(self) -> tuple[str, ...]:
        in_teams = {user for members in self.teams.values() for user in members}
        return tuple(user for user in self.members if user not in in_teams)


def cohorts_from_groups(groups: Iterable[Mapping]) -> dict[str, Cohort]:
    """Cohorts from the hub's group models (``GET /hub/api/groups``: name, users, properties)."""
    groups = list(groups)
    cohort_groups = {}
    teams: dict[str, dict[str, tuple[str, set[str]]]] = {}  # cohort -> team -> (group, users)
    for group in groups:
        properties = group.get("properties") or {}
        cohort = properties.get(names.COHORT)
        if not isinstance(cohort, str) or properties.get(names.INSTRUCTORS):
            continue
        team = properties.get(names.TEAM)
        if isinstance(team, str) and team:
            _group, users = teams.setdefault(cohort, {}).setdefault(team, (group["name"], set()))
            users.update(group.get("users") or ())
        elif group["name"] == cohort:
            cohort_groups[cohort] = set(group.get("users") or ())
    cohorts = {}
    for cohort, users in cohort_groups.items():
        cohort_teams = teams.get(cohort, {})
        members = set(users).union(*(team_users for _group, team_users in cohort_teams.values()))
        cohorts[cohort] = Cohort(
            name=cohort,
            members=tuple(sorted(members)),
            teams={team: tuple(sorted(team_users)) for team, (_g, team_users) in sorted(cohort_teams.items())},
            team_groups={team: group for team, (group, _u) in cohort_teams.items()},
        )
    return cohorts


def group_members(cohorts: Mapping[str, Cohort]) -> dict[str, frozenset[str]]:
    """Group name -> members, for every cohort and team group (the groups whose peak counts)."""
    members = {}
    for cohort in cohorts.values():
        members[cohort.name] = frozenset(cohort.members)
        for team, users in cohort.teams.items():
            members[cohort.team_groups[team]] = frozenset(users)
    return members


def filtered_scope(cohort: str) -> str:
    """The scope that shows one cohort's report (its instructors hold it)."""
    return f"{READ_ALL_SCOPE}!group={cohort}"


def may_read_cohort(scopes: Iterable[str], cohort: str) -> bool:
    """Holders of the read-all scope see every cohort; its ``!group=<cohort>``
    form (JupyterHub's filter, kept on the token the service gets) shows that one."""
    scopes = set(scopes)
    return READ_ALL_SCOPE in scopes or filtered_scope(cohort) in scopes


def readable_cohorts(scopes: Iterable[str], cohorts: Iterable[str]) -> list[str]:
    scopes = set(scopes)
    return sorted(c for c in cohorts if may_read_cohort(scopes, c))


def may_read_some_cohort(scopes: Iterable[str]) -> bool:
    prefix = f"{READ_ALL_SCOPE}!group="
    return any(s == READ_ALL_SCOPE or s.startswith(prefix) for s in scopes)


def gpus_held(servers: Iterable[Server], members: Mapping[str, frozenset[str]]) -> dict[tuple[str, str], int]:
    """GPUs held at one sample: ``("user", name)`` per user holding any, and
    ``("group", name)`` per group with members holding any. Distinct devices:
    two members sharing one GPU hold one GPU between them."""
    by_user: dict[str, set[str]] = {}
    for server in servers:
        if server.gpus:
            by_user.setdefault(server.user, set()).update(server.gpus)
    held = {("user", user): len(uuids) for user, uuids in by_user.items()}
    for group, users in members.items():
        uuids = set().union(*(by_user.get(user, ()) for user in users))
        if uuids:
            held[("group", group)] = len(uuids)
    return held


def raised_peaks(peaks: Mapping[tuple[str, str], tuple[int, float]],
                 held: Mapping[tuple[str, str], int], now: float) -> dict[tuple[str, str], tuple[int, float]]:
    """The peaks ``held`` beats: key -> (GPUs, when)."""
    return {key: (count, now) for key, count in held.items() if count > peaks.get(key, (0, 0.0))[0]}
