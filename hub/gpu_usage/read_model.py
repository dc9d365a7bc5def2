"""What the handlers read (the app hands it over in the tornado settings):
the latest sample, the history, the GPU-hours, the cohorts, settings. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .cache import TTLCache
from .hub_groups import HubGroups
from .reclaim_log import ReclaimLog
from .report import Figures
from .store import UsageStore
from .tracker import History, Sample


@dataclass(frozen=True)
class ReadModel:
    """What the handlers read: the latest sample, the history, the GPU-hours, settings."""

    latest: Callable[[], Sample | None]
    history: History
    store: UsageStore
    reclaims: ReclaimLog  # servers stopped for idle GPUs or an ended lease
    lease_warnings: Callable[[], dict]  # (user, server) -> reclaim.Verdict, leases ending soon
    known_users: TTLCache  # user name -> exists on the hub (bounded, expires)
    idle_flag_seconds: float
    interval: float
    service_name: str
    prefix: str
    base_url: str
    hub_prefix: str
    hub_static: Callable[..., str]
    metrics_token: str
    cohorts: HubGroups  # the hub's cohorts and teams: .cohorts, await .find(name)
    figures: Callable[[], Figures]  # per user and group, for the cohort report
    home_size: Callable[[str], int | None]  # user -> home volume bytes (None: not measured)
    soft_limit: int  # bytes; 0: no soft limit on homes
