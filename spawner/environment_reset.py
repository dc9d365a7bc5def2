"""Reset my environment: the folders in a user's home that break a server
(packages installed with ``pip install --user``, Jupyter and IPython
settings, caches, conda environments) moved aside into ``~/.reset-<UTC time>/``
before the server's next container is created. Nothing is deleted.

The move runs in a short-lived container from the server's image with only
the home volume, as the notebook user (the folders are theirs): no
capabilities, no new privileges, no network, removed afterwards (the pattern
of ``user_volumes.py``). It moves all the folders or none: when one cannot
be moved, those already moved go back and the error says which and why.

:data:`ENVIRONMENT_DIRECTORIES`, :func:`reset_folder`, :func:`home_volume`
and :func:`helper_request` are pure (no I/O); :func:`move_aside` and
:func:`carry_out` talk to Docker, through the spawner's Docker threads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime

from . import helper_container

Docker = helper_container.Docker

# What moves, and why each: all are made by tools, none by the user's own
# work, and the server starts without any of them (the image has the defaults).
ENVIRONMENT_DIRECTORIES: dict[str, str] = {
    ".local": "packages from pip install --user (they shadow the image's, e.g. torch), "
              "Jupyter kernels and extensions under .local/share/jupyter",
    ".jupyter": "Jupyter server and JupyterLab settings, workspaces",
    ".ipython": "IPython profiles and startup scripts run by every kernel",
    ".config": "other tools' settings (pip.conf, matplotlib, …)",
    ".cache": "downloads and build caches (pip, Hugging Face, torch hub)",
    ".conda": "conda and mamba environments, their package cache",
    ".condarc": "conda's settings (channels, where environments live)",
}
RESET_PREFIX = ".reset-"
STAMP = re.compile(r"^\d{8}T\d{6}Z$")
MOVE_TIMEOUT = 300  # seconds: renames within one volume, fast whatever the size
# exit status of the move script when nothing could be moved and all was put back
FAILED = 3

# $1: the reset folder; the rest: the names to move. Renames within the volume
# (no copy). On the first failure, what moved goes back, the folder goes, exit 3.
MOVE_SCRIPT = r"""
set -u
cd "$HOME" || { echo "no home folder $HOME"; exit 3; }
dest=$1; shift
found=""
for name in "$@"; do
  if [ -e "$name" ] || [ -L "$name" ]; then found="$found $name"; fi
done
[ -n "$found" ] || { echo "nothing to move"; exit 0; }
mkdir -- "$dest" || exit 3
moved=""
for name in $found; do
  if err=$(mv -- "$name" "$dest/$name" 2>&1); then
    moved="$moved $name"
  else
    for back in $moved; do mv -- "$dest/$back" "$back"; done
    rmdir -- "$dest"
    echo "~/$name could not be moved (${err##*: })"
    exit 3
  fi
done
echo "moved$moved"
"""


class ResetFailed(Exception):
    """The move did not happen; the home is as it was. The message says why."""


def stamp(when: datetime) -> str:
    """The UTC time of a reset request as it appears in the folder's name."""
    return when.strftime("%Y%m%dT%H%M%SZ")


def reset_folder(request_stamp: str) -> str:
    """``.reset-20261122T203800Z``: the folder in home the directories move into."""
    if not STAMP.match(request_stamp):
        raise ValueError(f"a reset stamp looks like 20261122T203800Z, got {request_stamp!r}")
    return RESET_PREFIX + request_stamp


def home_volume(binds: Mapping[str, Mapping], home: str) -> str:
    """The named volume the server mounts at ``home`` (DockerSpawner's
    ``volume_binds``: ``{source: {"bind": target, "mode": …}}``).

    Raises :class:`ResetFailed` when the home is not a named volume mounted
    read-write: moving inside the container's own layer would keep nothing.
    """
    home = home.rstrip("/") or "/"
    for source, bind in binds.items():
        if bind.get("bind", "").rstrip("/") == home and "/" not in source:
            if bind.get("mode", "rw") != "rw":
                break
            return source
    raise ResetFailed(
        f"the home folder {home} is not a volume of this server that can be written, so "
        "there is nothing to reset: the hub's admin sets the home volume in "
        "c.GPUDockerSpawner.volumes"
    )


def helper_request(*, image: str, volume: str, home: str, user: str, folder: str,
                   hub: str, name: str) -> dict:
    """The ``create_container`` keyword arguments of the move: the notebook user,
    no capabilities, only the home volume."""
    return helper_container.create_kwargs(
        image=image, name=name, hub=hub, user=user, capabilities=(),
        entrypoint=["sh", "-c", MOVE_SCRIPT, "reset"],
        command=[folder, *ENVIRONMENT_DIRECTORIES],
        binds=[f"{volume}:{home}:rw"], environment={"HOME": home}, working_dir=home,
    )


async def move_aside(docker_call: Docker, request: dict, log: logging.Logger, server: str) -> str:
    """Run the move described by ``request`` (:func:`helper_request`); returns the
    helper's last line ("moved .local .cache" or "nothing to move").

    Raises :class:`ResetFailed` with the helper's words when it failed: then
    nothing was moved (the script puts back what it moved).
    """
    try:
        output = await helper_container.run(docker_call, request, what="the move", timeout=MOVE_TIMEOUT)
    except helper_container.HelperFailed as error:
        log.error("Reset of %s failed: %s", server, error)
        lines = error.output.strip().splitlines()
        raise ResetFailed(lines[-1] if lines else str(error)) from None
    said = (output.strip().splitlines() or [""])[-1]
    log.info("Reset of %s: %s", server, said)
    return said


async def carry_out(docker_call: Docker, *, binds: Mapping[str, Mapping], home: str, image: str,
                    user: str, request_stamp: str, hub: str, name: str, log: logging.Logger,
                    server: str) -> str:
    """Move the environment folders of the volume mounted at ``home`` (of the
    server's ``binds``) into the folder of ``request_stamp``.

    Raises :class:`ResetFailed` with a message for the user: nothing moved.
    """
    try:
        request = helper_request(
            image=image, volume=home_volume(binds, home), home=home, user=user,
            folder=reset_folder(request_stamp), hub=hub, name=name,
        )
        return await move_aside(docker_call, request, log, server)
    except ResetFailed as error:
        raise ResetFailed(f"Your environment was not reset and nothing was moved: {error}") from None
