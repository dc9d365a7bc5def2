"""How a cohort lives in JupyterHub: group names, property keys, the role. No I/O.

One cohort ``ml-101`` with teams ``red`` and ``blue`` and instructors becomes:

- group ``ml-101``: every member (students with or without a team). Its
  properties: the cohort's fair-access settings (``gpu_quota`` …, read by the
  spawner like any group's), :data:`STARTS`/:data:`ENDS` (ISO 8601 UTC) and
  :data:`COHORT` = ``"ml-101"``.
- group ``ml-101-red`` per team: properties :data:`COHORT`, :data:`TEAM` =
  ``"red"`` and :data:`TEAM_VOLUME` (:func:`new_team_volume`, made once when the
  group is made); its members get that team volume at ``~/team``.
- group ``ml-101-instructors``: properties :data:`COHORT` and
  :data:`INSTRUCTORS` = true; granted the role :func:`instructor_role_name`,
  whose scopes :func:`instructor_scopes` are filtered to the cohort's group.

The spawner, the gpu-usage service and the ``gpuhub cohort`` commands all
read these names from here.
"""

from __future__ import annotations

import secrets

COHORT = "gpuhub_cohort"  # property on all of a cohort's groups: the cohort's name
TEAM = "gpuhub_team"  # property on a team's group: the team's name
# property on a team's group: its volume's name, new with each new group, so a
# cohort name used again (next term's ml-101-red) starts with an empty ~/team
TEAM_VOLUME = "gpuhub_team_volume"
INSTRUCTORS = "gpuhub_instructors"  # property on the instructors' group: true
STARTS = "starts"  # property on the cohort's group: ISO 8601, servers may start from then
ENDS = "ends"  # property on the cohort's group: ISO 8601, servers are stopped then
INSTRUCTORS_SUFFIX = "instructors"
USAGE_SCOPE = "custom:gpu-usage:read-all"  # the gpu-usage service's "see everyone" scope


# What an organizer's token needs for `gpuhub cohort import|remove|report`: users and
# groups, and every scope the instructors' role hands out (roles_api.py refuses more).
ORGANIZER_SCOPES = ["admin:users", "admin:groups", "servers", "access:servers",
                    "read:roles:groups", USAGE_SCOPE]


def new_team_volume(group: str) -> str:
    """A team volume's name part for a new team group: the group and 8 random hex digits."""
    return f"{group}-{secrets.token_hex(4)}"


def team_group(cohort: str, team: str) -> str:
    return f"{cohort}-{team}"


def instructors_group(cohort: str) -> str:
    return f"{cohort}-{INSTRUCTORS_SUFFIX}"


def instructor_role_name(cohort: str) -> str:
    return f"gpuhub-instructors-{cohort}"


def instructor_scopes(cohort: str) -> list[str]:
    """What a cohort's instructors may do: see the cohort's users and usage,
    start/stop and enter their servers (help), nothing else."""
    only = f"!group={cohort}"
    return [
        f"list:users{only}", f"read:users{only}", f"read:users:activity{only}",
        f"read:servers{only}", f"servers{only}", f"access:servers{only}",
        f"read:groups{only}", f"list:groups{only}", f"{USAGE_SCOPE}{only}",
    ]
