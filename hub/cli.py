"""The ``gpuhub`` command: one entry point, a subcommand per tool.

    gpuhub images build|release|list …   the notebook images (images/README.md)
    gpuhub fence apply|check|remove …    the network fence (hub/README.md)
"""

from __future__ import annotations

import sys

USAGE = """usage: gpuhub COMMAND …

commands:
  images    build, validate and release the notebook images (gpuhub images --help)
  fence     keep user containers away from this host's ports (gpuhub fence --help)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "images":
        from gpuhub.images.cli import main as images_main

        return images_main(rest)
    if command == "fence":
        from gpuhub.hub.fence_cli import main as fence_main

        return fence_main(rest)
    print(f"gpuhub: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
