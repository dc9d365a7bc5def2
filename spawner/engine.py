"""What the Docker engine says about GPU containers: the record. Pure, no I/O.

The pool lists every container carrying ``labels.GPU_LABEL`` (any hub's) and
hands the listing here: live ones hold the GPUs their label names.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import labels
from .allocator import Holding, ServerKey

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
    share: int = 1  # servers per GPU it agreed to share with (labels.SHARE_LABEL; absent: 1)

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
                share=max(1, int(labels.number_label(container_labels, labels.SHARE_LABEL, 1))),
            )
        )
    return tuple(parsed)


def taken(listing: tuple[LabelledContainer, ...], own_hub: str) -> tuple[Holding, ...]:
    """Every live container that names GPUs: who, which GPUs, on what share."""
    return tuple(
        Holding(
            name=container.describe(own_hub),
            gpus=container.gpus,
            share=container.share,
            key=container.key if container.hub in ("", own_hub) else None,
            container_id=container.id,
        )
        for container in listing
        if container.live and container.gpus
    )


def conflicts(listing: tuple[LabelledContainer, ...], mine: LabelledContainer) -> list[LabelledContainer]:
    """Other live containers on one of ``mine``'s GPUs where they do not fit together.

    Servers that agreed to share a GPU N ways fit while there are at most N of
    them, all of the same N; any other second holder is a conflict (two hubs
    chose the same GPU at the same moment).
    """
    rivals: dict[str, LabelledContainer] = {}
    for uuid in mine.gpus:
        others = [c for c in listing if c.live and c.id != mine.id and uuid in c.gpus]
        fits = all(c.share == mine.share for c in others) and len(others) + 1 <= mine.share
        if others and not fits:
            rivals.update((c.id, c) for c in others)
    return list(rivals.values())


def next_lease_end(listing: tuple[LabelledContainer, ...], now: float) -> float | None:
    """Seconds until the first lease of a live GPU container ends; None when none has one."""
    ends = [c.created + c.lease - now for c in listing if c.live and c.gpus and c.lease > 0]
    return max(0.0, min(ends)) if ends else None
