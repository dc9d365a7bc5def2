"""A cohort into the hub and out again, through its REST API (HubClient).

:func:`read_state` asks the hub what exists; :func:`import_plan` and
:func:`remove_plan` (no I/O) say what must change, as :class:`Change` steps
with the plain line each prints; :func:`apply` makes them. Properties the
file does not manage (a ``description``) are kept.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from gpuhub.hub.cohort import names
from gpuhub.hub.cohort.cohort_file import Cohort
from gpuhub.hub.hub_client import HubAPIError, HubClient
from gpuhub.spawner.group_properties import PROPERTIES

PAGE = 200  # JupyterHub's largest page (api_page_max_limit's default)
EXTENSION = "/gpuhub"  # hub/cohort/roles_api.py's endpoints, below the API root


def quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def role_path(cohort: str) -> str:
    return f"{EXTENSION}/cohorts/{quote(cohort)}/instructors-role"


@dataclass
class HubState:
    """What the hub has of a cohort: its groups (members, properties), which
    users exist, the groups each user is in, and the instructors' role."""

    groups: dict[str, dict] = field(default_factory=dict)  # name -> {"users", "properties"}
    users: dict[str, list[str]] = field(default_factory=dict)  # existing user -> their groups
    role: dict | None = None  # {"name", "scopes", "groups"} or None


@dataclass
class Change:
    line: str  # what is printed: "added bob to ml-101-red"
    method: str
    path: str
    body: object = None


def _all(client: HubClient, path: str) -> list:
    """Every item of a paged list (``GET /groups``)."""
    items, offset = [], 0
    while True:
        page = client.get(f"{path}?offset={offset}&limit={PAGE}") or []
        items.extend(page)
        if len(page) < PAGE:
            return items
        offset += PAGE


def read_state(client: HubClient, cohort: Cohort) -> HubState:
    """The hub's groups of this cohort (by name, or by their ``gpuhub_cohort``
    property: a team dropped from the file), the users the file names or the
    groups hold, and the role."""
    state = HubState()
    for group in _all(client, "/groups"):
        props = group.get("properties") or {}
        if group["name"] in cohort.groups() or props.get(names.COHORT) == cohort.name:
            state.groups[group["name"]] = {"users": sorted(group.get("users") or []),
                                           "properties": props}
    people = set(cohort.students) | set(cohort.instructors)
    people |= {user for group in state.groups.values() for user in group["users"]}
    for name in sorted(people):
        try:
            state.users[name] = client.get(f"/users/{quote(name)}").get("groups") or []
        except HubAPIError as error:
            if error.status != 404:
                raise
    try:
        state.role = client.get(role_path(cohort.name))
    except HubAPIError as error:
        if error.status != 404:
            raise
    return state


def _shown(value) -> str:
    return value if isinstance(value, str) else repr(value).replace("True", "true")


def import_plan(cohort: Cohort, state: HubState) -> list[Change]:
    """What makes the hub hold ``cohort`` exactly: users, groups, members,
    properties, the role. Empty when it already does."""
    changes: list[Change] = []
    wanted = cohort.groups()
    people = [*cohort.students, *cohort.instructors]
    new_users = [name for name in people if name not in state.users]
    for name in new_users:
        changes.append(Change(f"created user {name}", "POST", f"/users/{quote(name)}", {}))
    for group in wanted:
        if group not in state.groups:
            changes.append(Change(f"created group {group}", "POST", f"/groups/{quote(group)}", {}))
    managed = {names.COHORT, names.TEAM, names.TEAM_VOLUME, names.INSTRUCTORS, names.STARTS,
               names.ENDS, *PROPERTIES}
    for group, desired in cohort.properties().items():
        current = state.groups.get(group, {}).get("properties", {})
        if names.TEAM in desired:  # a team keeps its volume; a new team group gets a new one
            desired = {**desired, names.TEAM_VOLUME: current.get(names.TEAM_VOLUME)
                       or names.new_team_volume(group)}
        merged = {k: v for k, v in current.items() if k not in managed} | desired
        lines = [f"set {group} {key} = {_shown(value)}" for key, value in desired.items()
                 if current.get(key, object()) != value]
        lines += [f"unset {group} {key}" for key in current if key in managed and key not in desired]
        if lines:
            changes.append(Change("\n".join(lines), "PUT", f"/groups/{quote(group)}/properties",
                                  merged))
    for group, members in wanted.items():
        current = set(state.groups.get(group, {}).get("users", []))
        # the REST API takes a list; one line per person reads better than one per call
        added, removed = sorted(members - current), sorted(current - members)
        if added:
            changes.append(Change("\n".join(f"added {u} to {group}" for u in added), "POST",
                                  f"/groups/{quote(group)}/users", {"users": added}))
        if removed:
            changes.append(Change("\n".join(f"removed {u} from {group}" for u in removed),
                                  "DELETE", f"/groups/{quote(group)}/users", {"users": removed}))
    for group in sorted(set(state.groups) - set(wanted)):  # a team the file no longer has
        changes.append(Change(f"deleted group {group}", "DELETE", f"/groups/{quote(group)}"))
    role = names.instructor_role_name(cohort.name)
    instructors = names.instructors_group(cohort.name)
    if not state.role or sorted(state.role.get("scopes", [])) != sorted(
            names.instructor_scopes(cohort.name)) or instructors not in state.role.get("groups", []):
        changes.append(Change(f"{'updated' if state.role else 'created'} role {role} "
                              f"for group {instructors}", "PUT", role_path(cohort.name), {}))
    return changes


def remove_plan(cohort: Cohort, state: HubState) -> list[Change]:
    """Undo an import: the cohort's users (kept, with a line that says so, when
    they are also in a group of another cohort or outside cohorts), its groups,
    the role. A deleted user's volumes are archived by the hub's spawner."""
    changes: list[Change] = []
    ours = set(state.groups) | set(cohort.groups())
    people = sorted({*cohort.students, *cohort.instructors} & set(state.users))
    for name in people:
        elsewhere = sorted(set(state.users[name]) - ours)
        if elsewhere:
            changes.append(Change(f"kept user {name} (also in {', '.join(elsewhere)})", "", ""))
        else:
            changes.append(Change(f"deleted user {name}", "DELETE", f"/users/{quote(name)}"))
    for group in sorted(state.groups):
        changes.append(Change(f"deleted group {group}", "DELETE", f"/groups/{quote(group)}"))
    if state.role:
        changes.append(Change(f"deleted role {state.role['name']}", "DELETE",
                              role_path(cohort.name)))
    return changes


def apply(client: HubClient, changes: list[Change], say: Callable[[str], None]) -> None:
    """Make each change in order, saying its line once done."""
    for change in changes:
        if change.method:
            client.request(change.method, change.path, change.body)
        say(change.line)


def created_users(changes: list[Change]) -> list[str]:
    prefix = "created user "
    return [c.line[len(prefix):] for c in changes if c.line.startswith(prefix)]
