"""The last look at a container before it is created. Pure, no I/O (logs only).

DockerSpawner merges the container from many settings (``volumes``,
``mounts``, ``extra_host_config``, ``extra_create_kwargs['host_config']``,
callables, ``group_overrides``) and sends the result to Docker. Checking
each setting misses the others, so :func:`refusals` reads the final
``create_container`` keyword arguments, as Docker will receive them.

Docker decodes JSON keys case-insensitively: ``Privileged``, ``privileged``
and docker-py's ``privileged=`` all mean the same, so keys are compared
without case and underscores.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tornado import web

DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
NO_NEW_PRIVILEGES = "no-new-privileges:true"
# Namespaces a container must not share with the host (or, for PID/IPC/network,
# with another container: another user's).
HOST_NAMESPACES = ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
CONTAINER_NAMESPACES = ("NetworkMode", "PidMode", "IpcMode")
UNCONFINED = ("seccomp=unconfined", "seccomp:unconfined", "apparmor=unconfined",
              "apparmor:unconfined", "systempaths=unconfined", "label=disable", "label:disable")
ROOT_USERS = ("", "0", "root")

# Which settings feed each part of the create request (for the admin's message).
_HOST = "extra_host_config or extra_create_kwargs['host_config']"
SETTINGS = {
    "Binds": f"volumes, read_only_volumes, {_HOST}",
    "Mounts": f"mounts, {_HOST}",
    "NetworkMode": f"network_name, {_HOST}",
    "User": "container_user or extra_create_kwargs['user']",
}


@dataclass(frozen=True)
class Refusal:
    """One unsafe part of a create request."""

    key: str  # Docker's name for it
    problem: str

    @property
    def settings(self) -> str:
        return SETTINGS.get(self.key, _HOST)

    def __str__(self) -> str:
        return f"{self.key}: {self.problem} (set by {self.settings})"


class AdminError(web.HTTPError):
    """HTTP 500 whose message the spawn page shows as is: only the admin can fix it."""

    def __init__(self, message: str):
        super().__init__(500, "%s", message)
        self.jupyterhub_message = message


class UnsafeSettings(AdminError):
    """The admin's settings would weaken the container; nothing was created."""

    def __init__(self, found: Sequence[Refusal]):
        self.refusals = tuple(found)
        super().__init__(
            "This server was not started: the hub's settings would give it "
            + "; ".join(f"{r.key} ({r.problem})" for r in found)
            + ". Ask the hub's admin to fix the setting named in the hub's log."
        )


def _plain(key: str) -> str:
    return key.replace("_", "").lower()


def _values(mapping: dict | None, key: str) -> list:
    """Every value Docker would read as ``key`` (any case, docker-py's snake_case)."""
    wanted = _plain(key)
    return [value for name, value in (mapping or {}).items() if _plain(str(name)) == wanted]


def _host_config(create_kwargs: dict) -> dict:
    merged: dict = {}
    for host_config in _values(create_kwargs, "HostConfig"):
        merged.update(host_config or {})
    return merged


def exposes_docker_socket(source: str, sockets: Iterable[str] = DOCKER_SOCKETS) -> bool:
    """True when mounting host path ``source`` hands the container a Docker socket:
    the socket itself, a folder above it (``/run``, ``/var``, ``/``), or any
    ``*docker*.sock``. Named volumes (no ``/``) are not host paths."""
    source = str(source)
    if not source.startswith("/"):
        return False
    path = "/" + posixpath.normpath(source).lstrip("/")  # "//run" is "/run" too
    name = posixpath.basename(path)
    if "docker" in name and name.endswith(".sock"):
        return True
    return any(sock == path or path == "/" or sock.startswith(path + "/") for sock in sockets)


def _bind_sources(binds) -> list[str]:
    if isinstance(binds, dict):  # docker-py's {source: {"bind": …}} form
        return [str(source) for source in binds]
    return [str(bind).split(":", 1)[0] for bind in binds or []]


def _mount_sources(mounts) -> list[str]:
    sources = []
    for mount in mounts or []:
        if isinstance(mount, str):  # docker-py accepts "source:target:mode"
            sources.append(mount.split(":", 1)[0])
            continue
        sources += [str(s) for s in _values(mount, "Source")]
        # a "volume" of the local driver with o=bind is a bind mount in disguise
        for options in _values(mount, "VolumeOptions"):
            for driver in _values(options or {}, "DriverConfig"):
                sources += [str(d) for d in _values((driver or {}).get("Options") or {}, "device")]
    return sources


def is_root_user(user) -> bool:
    """True for root by name or uid, and for no user at all (the image's, often root)."""
    return str(user).split(":", 1)[0].strip() in ROOT_USERS


def refusals(create_kwargs: dict, sockets: Iterable[str] = DOCKER_SOCKETS) -> list[Refusal]:
    """What is unsafe in the final ``create_container`` keyword arguments."""
    sockets = tuple(sockets)
    host = _host_config(create_kwargs)
    found = []
    if any(_values(host, "Privileged")):
        found.append(Refusal("Privileged", "a privileged container is root on the host"))
    if any(_values(host, "CapAdd")):
        found.append(Refusal("CapAdd", f"added capabilities {_values(host, 'CapAdd')}"))
    cap_drop = [c for value in _values(host, "CapDrop") for c in value or []]
    if "ALL" not in cap_drop:
        found.append(Refusal("CapDrop", "capabilities are not all dropped"))
    security = [str(o) for value in _values(host, "SecurityOpt") for o in value or []]
    if NO_NEW_PRIVILEGES not in security:
        found.append(Refusal("SecurityOpt", "no-new-privileges is missing"))
    for option in security:
        if option.replace(" ", "") in UNCONFINED:
            found.append(Refusal("SecurityOpt", f"{option} turns a protection off"))
    for key, sources in (
        ("Binds", [s for value in _values(host, "Binds") for s in _bind_sources(value)]),
        ("Mounts", [s for value in _values(host, "Mounts") for s in _mount_sources(value)]),
    ):
        for source in sources:
            if exposes_docker_socket(source, sockets):
                found.append(Refusal(key, f"mounting {source} hands over the Docker socket"))
    if any(_values(host, "VolumesFrom")):
        found.append(Refusal("VolumesFrom", "another container's mounts, unchecked"))
    if any(_values(host, "Devices")):
        found.append(Refusal("Devices", "host devices (GPUs are handed out by the spawner)"))
    for key in HOST_NAMESPACES:
        for mode in _values(host, key):
            mode = str(mode or "")
            if mode == "host" or (key in CONTAINER_NAMESPACES and mode.startswith("container:")):
                found.append(Refusal(key, f"{mode!r} shares a namespace it must not"))
    users = _values(create_kwargs, "User")
    if not users or any(is_root_user(user) for user in users):
        found.append(Refusal("User", f"runs as root ({', '.join(map(repr, users)) or 'image default'})"))
    return found


def enforce(create_kwargs: dict, sockets: Iterable[str], log: logging.Logger, server: str,
            overridden: Iterable[str] = ()) -> None:
    """Raise :class:`UnsafeSettings` when anything is refused, after one log line
    per refusal naming the settings that feed it (and this user's group overrides)."""
    found = refusals(create_kwargs, sockets)
    if not found:
        return
    overridden = sorted(overridden)
    via_groups = f"; this user's group_overrides set {', '.join(overridden)}" if overridden else ""
    for refusal in found:
        log.error("Refused to create %s: %s%s", server, refusal, via_groups)
    raise UnsafeSettings(found)


def sockets_for(docker_host: str | None) -> tuple[str, ...]:
    """The well-known socket paths plus the one ``DOCKER_HOST`` names, if local."""
    if docker_host and docker_host.startswith("unix://"):
        return DOCKER_SOCKETS + (docker_host[len("unix://"):],)
    return DOCKER_SOCKETS
