"""``gpuhub cohort import|remove|report``: a class or a hackathon from one file
(hub/cohort/README.md). Exit 0 when done, 1 when the hub is not reached or
refused, 2 for a bad file or bad arguments (nothing applied).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import os
import sys
from pathlib import Path

from gpuhub.hub.cohort import importer
from gpuhub.hub.cohort.cohort_file import Cohort, CohortFileError, parse_cohort
from gpuhub.hub.hub_client import HubAPIError, HubClient, add_hub_arguments

ACCOUNTS = f"{importer.EXTENSION}/accounts"


def load(path: str) -> Cohort:
    """The cohort file at ``path`` (a CSV it names is read next to it)."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as error:
        raise CohortFileError([f"{path}: cannot read it: {error.strerror or error}"]) from None
    return parse_cohort(text, str(file), read_csv=lambda name: (file.parent / name).read_text())


def write_passwords(path: str, passwords: dict[str, str]) -> None:
    """``username,password`` rows into a new file, mode 0600 from its creation."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["username", "password"])
    writer.writerows(sorted(passwords.items()))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(out.getvalue())


def accounts_of(client: HubClient) -> dict:
    """Whether this hub's authenticator keeps passwords; also checks that the hub
    has gpuhub's cohort API at all (before anything is changed)."""
    try:
        return client.get(ACCOUNTS)
    except HubAPIError as error:
        if error.status == 404:
            raise HubAPIError(f"{client.url} has no gpuhub cohort API ({ACCOUNTS}): is it a "
                              "gpuhub hub (config/jupyterhub_config.py calls "
                              "configure_cohort_api)?") from None
        raise


def run_import(args, cohort: Cohort, client: HubClient) -> int:
    if args.passwords and os.path.lexists(args.passwords):
        print(f"gpuhub cohort: {args.passwords} exists: give a new file for the passwords "
              "(it is never overwritten)", file=sys.stderr)
        return 2
    state = importer.read_state(client, cohort)
    changes = importer.import_plan(cohort, state)
    new_users = importer.created_users(changes)
    accounts = accounts_of(client)
    if new_users and accounts.get("passwords") and not args.passwords and not args.dry_run:
        print(f"gpuhub cohort: this hub keeps passwords ({accounts['authenticator']}): "
              f"{len(new_users)} new users need one; give --passwords OUT.csv to receive them",
              file=sys.stderr)
        return 2
    if args.dry_run:
        for change in changes:
            print(change.line)
        print("dry run: nothing changed" if changes else "nothing changed")
        return 0
    importer.apply(client, changes, print)
    if new_users and accounts.get("passwords"):
        answer = client.request("POST", ACCOUNTS, {"users": new_users})
        write_passwords(args.passwords, answer["passwords"])
        print(f"wrote one-time passwords of {len(answer['passwords'])} new users to "
              f"{args.passwords} (mode 0600); each must choose a new one at the first login")
    elif new_users:
        print(f"no passwords: this hub's authenticator ({accounts['authenticator']}) "
              "signs users in itself")
    if not changes:
        print("nothing changed")
    return 0


def run_remove(args, cohort: Cohort, client: HubClient) -> int:
    changes = importer.remove_plan(cohort, importer.read_state(client, cohort))
    importer.apply(client, changes, print)
    if not changes:
        print("nothing changed")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gpuhub cohort", description=(
        "A class or a hackathon from one cohort file (YAML, users optionally in a CSV it "
        "names): hub/cohort/README.md."))
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    imp = commands.add_parser("import", help="create or update the cohort's users, groups "
                              "and instructors' role (idempotent)")
    imp.add_argument("file", help="the cohort file, e.g. ml-101.yaml")
    imp.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    imp.add_argument("--passwords", metavar="OUT.csv", help="new file (mode 0600) for the "
                     "one-time passwords of the users this run creates (NativeAuthenticator)")
    add_hub_arguments(imp)
    rem = commands.add_parser("remove", help="delete the cohort's users (volumes archived), "
                              "groups and role")
    rem.add_argument("file", help="the cohort file it was imported from")
    add_hub_arguments(rem)
    commands.add_parser("report", help="GPU-hours per team and more (gpuhub cohort report "
                        "--help)", add_help=False)
    return top


def main(argv: list[str]) -> int:
    if argv and argv[0] == "report":  # its own options (hub/cohort/report_cli.py)
        return importlib.import_module("gpuhub.hub.cohort.report_cli").main(argv[1:])
    args = parser().parse_args(argv)
    try:
        cohort = load(args.file)  # every problem of the file before any request
        client = HubClient.from_arguments(args)
        return (run_import if args.command == "import" else run_remove)(args, cohort, client)
    except CohortFileError as error:
        print(f"gpuhub cohort: {args.file} has {len(error.problems)} problem(s), nothing was "
              "changed:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except HubAPIError as error:
        print(f"gpuhub cohort: {error}", file=sys.stderr)
        return 1
