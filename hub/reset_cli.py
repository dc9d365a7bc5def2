"""``gpuhub reset USER [--server NAME] [--cancel | --show]``: a user's fresh
environment, their files kept (hub/README.md, "Reset my environment").

Calls the hub's reset API (``hub/reset.py``) with a token that holds the
``servers`` scope on that user: an admin's, an instructor's for their
cohort's members, or the user's own.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import quote

from .hub_client import HubAPIError, HubClient, add_hub_arguments


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpuhub reset",
        description="Give USER's server a fresh container from the current image: "
        "~/.local, ~/.jupyter, ~/.ipython, ~/.config, ~/.cache, ~/.conda and ~/.condarc "
        "move into ~/.reset-<UTC time>/ (nothing is deleted, other files stay). "
        "A running server restarts at once; a stopped one is reset at its next start.",
    )
    p.add_argument("user", help="the user whose server to reset")
    p.add_argument("--server", default="", help="a named server (default: the default server)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--cancel", action="store_true", help="cancel a reset that waits for the next start")
    action.add_argument("--show", action="store_true", help="say what a reset moves, and whether one waits")
    add_hub_arguments(p)
    return p


def reset_path(user: str, server: str) -> str:
    base = f"/users/{quote(user, safe='')}"
    return f"{base}/servers/{quote(server, safe='')}/reset" if server else f"{base}/server/reset"


def describe(answer: dict) -> str:
    lines = [f"  {move['path']} -> {move['moves_to']}" for move in answer["directories"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    path = reset_path(args.user, args.server)
    try:
        client = HubClient.from_arguments(args)
        if args.cancel:
            answer = client.request("DELETE", path)
            print("cancelled the waiting reset" if answer["cancelled"] else "no reset was waiting")
        elif args.show:
            answer = client.get(path)
            waiting = f"a reset waits for the next start, into {answer['folder']}/" if answer["pending"] \
                else "no reset waits"
            print(f"{waiting}; a reset moves those that exist of:\n{describe(answer)}")
        else:
            answer = client.request("POST", path, {})
            print(f"{answer['message']}:\n{describe(answer)}")
    except HubAPIError as error:
        print(f"gpuhub reset: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
