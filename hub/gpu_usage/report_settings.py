"""The service's settings for organizer reports and home sizes (a part of
``GpuUsageApp``: ``c.GpuUsageApp.home_soft_limit = …``). No I/O.
"""

from __future__ import annotations

from jupyterhub.traitlets import ByteSpecification
from traitlets import Float, HasTraits, Unicode


class ByteSize(ByteSpecification):
    """Bytes, or K/M/G/T (1024-based) also from a string ("10G" on the command
    line or in a variable): JupyterHub's ByteSpecification parses only digits there."""

    def from_string(self, s):
        return int(s) if s.strip().isdigit() else s.strip()


class ReportSettings(HasTraits):
    """Cohorts (the hub's groups) and home volumes: how often to read them, the soft limit."""

    groups_interval = Float(
        60.0,
        help="""Seconds between reads of the hub's groups (cohorts and teams, for the
        organizer's report and the peak GPUs per group). Default 60
        (GPUHUB_USAGE_GROUPS_INTERVAL).

        c.GpuUsageApp.groups_interval = 120
        """,
    ).tag(config=True)

    storage_interval = Float(
        300.0,
        help="""Seconds between measurements of the users' home volumes (Docker's
        disk-usage API, on a thread of its own: it walks every volume). Default 300
        (GPUHUB_USAGE_STORAGE_INTERVAL).

        c.GpuUsageApp.storage_interval = 900
        """,
    ).tag(config=True)

    home_path = Unicode(
        "/home/jovyan",
        help="""Where servers mount the user's home volume: the volume mounted there is
        the one measured. Default /home/jovyan (the spawner's default ``volumes``).

        c.GpuUsageApp.home_path = "/home/jovyan"
        """,
    ).tag(config=True)

    home_soft_limit = ByteSize(
        0,
        help="""A home volume bigger than this gets a warning on the hub's home page and
        My GPUs, and is marked in the cohort report; nothing is refused (hard quotas:
        hub/README.md). K, M, G, T suffixes (1024-based). Default 0: off
        (GPUHUB_HOME_SOFT_LIMIT).

        c.GpuUsageApp.home_soft_limit = "10G"
        """,
    ).tag(config=True)
