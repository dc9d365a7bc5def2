"""``gpuhub fence apply|check|remove``: the network fence from the command line.

    sudo gpuhub fence apply    # create the network if missing, write the fence
    sudo gpuhub fence check    # exit 0 when fenced, 1 with the reasons when not
    sudo gpuhub fence remove   # take this network's fence away again

Options default to the hub's settings (GPUHUB_NETWORK, GPUHUB_HUB_PORT,
GPUHUB_FENCE_HUB_PORTS, GPUHUB_FENCE_INTERNET, GPUHUB_FENCE_ALLOW), so the
same environment the hub runs with gives the fence the hub checks for.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from gpuhub.hub.fence_rules import FenceSettingError, FenceSettings, Opening, parse_port_range


def parser(defaults: FenceSettings) -> argparse.ArgumentParser:
    low, high = defaults.open_hub_ports
    p = argparse.ArgumentParser(
        prog="gpuhub fence",
        description="Keep user containers away from this host's ports and 169.254.169.254 "
        "(hub/README.md, 'The network fence').",
    )
    p.add_argument("action", choices=("apply", "check", "remove"))
    p.add_argument("--network", default=defaults.network, help=f"Docker network (default {defaults.network})")
    p.add_argument(
        "--hub-ports", default=f"{low}" if low == high else f"{low}:{high}",
        help="hub port, or LOW:HIGH for several hubs on one network (default: GPUHUB_HUB_PORT)",
    )
    p.add_argument(
        "--internet", choices=("allow", "deny"), default="allow" if defaults.internet else "deny",
        help="let containers reach public addresses (private ranges stay closed)",
    )
    p.add_argument(
        "--allow", action="append", default=None, metavar="OPENING",
        help="open ADDRESS[/PREFIX][:PORT[/udp]] or host:PORT (site proxy, package mirror); repeat it",
    )
    return p


def main(argv: list[str]) -> int:
    try:
        defaults = FenceSettings.from_environ(os.environ)
        args = parser(defaults).parse_args(argv)
        low, high = parse_port_range(args.hub_ports)
        settings = dataclasses.replace(
            defaults,
            network=args.network,
            hub_port=low,  # only the range matters to the fence
            hub_ports=(low, high),
            internet=args.internet == "allow",
            openings=defaults.openings if args.allow is None else tuple(Opening.parse(a) for a in args.allow),
        )
    except FenceSettingError as error:
        print(f"gpuhub fence: {error}", file=sys.stderr)
        return 2

    # Imported here: `gpuhub fence --help` works without Docker's client.
    from gpuhub.hub.bootstrap import ensure_network_facts
    from gpuhub.hub.fence import (
        FenceUnreadable, NotFenced, apply_fence, fence_problems, network_facts, remove_fence,
    )

    try:
        if args.action == "remove":
            removed = remove_fence(settings.network)
            print("\n".join(f"removed {r}" for r in removed) or f"no fence for {settings.network}")
            return 0
        if args.action == "apply":
            facts = ensure_network_facts(settings.network)  # created with ICC off; refused if ICC is on
            changed = apply_fence(settings, facts)
            print("\n".join(changed) or f"fence for {settings.network} already in place")
            return 0
        facts = network_facts(settings.network)
        problems = fence_problems(settings, facts)
        for problem in problems:
            print(f"not fenced: {problem}")
        if problems:
            print(f"fix: {settings.command('apply')}")
            return 1
        print(f"{settings.network} ({facts.bridge}, gateway {facts.gateway}) is fenced")
        return 0
    except (FenceUnreadable, NotFenced) as error:
        print(f"gpuhub fence: {error}", file=sys.stderr)
        return 1
