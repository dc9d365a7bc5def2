"""``gpuhub cohort report COHORT [--csv]``: a cohort's GPU-hours, peak GPUs,
queue waits, reclaims and home sizes, per member and team, from the
gpu-usage service through the hub's proxy (``/services/gpu-usage/api/cohorts/…``).

The token needs what the report page needs: ``custom:gpu-usage:read-all``
(admins, organizers) or its ``!group=COHORT`` form (the cohort's
instructors), and access to the service (every user's). The hub URL must be
the hub's public address (the proxy), not the API address inside a server.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from gpuhub.hub.gpu_usage import SERVICE_NAME
from gpuhub.hub.gpu_usage.report import text_table
from gpuhub.hub.hub_client import HubAPIError, HubClient, add_hub_arguments


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpuhub cohort report",
        description="Print a cohort's usage report: GPU-hours, peak GPUs, queue waits, reclaims, "
                    "home sizes, per member, per team and in total.")
    p.add_argument("cohort", help="the cohort's name, e.g. ml-101")
    p.add_argument("--csv", action="store_true", help="print CSV (one row per member, team and the total)")
    add_hub_arguments(p)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    path = f"/api/cohorts/{quote(args.cohort, safe='')}/report"
    try:
        client = HubClient.from_arguments(args)
        if args.csv:
            sys.stdout.write(client.service_get(SERVICE_NAME, path + ".csv", expect_json=False))
        else:
            print(text_table(client.service_get(SERVICE_NAME, path)))
    except HubAPIError as error:
        print(f"gpuhub cohort report: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
