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
SHARE_LABEL = "gpuhub.gpu_share"  # servers per GPU this server agreed to share with ("1": exclusive)
LEASE_LABEL = "gpuhub.gpu_lease"  # seconds a GPU server may run ("0": no lease)
IDLE_TIMEOUT_LABEL = "gpuhub.gpu_idle_timeout"  # seconds of GPU idleness before reclaim ("0": never)
ENDS_LABEL = "gpuhub.ends"  # Unix time the user's cohort ends: the server is stopped then (absent: never)
QUEUE_WAIT_LABEL = "gpuhub.queue_wait"  # seconds this start waited in the GPU queue ("0": none)


def labels(
    hub: str,
    user: str,
    server: str,
    uuids: Sequence[str],
    share: int = 1,
    lease: float = 0,
    idle_timeout: float = 0,
) -> dict[str, str]:
    """Labels that record which hub runs a container, for whom, its GPUs and their terms."""
    return {
        HUB_LABEL: hub,
        USER_LABEL: user,
        SERVER_LABEL: server,
        GPU_LABEL: ",".join(uuids),
        SHARE_LABEL: str(share),
        LEASE_LABEL: f"{lease:g}",
        IDLE_TIMEOUT_LABEL: f"{idle_timeout:g}",
    }


def number_label(container_labels: dict[str, str] | None, name: str, default: float = 0) -> float:
    """A numeric label (share, lease, idle timeout); ``default`` when absent or not a number."""
    try:
        return float((container_labels or {}).get(name, default))
    except ValueError:
        return default


def gpus_from_labels(container_labels: dict[str, str] | None) -> tuple[str, ...]:
    value = (container_labels or {}).get(GPU_LABEL, "")
    return tuple(uuid for uuid in value.split(",") if uuid)
