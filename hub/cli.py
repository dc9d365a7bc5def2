"""The ``gpuhub`` command: one entry point, a subcommand per tool.

    gpuhub images build|release|list …   the notebook images (images/README.md)
    gpuhub fence apply|check|remove …    the network fence (hub/README.md)
    gpuhub cohort import|remove|report … classes and hackathons (hub/cohort/README.md)
    gpuhub reset USER                    a user's fresh environment (hub/README.md)
    gpuhub datasets add PATH             fill the shared read-only datasets volume
"""

from __future__ import annotations

import importlib
import sys

USAGE = """usage: gpuhub COMMAND …

commands:
  images    build, validate and release the notebook images (gpuhub images --help)
  fence     keep user containers away from this host's ports (gpuhub fence --help)
  cohort    import, remove and report a class or hackathon (gpuhub cohort --help)
  reset     give a user a fresh environment, their files kept (gpuhub reset --help)
  datasets  copy data into the shared read-only ~/datasets (gpuhub datasets --help)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    commands = {
        "images": "gpuhub.images.cli",
        "fence": "gpuhub.hub.fence_cli",
        "cohort": "gpuhub.hub.cohort.cli",
        "reset": "gpuhub.hub.reset_cli",
        "datasets": "gpuhub.hub.datasets_cli",
    }
    if command in commands:
        return importlib.import_module(commands[command]).main(rest)
    print(f"gpuhub: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
