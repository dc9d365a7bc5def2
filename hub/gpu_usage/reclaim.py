"""GPU idle reclaim and leases: does a GPU server keep its GPUs? Pure, no I/O.

A server's terms come from its container's labels, written by the spawner
(``gpuhub.gpu_idle_timeout``, ``gpuhub.gpu_lease``; 0 switches each off). It
loses its GPUs (the server is stopped, its files kept) when

- **idle**: none of its GPUs was in use (``gpu_status.in_use``: a compute
  process, or utilization at the threshold) and nothing happened in it
  (kernels, terminals, requests through the proxy: the hub's
  ``last_activity``) for ``idle_timeout`` seconds. ``gpu_idle_since`` is
  None when a GPU has no reading: then nobody can say it is idle;
- **lease**: ``started + lease`` has passed. Before that, within
  :func:`warning_window`, the verdict is a warning with the end time;
- **cohort**: its cohort's ``ends`` (``gpuhub.ends``, written by the spawner
  from the cohort's group, ``spawner/cohort_window.py``) has passed: any
  server, CPU-only too, is stopped then, and warned before it like a lease.

:mod:`.reclaimer` acts on the verdicts; the pages show warnings and records.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass

from .views import duration


class Action(str, enum.Enum):
    KEEP = "keep"
    WARN = "warn"  # the lease or the cohort ends soon
    RECLAIM = "reclaim"


class Kind(str, enum.Enum):
    IDLE = "idle"
    LEASE = "lease"
    COHORT = "cohort"


@dataclass(frozen=True)
class Verdict:
    action: Action
    kind: Kind | None = None
    reason: str = ""  # for a person: "its GPU was idle for 30 min"
    lease_ends: float | None = None  # epoch seconds, when the server has a lease
    cohort_ends: float | None = None  # epoch seconds, when a cohort's end is announced


KEEP = Verdict(Action.KEEP)


def warning_window(lease: float, warn_before: float) -> float:
    """How long before its end a lease is announced: ``warn_before``, at most a
    quarter of the lease (a 20-min lease is not announced for all its life)."""
    return min(warn_before, lease / 4)


def gpus_phrase(count: int) -> str:
    return "its GPU was" if count == 1 else f"its {count} GPUs were"


def decide(
    *,
    now: float,
    started: float,
    gpus: int,
    idle_timeout: float,
    lease: float,
    gpu_idle_since: float | None,
    last_activity: float | None,
    warn_before: float,
    ends: float = 0,
) -> Verdict:
    """What to do with one running server that holds ``gpus`` GPUs (0: CPU-only).

    ``started``: since when it holds its GPUs: the later of its container's
    creation (after any wait in the GPU queue) and the hub's ``started`` (a
    kept container, ``remove = False``, was created long before). A check
    with the creation time alone can only err towards acting, never keeping.
    ``last_activity``: the hub's, None when unknown. ``ends``: when its cohort
    ends (0: never).
    """
    if ends > 0 and now >= ends:
        return Verdict(Action.RECLAIM, Kind.COHORT, f"the cohort ended at {clock(ends, dated=True)}")
    cohort_warning = None
    if ends > 0 and now >= ends - warn_before:
        cohort_warning = Verdict(Action.WARN, Kind.COHORT, f"its cohort ends at {clock(ends, dated=True)}",
                                 cohort_ends=ends)
    if gpus <= 0:
        return cohort_warning or KEEP
    lease_ends = started + lease if lease > 0 else None
    if lease_ends is not None and now >= lease_ends:
        return Verdict(Action.RECLAIM, Kind.LEASE, f"its GPU lease of {duration(lease)} ended", lease_ends)
    if idle_timeout > 0 and gpu_idle_since is not None:
        quiet_since = max(gpu_idle_since, last_activity or 0.0, started)
        if now - quiet_since >= idle_timeout:
            return Verdict(Action.RECLAIM, Kind.IDLE,
                           f"{gpus_phrase(gpus)} idle for {duration(now - quiet_since)}", lease_ends)
    if lease_ends is not None and now >= lease_ends - warning_window(lease, warn_before):
        if not (cohort_warning and ends < lease_ends):  # the earlier end is announced
            return Verdict(Action.WARN, Kind.LEASE, f"its GPU lease ends at {clock(lease_ends)}", lease_ends)
    if cohort_warning:
        return Verdict(Action.WARN, Kind.COHORT, cohort_warning.reason, lease_ends, ends)
    return Verdict(Action.KEEP, lease_ends=lease_ends)


def clock(epoch: float, dated: bool = False) -> str:
    """14:05 UTC; dated: 2026-12-19 14:05 UTC."""
    when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M UTC" if dated else "%H:%M UTC")


def server_phrase(server: str) -> str:
    return f"Your server {server!r}" if server else "Your server"


def stopped_notice(server: str, when: float, reason: str) -> str:
    """What the user reads on their next visit."""
    return f"{server_phrase(server)} was stopped at {clock(when)}: {reason} (files kept)."


def lease_notice(server: str, ends: float, now: float) -> str:
    minutes = max(0, round((ends - now) / 60))
    possessive = f"Your server {server!r}'s" if server else "Your server's"
    return (f"{possessive} GPU lease ends at {clock(ends)} (in {minutes} min): "
            f"save your work; it will be stopped then, files kept.")


def cohort_notice(server: str, ends: float, now: float) -> str:
    minutes = max(0, round((ends - now) / 60))
    phrase = server_phrase(server)
    return (f"Your cohort ends at {clock(ends, dated=True)} (in {minutes} min): save your work; "
            f"{phrase[0].lower()}{phrase[1:]} will be stopped then, files kept.")


def warning_notice(server: str, verdict: Verdict, now: float) -> dict:
    """The notice for a WARN verdict: a lease or a cohort that ends soon."""
    if verdict.kind is Kind.COHORT:
        return {"kind": "cohort", "server": server, "ends": verdict.cohort_ends,
                "text": cohort_notice(server, verdict.cohort_ends, now)}
    return {"kind": "lease", "server": server, "ends": verdict.lease_ends,
            "text": lease_notice(server, verdict.lease_ends, now)}


NOTICE_SECONDS = 24 * 3600  # a stop is explained on visits within a day, until the server runs again


def user_notices(records, running: set[str], warnings: dict, user: str, now: float) -> list[dict]:
    """What to tell ``user`` on the hub's pages: a lease or cohort that ends soon, and why a
    server that is not running again was stopped (its latest stop, within a day).

    ``records``: the user's :class:`.reclaim_log.Reclaim`, newest first;
    ``running``: names of their running servers; ``warnings``: (user, server) -> Verdict.
    """
    notices = [
        warning_notice(server, verdict, now)
        for (owner, server), verdict in sorted(warnings.items())
        if owner == user and verdict.action is Action.WARN
    ]
    explained = set()
    for record in records:
        if record.server in running or record.server in explained or now - record.time > NOTICE_SECONDS:
            continue
        explained.add(record.server)
        notices.append({"kind": "stopped", "server": record.server, "time": record.time,
                        "text": stopped_notice(record.server, record.time, record.reason)})
    return notices
