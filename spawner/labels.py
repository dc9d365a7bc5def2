"""The label contract: what gpuhub writes on containers and volumes. Pure, no I/O.

The engine is the record of who holds which GPU: every live container that
carries ``GPU_LABEL`` holds the devices it names, whichever hub made it.
``HUB_LABEL`` says which hub a container or volume belongs to, so several
hubs can share one engine without sharing names, volumes or GPUs.
"""

from __future__ import annotations

from collections.abc import Sequence

GPU_LABEL = "gpuhub.gpus"  # comma-separated device UUIDs
USER_LABEL = "gpuhub.user"
SERVER_LABEL = "gpuhub.server"  # "" for a user's default server
HUB_LABEL = "gpuhub.hub"  # the hub's identity (its prefix)
IMAGE_LABEL = "gpuhub.image"  # the image the server runs: repo digest or image ID


def labels(hub: str, user: str, server: str, uuids: Sequence[str]) -> dict[str, str]:
    """Labels that record which hub runs a container, for whom, and its GPUs."""
    return {HUB_LABEL: hub, USER_LABEL: user, SERVER_LABEL: server, GPU_LABEL: ",".join(uuids)}


def gpus_from_labels(container_labels: dict[str, str] | None) -> tuple[str, ...]:
    value = (container_labels or {}).get(GPU_LABEL, "")
    return tuple(uuid for uuid in value.split(",") if uuid)
