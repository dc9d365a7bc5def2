"""A cohort file (YAML, its user list optionally in CSV) read and checked. No I/O:
the caller hands in the YAML's text and a function that reads a CSV it names.

Everything is checked before anything is used: :func:`parse_cohort` returns a
:class:`Cohort`, or raises :class:`CohortFileError` listing every problem
with its file and line (``ml-101.yaml:7: bob is in teams red and blue``).

YAML keys (hub/cohort/README.md): ``cohort`` (required), ``instructors``,
``teams`` ({team: [users]}), ``users`` (members without a team), ``users_csv``
(a CSV file, relative to the YAML: ``username,team,role`` with ``team`` and
``role`` — student or instructor — optional), ``starts``/``ends`` (ISO 8601
with a time zone), and any fair-access group property of
``spawner/group_properties.PROPERTIES`` (``gpu_quota``, ``mem_limit`` …).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace

import yaml

from gpuhub.hub.cohort import names
from gpuhub.spawner.group_properties import PROPERTIES, BadGroupProperty, settings_from_groups

# Cohort and team names become group names, role names (JupyterHub: lowercase,
# start with a letter, end with a letter or digit) and Docker volume names.
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,48}[a-z0-9]$")
NAME_RULE = ("2 to 50 characters: lowercase letters, digits, '-' or '_', starting with a "
             "letter and ending with a letter or digit")
# User names, as the hub keeps them (lowercased): NativeAuthenticator refuses
# ',', ' ' and '/', and keeps at most 128 characters; gpuhub also keeps names
# that are safe in container and volume names.
USER = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")
USER_RULE = ("up to 128 characters: letters, digits, '.', '_', '@' or '-', starting with a "
             "letter or digit (upper case is read as lower case, as the hub does)")
LIST_KEYS = ("instructors", "users")
KEYS = ("cohort", "instructors", "teams", "users", "users_csv", names.STARTS, names.ENDS,
        *PROPERTIES)
CSV_COLUMNS = ("username", "team", "role")
ROLES = ("student", "instructor")


class CohortFileError(ValueError):
    """Every problem of a cohort file, each with its file and line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Cohort:
    """A checked cohort. ``settings``: the fair-access properties as written."""

    name: str
    instructors: list[str] = field(default_factory=list)
    teams: dict[str, list[str]] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)  # members without a team
    settings: dict = field(default_factory=dict)
    starts: str | None = None  # ISO 8601 in UTC
    ends: str | None = None

    @property
    def students(self) -> list[str]:
        """Every member (the cohort group), in file order."""
        return [u for members in self.teams.values() for u in members] + self.users

    def groups(self) -> dict[str, set[str]]:
        """Each of the cohort's groups and its members."""
        found = {self.name: set(self.students), names.instructors_group(self.name): set(self.instructors)}
        for team, members in self.teams.items():
            found[names.team_group(self.name, team)] = set(members)
        return found

    def properties(self) -> dict[str, dict]:
        """The properties gpuhub manages on each group (others are kept)."""
        cohort = {names.COHORT: self.name, **self.settings}
        for key, value in ((names.STARTS, self.starts), (names.ENDS, self.ends)):
            if value:
                cohort[key] = value
        found = {
            self.name: cohort,
            names.instructors_group(self.name): {names.COHORT: self.name, names.INSTRUCTORS: True},
        }
        for team in self.teams:
            found[names.team_group(self.name, team)] = {names.COHORT: self.name, names.TEAM: team}
        return found


class _Reader:
    """Collects problems and people while the file is walked."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []
        self.seen: dict[str, tuple[str, str]] = {}  # user -> (where, what: "team red" …)

    def problem(self, where: str, message: str):
        self.problems.append(f"{where}: {message}")

    def user(self, raw, where: str, what: str) -> str | None:
        """One user name, checked and lowercased; None when refused."""
        if not isinstance(raw, str) or not raw.strip():
            self.problem(where, f"{raw!r} is not a user name: {USER_RULE}")
            return None
        name = raw.strip().lower()
        if not USER.match(name):
            self.problem(where, f"invalid user name {raw!r}: {USER_RULE}")
            return None
        if name in self.seen:
            first_where, first_what = self.seen[name]
            if first_what == what:
                self.problem(where, f"duplicate user {name} (also at {first_where})")
            elif "instructors" in (what, first_what):
                self.problem(where, f"{name} is in {what} and in {first_what} (at {first_where}): "
                             "an instructor is not also a member of the cohort")
            else:
                self.problem(where, f"{name} is in {what} and in {first_what} (at {first_where}): "
                             "a user is in one team of a cohort, or none")
            return None
        self.seen[name] = (where, what)
        return name


def _line(source: str, node) -> str:
    return f"{source}:{node.start_mark.line + 1}"


def _line_number(problem: str) -> int:
    """``a.yaml:7: …`` → 7, to list problems in file order."""
    found = re.match(r"^[^:]*:(\d+):", problem)
    return int(found.group(1)) if found else 0


def _when(reader: _Reader, where: str, key: str, raw) -> datetime | None:
    text = raw if isinstance(raw, str) else ""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        reader.problem(where, f"{key} = {raw!r}: it must be an ISO 8601 time with a time zone, "
                       "e.g. 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00")
        return None
    return value.astimezone(timezone.utc)


def _setting(reader: _Reader, where: str, cohort: str, key: str, value):
    """A fair-access property, checked by the spawner's own rules."""
    from gpuhub.spawner import GPUDockerSpawner  # the traits that check it (loads dockerspawner)

    group = SimpleNamespace(name=cohort or "cohort", properties={key: value})
    try:
        settings_from_groups([group], GPUDockerSpawner.class_traits())
    except BadGroupProperty:
        reader.problem(where, f"{key} = {value!r}: it must be {PROPERTIES[key].allowed}")


def _name_list(reader: _Reader, node, what: str) -> list[str]:
    if not isinstance(node, yaml.SequenceNode):
        reader.problem(_line(reader.source, node), f"{what}: expected a list of user names, "
                       "e.g. [alice, bob]")
        return []
    found = []
    for item in node.value:
        raw = item.value if isinstance(item, yaml.ScalarNode) else None
        name = reader.user(raw, _line(reader.source, item), what)
        if name:
            found.append(name)
    return found


def _read_csv(reader: _Reader, text: str, source: str, cohort: Cohort):
    """``username,team,role`` rows into ``cohort`` (team and role optional)."""
    rows = csv.reader(io.StringIO(text))
    header = [column.strip().lower() for column in next(rows, [])]
    if "username" not in header or any(column not in CSV_COLUMNS for column in header):
        reader.problem(f"{source}:1", f"the header must name the columns username, and "
                       f"optionally team and role (got {','.join(header) or 'nothing'})")
        return
    for row in rows:
        where = f"{source}:{rows.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            reader.problem(where, f"expected {len(header)} columns ({','.join(header)}), got {len(row)}")
            continue
        values = {column: cell.strip() for column, cell in zip(header, row)}
        role = values.get("role", "").lower() or "student"
        team = values.get("team", "")
        if role not in ROLES:
            reader.problem(where, f"role {values['role']!r}: it must be student or instructor")
            continue
        if role == "instructor" and team:
            reader.problem(where, "an instructor has no team: leave the team empty")
            continue
        if team and not NAME.match(team):
            reader.problem(where, f"invalid team name {team!r}: {NAME_RULE}")
            continue
        what = "instructors" if role == "instructor" else (f"team {team}" if team else "users")
        name = reader.user(values["username"], where, what)
        if name is None:
            continue
        if role == "instructor":
            cohort.instructors.append(name)
        elif team:
            cohort.teams.setdefault(team, []).append(name)
        else:
            cohort.users.append(name)


def parse_cohort(text: str, source: str = "cohort.yaml",
                 read_csv: Callable[[str], str] | None = None) -> Cohort:
    """The cohort described by ``text``; ``read_csv(name)`` returns the text of a
    CSV file the YAML names in ``users_csv``. Raises :class:`CohortFileError`."""
    reader = _Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"{source}:{mark.line + 1}" if mark else source
        raise CohortFileError([f"{line}: not valid YAML: {getattr(error, 'problem', error)}"]) from None
    if not isinstance(root, yaml.MappingNode):
        raise CohortFileError([f"{source}:1: a cohort file is a mapping that starts with "
                               "'cohort: NAME'"])
    constructor = yaml.SafeLoader("")
    cohort = Cohort(name="")
    keys: dict[str, tuple[str, yaml.Node]] = {}
    for key_node, value_node in root.value:
        where = _line(source, key_node)
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
        if key in keys:
            reader.problem(where, f"{key} is given twice (also at {keys[key][0]})")
        elif key not in KEYS:
            reader.problem(where, f"unknown key {key!r}: the keys are {', '.join(KEYS)}")
        else:
            keys[key] = (where, value_node)

    if "cohort" not in keys:
        reader.problem(f"{source}:1", "the cohort's name is missing: add 'cohort: NAME'")
    else:
        where, node = keys["cohort"]
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not NAME.match(value):
            reader.problem(where, f"invalid cohort name {value!r}: {NAME_RULE}")
        else:
            cohort.name = value
    if "instructors" in keys:
        cohort.instructors = _name_list(reader, keys["instructors"][1], "instructors")
    if "teams" in keys:
        where, node = keys["teams"]
        if not isinstance(node, yaml.MappingNode):
            reader.problem(where, "teams: expected a mapping of team names to lists of users, "
                           "e.g. red: [alice, bob]")
        else:
            for team_node, members in node.value:
                team = team_node.value if isinstance(team_node, yaml.ScalarNode) else None
                if not isinstance(team, str) or not NAME.match(team) \
                        or team == names.INSTRUCTORS_SUFFIX:
                    reader.problem(_line(source, team_node),
                                   f"invalid team name {team!r}: {NAME_RULE}, "
                                   f"not '{names.INSTRUCTORS_SUFFIX}'")
                    continue
                if team in cohort.teams:
                    reader.problem(_line(source, team_node), f"team {team} is given twice")
                    continue
                cohort.teams[team] = _name_list(reader, members, f"team {team}")
    if "users" in keys:
        cohort.users = _name_list(reader, keys["users"][1], "users")
    if "users_csv" in keys:
        where, node = keys["users_csv"]
        if read_csv is None or not isinstance(node, yaml.ScalarNode):
            reader.problem(where, "users_csv: expected the name of a CSV file next to this one")
        else:
            try:
                csv_text = read_csv(node.value)
            except OSError as error:
                reader.problem(where, f"cannot read users_csv {node.value!r}: {error.strerror or error}")
            else:
                _read_csv(reader, csv_text, node.value, cohort)

    times = {}
    for key in (names.STARTS, names.ENDS):
        if key in keys:
            where, node = keys[key]
            times[key] = _when(reader, where, key, node.value if isinstance(node, yaml.ScalarNode) else node)
    if times.get(names.STARTS) and times.get(names.ENDS) and times[names.ENDS] <= times[names.STARTS]:
        reader.problem(keys[names.ENDS][0], f"ends ({keys[names.ENDS][1].value}) must be after starts "
                       f"({keys[names.STARTS][1].value})")
    cohort.starts = times[names.STARTS].isoformat() if times.get(names.STARTS) else None
    cohort.ends = times[names.ENDS].isoformat() if times.get(names.ENDS) else None

    for key in PROPERTIES:
        if key in keys:
            where, node = keys[key]
            value = constructor.construct_object(node, deep=True)
            _setting(reader, where, cohort.name, key, value)
            cohort.settings[key] = value

    if not cohort.students and not cohort.instructors and not reader.problems:
        reader.problem(f"{source}:1", "the cohort has nobody: add teams, users or instructors")
    if reader.problems:
        raise CohortFileError(sorted(
            reader.problems, key=lambda p: (not p.startswith(source + ":"), _line_number(p))))
    return cohort
