"""A deleted user's volumes: archived or removed, so a new user of the same
name starts empty. Docker, through the spawner's Docker threads.

Docker cannot rename a volume: archiving copies it into a new volume with
``cp -a`` in a short-lived container, then removes the original. The copy
runs as root so that every file keeps its owner, but with only the
capabilities copying needs (CHOWN, DAC_OVERRIDE, FOWNER), no new privileges,
no network and the user's volume read-only. The original is kept when the
copy fails, and the error says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone

import docker.errors

from . import helper_container, labels

ARCHIVED_USER_LABEL = "gpuhub.archived-user"  # not gpuhub.user: a new user of that name owns nothing here
ARCHIVED_FROM_LABEL = "gpuhub.archived-from"
USER_FIELDS = re.compile(r"\{(username|safe_username|raw_username)\}")
COPY_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER"]  # read every file, keep owners and modes
COPY_TIMEOUT = 3600  # seconds; a home of many GB takes minutes

Docker = Callable[..., Awaitable]


def per_user_templates(volumes: Mapping[str, object]) -> list[str]:
    """Named-volume templates that name the user; shared volumes (no user in the
    name, e.g. a read-only dataset) and host paths are not the user's to delete."""
    return [t for t in volumes if "/" not in t and USER_FIELDS.search(t)]


def archive_names(prefix: str, user: str, count: int, when: datetime) -> list[str]:
    """``{prefix}-archive-{user}-{UTC time}``, numbered when a user has several volumes."""
    base = f"{prefix}-archive-{user}-{when.strftime('%Y%m%dT%H%M%SZ')}"
    return [base] if count == 1 else [f"{base}-{n}" for n in range(1, count + 1)]


async def exists(docker_call: Docker, volume: str) -> bool:
    try:
        await docker_call("inspect_volume", volume)
        return True
    except docker.errors.NotFound:
        return False


async def copy_and_remove(
    docker_call: Docker, volume: str, archive_volume: str, *, hub: str, user: str,
    image: str, when: datetime,
) -> None:
    """Copy ``volume`` into a new ``archive_volume``, then remove ``volume``."""
    await docker_call("create_volume", name=archive_volume, labels={
        labels.HUB_LABEL: hub, ARCHIVED_USER_LABEL: user, ARCHIVED_FROM_LABEL: volume,
        "gpuhub.archived-at": when.isoformat(),
    })
    try:
        await helper_container.run_once(
            docker_call, image=image, command=["cp", "-a", "/from/.", "/to/"],
            binds=[f"{volume}:/from:ro", f"{archive_volume}:/to:rw"],
            capabilities=COPY_CAPABILITIES, hub=hub, name=archive_volume,
            what=f"copying volume {volume} into {archive_volume}", timeout=COPY_TIMEOUT,
        )
    except BaseException as error:
        await docker_call("remove_volume", archive_volume, force=True)
        if isinstance(error, helper_container.HelperFailed):
            raise RuntimeError(f"{error}; {volume} is kept") from None
        raise
    await docker_call("remove_volume", volume)


async def dispose(
    docker_call: Docker, volumes: Sequence[str], *, archive: bool, prefix: str, hub: str,
    user: str, escaped_user: str, image: str, log: logging.Logger,
) -> None:
    """Archive (or remove) those of ``volumes`` that exist."""
    volumes = [v for v in volumes if await exists(docker_call, v)]
    when = datetime.now(timezone.utc)
    for volume, archive_volume in zip(volumes, archive_names(prefix, escaped_user, len(volumes), when)):
        if not archive:
            await docker_call("remove_volume", volume)
            log.info("Removed volume %s of deleted user %s", volume, user)
            continue
        await copy_and_remove(
            docker_call, volume, archive_volume, hub=hub, user=user, image=image, when=when
        )
        log.info("Archived volume %s of deleted user %s as %s", volume, user, archive_volume)
