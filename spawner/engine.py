"""What the Docker engine says about GPU containers: the record. Pure, no I/O.

The pool lists every container carrying ``labels.GPU_LABEL`` (any hub's) and
hands the listing here: live ones hold the GPUs their label names.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import labels
from .allocator import ServerKey

# Docker states in which a container holds its GPUs. A "created" container
# is one whose spawn is under way (or died mid-way: the reconcile removes it).
LIVE_STATES = frozenset({"created", "running", "restarting", "paused"})


@dataclass(frozen=True)
class LabelledContainer:
    """One container with gpuhub labels, as the engine listed it."""

    id: str
    name: str
    state: str
    hub: str  # "" on containers made before hubs were labelled
    key: ServerKey
    gpus: tuple[str, ...]
    created: float = 0.0  # Unix time the engine made it
    lease: float = 0.0  # seconds its GPU lease runs from ``created`` (0: none)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def describe(self, own_hub: str) -> str:
        """Who holds it, for people: "ann" for this hub's servers, else with the hub."""
        return str(self.key) if self.hub in ("", own_hub) else f"{self.key} (hub {self.hub})"


def from_listing(containers: list[dict]) -> tuple[LabelledContainer, ...]:
    """``GET /containers/json?all=1&filters=label=gpuhub.gpus`` entries, parsed."""
    parsed = []
    for container in containers:
        container_labels = container.get("Labels") or {}
        parsed.append(
            LabelledContainer(
                id=container["Id"],
                name=(container.get("Names") or ["/?"])[0].lstrip("/"),
                state=container.get("State", ""),
                hub=container_labels.get(labels.HUB_LABEL, ""),
                key=ServerKey(
                    container_labels.get(labels.USER_LABEL, ""),
                    container_labels.get(labels.SERVER_LABEL, ""),
                ),
                gpus=labels.gpus_from_labels(container_labels),
                created=float(container.get("Created") or 0),
                lease=labels.number_label(container_labels, labels.LEASE_LABEL),
            )
        )
    return tuple(parsed)


def taken(listing: tuple[LabelledContainer, ...], own_hub: str) -> dict[str, str]:
    """UUID → holder, for every GPU named on a live container."""
    return {
        uuid: container.describe(own_hub)
        for container in listing
        if container.live
        for uuid in container.gpus
    }


def conflicts(listing: tuple[LabelledContainer, ...], mine: LabelledContainer) -> list[LabelledContainer]:
    """Other live containers that name one of ``mine``'s GPUs."""
    return [
        other
        for other in listing
        if other.live and other.id != mine.id and set(other.gpus) & set(mine.gpus)
    ]


def next_lease_end(listing: tuple[LabelledContainer, ...], now: float) -> float | None:
    """Seconds until the first lease of a live GPU container ends; None when none has one."""
    ends = [c.created + c.lease - now for c in listing if c.live and c.gpus and c.lease > 0]
    return max(0.0, min(ends)) if ends else None
