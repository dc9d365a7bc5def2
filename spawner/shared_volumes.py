"""Team and dataset folders: which shared volumes a server mounts, where. No I/O.

- **Team**: a member of a team group (property ``gpuhub_team``,
  ``hub/cohort/names.py``) gets the volume ``{prefix}-team-{v}``, ``v`` its
  ``gpuhub_team_volume`` property or else the group's name (escaped as user
  names are), read-write at ``~/team``; a member
  of several teams gets each at ``~/teams/<group>`` instead, so no team's
  folder moves when another team is added. Read from the groups at every
  start: a team change takes effect at the next start.
- **Datasets**: ``datasets_volume`` (filled by ``gpuhub datasets add``),
  read-only at ``~/datasets`` for every server.

``~`` is the mount point of the user's home volume (the named volume in
``volumes`` whose name has the user's name, e.g. ``/home/jovyan``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gpuhub.hub.cohort.names import TEAM, TEAM_VOLUME

from . import labels
from .user_volumes import per_user_templates

TEAM_LABEL = "gpuhub.team"  # on a team volume: the team's group
DATASETS_LABEL = "gpuhub.datasets"  # on the datasets volume: "1"
DATASETS_VOLUME = "{prefix}-datasets"  # datasets_volume's default
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SharedVolume:
    name: str  # the Docker volume
    mount: str  # where the server sees it
    read_only: bool
    labels: dict = field(default_factory=dict, compare=False)  # what a new volume is created with
    for_the_user: bool = False  # a new one is made the notebook user's (team folders)

    def bind(self) -> dict:
        """docker-py's ``{"bind": …, "mode": …}`` (DockerSpawner's ``volume_binds`` values)."""
        return {"bind": self.mount, "mode": "ro" if self.read_only else "rw"}


def home_of(volumes: Mapping[str, object], default: str) -> str:
    """Where the user's home volume is mounted (``volumes``: DockerSpawner's trait);
    ``default`` when it names none."""
    for template in per_user_templates(volumes):
        target = volumes[template]
        return target["bind"] if isinstance(target, dict) else str(target)
    return default


def team_groups(groups: Iterable) -> list[str]:
    """Names of the team groups among ``groups`` (objects with ``name``, ``properties``)."""
    return sorted(g.name for g in groups if TEAM in (getattr(g, "properties", None) or {}))


def shared_volumes(
    *, groups: Iterable, home: str, prefix: str, hub: str, datasets_volume: str,
    escape: Callable[[str], str],
) -> list[SharedVolume]:
    """The team volumes of the user's ``groups`` and the datasets volume ("": none).
    ``escape`` makes a group name safe for a volume name (the spawner's ``escape``)."""
    groups = list(groups)
    teams = team_groups(groups)
    volume_of = {g.name: (getattr(g, "properties", None) or {}).get(TEAM_VOLUME) or g.name for g in groups}
    found = []
    for group in teams:
        folder = group if PLAIN_NAME.match(group) else escape(group)
        mount = posixpath.join(home, "team") if len(teams) == 1 else posixpath.join(home, "teams", folder)
        found.append(SharedVolume(f"{prefix}-team-{escape(volume_of[group])}", mount, read_only=False,
                                  labels={labels.HUB_LABEL: hub, TEAM_LABEL: group}, for_the_user=True))
    if datasets_volume:
        found.append(SharedVolume(datasets_volume, posixpath.join(home, "datasets"), read_only=True,
                                  labels=datasets_labels(hub)))
    return found


def datasets_labels(hub: str) -> dict:
    """What the datasets volume is created with, by the spawner or ``gpuhub datasets``."""
    return {labels.HUB_LABEL: hub, DATASETS_LABEL: "1"}


def owner_of(container_user: str) -> tuple[str, str | None]:
    """``"1000:100"`` → ("1000", "100"); ``"1000"`` → ("1000", None): the image's group for it."""
    uid, _, gid = container_user.partition(":")
    return uid, gid or None
