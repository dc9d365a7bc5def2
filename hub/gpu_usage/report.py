"""The organizer's report of one cohort: per member, per team and in total,
GPU-hours, peak concurrent GPUs, queue waits, reclaims and home sizes; as a
dict (page, JSON), CSV and a text table (``gpuhub cohort report``). Pure, no I/O.

Standard library only besides gpuhub's own pure modules: the command line
tool imports :func:`text_table` where only the gpuhub package is installed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

COLUMNS = ("kind", "cohort", "team", "user", "gpu_hours", "peak_gpus", "queue_waits",
           "queue_wait_s", "queue_wait_max_s", "reclaims", "home_bytes", "over_soft_limit")


@dataclass(frozen=True)
class WaitTotals:
    """A user's waits in the GPU queue: how many, seconds in all, the longest."""

    count: int = 0
    seconds: float = 0.0
    longest: float = 0.0

    def plus(self, seconds: float) -> WaitTotals:
        return WaitTotals(self.count + 1, self.seconds + seconds, max(self.longest, seconds))


@dataclass(frozen=True)
class Figures:
    """What the service knows, per user and per group, at one moment."""

    hours: Mapping[str, float] = field(default_factory=dict)  # user -> GPU-hours, all time
    user_peaks: Mapping[str, int] = field(default_factory=dict)  # user -> most GPUs held at once
    group_peaks: Mapping[str, int] = field(default_factory=dict)  # group -> most GPUs its members held at once
    waits: Mapping[str, WaitTotals] = field(default_factory=dict)
    reclaims: Mapping[str, int] = field(default_factory=dict)  # user -> servers reclaimed
    home_bytes: Mapping[str, int] = field(default_factory=dict)  # user -> home volume size
    soft_limit: int = 0  # bytes; 0: none


def over_limit(size: int | None, soft_limit: int) -> bool:
    return bool(soft_limit) and size is not None and size > soft_limit


def user_row(cohort: str, team: str, user: str, figures: Figures) -> dict:
    waits = figures.waits.get(user, WaitTotals())
    size = figures.home_bytes.get(user)
    return {
        "kind": "user", "cohort": cohort, "team": team, "user": user,
        "gpu_hours": figures.hours.get(user, 0.0),
        "peak_gpus": figures.user_peaks.get(user, 0),
        "queue_waits": waits.count,
        "queue_wait_s": waits.seconds,
        "queue_wait_max_s": waits.longest,
        "reclaims": figures.reclaims.get(user, 0),
        "home_bytes": size,
        "over_soft_limit": int(over_limit(size, figures.soft_limit)),
    }


def sum_row(kind: str, cohort: str, team: str, rows: list[dict], peak: int) -> dict:
    """A team's or the cohort's row: sums of its members' rows; its own peak
    (members at once, not the sum of each one's peak); the longest wait."""
    sizes = [row["home_bytes"] for row in rows if row["home_bytes"] is not None]
    return {
        "kind": kind, "cohort": cohort, "team": team, "user": "",
        **{name: sum(row[name] for row in rows)
           for name in ("gpu_hours", "queue_waits", "queue_wait_s", "reclaims", "over_soft_limit")},
        "peak_gpus": peak,
        "queue_wait_max_s": max((row["queue_wait_max_s"] for row in rows), default=0.0),
        "home_bytes": sum(sizes) if sizes else None,
    }


def cohort_report(cohort, figures: Figures) -> dict:
    """``cohort``: a :class:`~.cohorts.Cohort`. Teams in name order, then the
    members without a team (team ""), then the cohort's total."""
    teams = []
    for team, members in cohort.teams.items():
        rows = [user_row(cohort.name, team, user, figures) for user in members]
        peak = figures.group_peaks.get(cohort.team_groups[team], 0)
        teams.append({"team": team, "members": rows, "total": sum_row("team", cohort.name, team, rows, peak)})
    loose = [user_row(cohort.name, "", user, figures) for user in cohort.without_team]
    everyone = [user_row(cohort.name, "", user, figures) for user in cohort.members]
    return {
        "cohort": cohort.name,
        "teams": teams,
        "without_team": loose,
        "total": sum_row("total", cohort.name, "", everyone, figures.group_peaks.get(cohort.name, 0)),
        "soft_limit": figures.soft_limit,
    }


def rows(report: dict) -> list[dict]:
    """Every row in order: each team's members then the team, the members without a team, the total."""
    ordered = []
    for team in report["teams"]:
        ordered += [*team["members"], team["total"]]
    return [*ordered, *report["without_team"], report["total"]]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if value % 1 else f"{value:.0f}"
    text = str(value)
    # a spreadsheet runs a cell starting with = + - @ as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def report_csv(report: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows(report):
        writer.writerow([_cell(row[column]) for column in COLUMNS])
    return out.getvalue()


def human_bytes(size: int | None) -> str:
    """1.5 KiB, 11.2 GiB, 10 GiB; "–" when unknown."""
    if size is None:
        return "–"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {unit}"


def duration_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


HEADINGS = ("Team", "User", "GPU-hours", "Peak GPUs", "Queue waits", "Waited", "Longest",
            "Reclaims", "Home", "Over limit")


def text_table(report: dict) -> str:
    """The report as aligned text for a terminal."""
    lines = []
    for row in rows(report):
        team = row["team"] or ("(no team)" if row["kind"] == "user" else "")
        who = {"user": row["user"], "team": "= team", "total": "= cohort"}[row["kind"]]
        lines.append((
            "ALL" if row["kind"] == "total" else team, who, f"{row['gpu_hours']:.2f}", str(row["peak_gpus"]),
            str(row["queue_waits"]), duration_s(row["queue_wait_s"]), duration_s(row["queue_wait_max_s"]),
            str(row["reclaims"]), human_bytes(row["home_bytes"]),
            str(row["over_soft_limit"]) if report["soft_limit"] else "–",
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(HEADINGS)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    limit = f", soft limit {human_bytes(report['soft_limit'])}" if report["soft_limit"] else ""
    return "\n".join([f"Cohort {report['cohort']}{limit}", fmt(HEADINGS), *(fmt(line) for line in lines)])
