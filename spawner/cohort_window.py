"""When a cohort's members may run servers: its ``starts``–``ends`` window. No I/O.

A cohort (``gpuhub cohort import``, ``hub/cohort/names.py``) is a group with
the property ``gpuhub_cohort`` and a window: ``starts`` and/or ``ends``, ISO
8601 date-times (``"2026-12-01T09:00:00Z"``; a value without a time zone is
read as UTC). A member of one or more cohorts may start servers while at
least one of them is open; a user in no cohort, and groups without a window
(a cohort's team groups), change nothing. While open, the server carries the
latest ``ends`` of the user's open cohorts (``labels.ENDS_LABEL``), and the
gpu-usage service stops it then (``hub/gpu_usage/reclaim.py``); an open
cohort without ``ends`` never stops it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from gpuhub.hub.cohort.names import COHORT, ENDS, STARTS

from .group_properties import BadGroupProperty

DATE_ALLOWED = 'an ISO 8601 date and time, e.g. "2026-12-01T09:00:00Z" (UTC when no zone is given)'


class CohortClosed(Exception):
    """None of the user's cohorts is open now; the message gives their dates in UTC."""


@dataclass(frozen=True)
class Cohort:
    name: str  # the cohort's name (its property), e.g. "ml-101"
    group: str
    starts: datetime.datetime | None
    ends: datetime.datetime | None

    def is_open(self, now: datetime.datetime) -> bool:
        return (self.starts is None or now >= self.starts) and (self.ends is None or now < self.ends)

    def describe(self) -> str:
        """``The cohort ml-101 runs from 2026-12-01 09:00 UTC to 2026-12-19 18:00 UTC``"""
        span = " ".join(
            f"{word} {utc_text(when)}" for word, when in (("from", self.starts), ("to", self.ends)) if when
        )
        if self.starts is None:
            span = f"until {utc_text(self.ends)}"
        return f"The cohort {self.name} runs {span}"


def utc_text(when: datetime.datetime) -> str:
    """2026-12-01 09:00 UTC"""
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def parse_time(group: str, key: str, raw) -> datetime.datetime:
    """An ISO 8601 property value as an aware datetime; BadGroupProperty otherwise."""
    if not isinstance(raw, str):
        raise BadGroupProperty(group, key, raw, DATE_ALLOWED)
    try:
        when = datetime.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadGroupProperty(group, key, raw, DATE_ALLOWED) from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def cohorts_of(groups: Iterable) -> list[Cohort]:
    """The cohorts with a window among ``groups`` (JupyterHub's ``user.groups``:
    objects with ``name`` and ``properties``), in group name order."""
    cohorts = []
    for group in sorted(groups, key=lambda g: g.name):
        properties = getattr(group, "properties", None) or {}
        if COHORT not in properties or not (STARTS in properties or ENDS in properties):
            continue
        starts, ends = (parse_time(group.name, key, properties[key]) if key in properties else None
                        for key in (STARTS, ENDS))
        if starts and ends and ends <= starts:
            raise BadGroupProperty(group.name, ENDS, properties[ENDS], f"later than {STARTS} "
                                   f"({properties[STARTS]})")
        cohorts.append(Cohort(str(properties[COHORT]), group.name, starts, ends))
    return cohorts


def open_until(groups: Iterable, now: datetime.datetime) -> float | None:
    """May a member of ``groups`` start a server at ``now``? Returns when it must
    stop (epoch seconds: the latest ``ends`` of the open cohorts), or None for
    never. Raises :class:`CohortClosed` (no cohort open) or BadGroupProperty."""
    cohorts = cohorts_of(groups)
    if not cohorts:
        return None
    open_ = [cohort for cohort in cohorts if cohort.is_open(now)]
    if not open_:
        raise CohortClosed(" ".join(f"{cohort.describe()}: servers can be started only then."
                                    for cohort in cohorts))
    if any(cohort.ends is None for cohort in open_):
        return None
    return max(cohort.ends for cohort in open_).timestamp()
