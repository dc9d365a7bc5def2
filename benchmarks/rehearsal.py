"""A class's first minute, rehearsed: N users log in through the real login page at
once and press Start on the spawn form with its defaults, as a browser does.

    .venv/bin/python benchmarks/rehearsal.py                  # own hub: 60 students, 8 fake GPUs
    .venv/bin/python benchmarks/rehearsal.py --hub-url https://hub.example.org \\
        --passwords ml-101-passwords.csv                      # a running hub, a cohort's accounts

Without ``--hub-url`` it starts tests/integration/hubrig.py's real hub with the
shipped defaults (timeouts, start concurrency, queue, NativeAuthenticator) on the
private test engine, imports a cohort of ``--users`` students with
``gpuhub cohort import`` (``gpu_quota: 1``, ``default_gpus: 1``, ``gpu_share``
from ``--share``) over ``--gpus`` fake GPUs, and takes the accounts from the
import's password file. With ``--hub-url``, the accounts come from
``--passwords`` (``username,password``, what ``gpuhub cohort import --passwords``
writes) and nothing but those users' own servers is touched.

Each user: GET /hub/login, POST the login form, GET /hub/spawn, POST its
defaults, follow the progress stream (what the spawn page shows). A user who
is ready works ``--session`` seconds, then stops the server, so queued users
get their turn. Printed: who got a GPU at once, who queued (highest position
seen), how long each waited for a GPU and for a ready server, and every failure
with the hub's words.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

POSITION = re.compile(r"position (\d+) in the queue")
ASSIGNED = re.compile(r"^Assigned GPU")
TIMEOUT = 60  # seconds per HTTP request, as a patient browser


class FormDefaults(HTMLParser):
    """The values a browser would post: each <select>'s selected option (else
    its first), each <input>'s value."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select:
            if "selected" in attrs or self._select not in self.fields:
                self.fields[self._select] = attrs.get("value") or ""
        elif tag == "input" and attrs.get("name") and attrs.get("type") not in ("checkbox", "radio", "submit"):
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


@dataclass
class Student:
    """One user's rehearsal: times in seconds from the moment everyone starts."""

    name: str
    logged_in: float | None = None
    clicked: float | None = None
    position: int | None = None  # highest queue position seen (None: never queued)
    assigned: float | None = None  # a GPU was assigned (the progress event)
    ready: float | None = None
    failure: str = ""
    messages: list[str] = field(default_factory=list)

    @property
    def gpu_wait(self) -> float | None:
        return None if self.assigned is None or self.clicked is None else self.assigned - self.clicked


def rehearse(base: str, name: str, password: str, session_s: float, t0: float) -> Student:
    student = Student(name)
    web = requests.Session()
    now = lambda: time.perf_counter() - t0  # noqa: E731
    try:
        web.get(f"{base}/hub/login", timeout=TIMEOUT)  # the _xsrf cookie
        answer = web.post(f"{base}/hub/login", data={"username": name, "password": password,
                          "_xsrf": web.cookies.get("_xsrf", "")}, allow_redirects=False, timeout=TIMEOUT)
        if answer.status_code != 302:
            student.failure = f"login: {answer.status_code}"
            return student
        student.logged_in = now()
        form = FormDefaults()
        form.feed(web.get(f"{base}/hub/spawn", timeout=TIMEOUT).text)
        student.clicked = now()
        answer = web.post(f"{base}/hub/spawn", data={**form.fields, "_xsrf": web.cookies.get("_xsrf", "")},
                          allow_redirects=False, timeout=TIMEOUT)
        if answer.status_code != 302:
            student.failure = f"spawn form: {answer.status_code} {answer.text[:200]}"
            return student
        follow(web, base, name, student, now)
        if student.ready is not None:
            time.sleep(session_s)
    except requests.RequestException as error:
        student.failure = f"{type(error).__name__}: {error}"
    finally:
        stop(web, base, name)
    return student


def follow(web: requests.Session, base: str, name: str, student: Student, now) -> None:
    """Read the spawn's progress stream (the spawn page's EventSource) to its end."""
    with web.get(f"{base}/hub/api/users/{name}/server/progress", stream=True, timeout=None) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            message = event.get("message", "")
            student.messages.append(message)
            found = POSITION.search(message)
            if found:
                student.position = max(student.position or 0, int(found.group(1)))
            if ASSIGNED.search(message) and student.assigned is None:
                student.assigned = now()
            if event.get("ready"):
                student.ready = now()
                return
            if event.get("failed"):
                student.failure = message
                return
    student.failure = student.failure or "the progress stream ended without ready or failed"


def stop(web: requests.Session, base: str, name: str) -> None:
    """Stop the user's own server with their own session (cookie + XSRF header)."""
    try:
        web.delete(f"{base}/hub/api/users/{name}/server", timeout=TIMEOUT,
                   headers={"X-XSRFToken": web.cookies.get("_xsrf", "")})
    except requests.RequestException:
        pass


def read_passwords(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        return [(row["username"], row["password"]) for row in csv.DictReader(f)]


def report(students: list[Student], wall: float, gpus_note: str) -> str:
    ready = [s for s in students if s.ready is not None]
    queued = [s for s in students if s.position is not None]
    at_once = [s for s in ready if s.position is None]
    failed = [s for s in students if s.failure]
    waits = sorted(s.gpu_wait for s in queued if s.gpu_wait is not None)
    readies = sorted(s.ready - s.clicked for s in ready)
    logins = sorted(s.logged_in for s in students if s.logged_in is not None)

    def spread(values):
        if not values:
            return "–"
        p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
        return f"median {statistics.median(values):.1f} s, p95 {p95:.1f} s, max {values[-1]:.1f} s"

    lines = [
        f"rehearsal: {len(students)} users, {gpus_note}; {wall:.0f} s in all",
        "",
        "| | users | times |",
        "|---|---|---|",
        f"| logged in through the login page | {len(logins)} of {len(students)} | last at {logins[-1]:.1f} s |"
        if logins else f"| logged in | 0 of {len(students)} | |",
        f"| got a GPU at once | {len(at_once)} | |",
        f"| queued (highest position {max((s.position for s in queued), default=0)}) | {len(queued)} "
        f"| wait for a GPU: {spread(waits)} |",
        f"| ready | {len(ready)} of {len(students)} | click to ready: {spread(readies)} |",
        f"| failed | {len(failed)} | |",
    ]
    for s in failed:
        lines.append(f"  {s.name}: {s.failure}")
    return "\n".join(lines)


def own_hub(stack: ExitStack, args, workdir: Path) -> tuple[str, list[tuple[str, str]], str]:
    """Start the rig's hub (shipped defaults) and import a cohort of students into it."""
    from benchmarks.rig import OURS, engine
    from gpuhub.hub.cohort.names import ORGANIZER_SCOPES
    from tests.fakes.fake_gpus import FakeNVML
    from tests.integration.hubrig import Hub

    stack.enter_context(engine())
    nvml = FakeNVML(workdir / "gpus.state")
    nvml.write(FakeNVML.make_gpus(args.gpus))
    hub = Hub(workdir=workdir / "hub", nvml=nvml, extra_config=OURS).start()
    stack.callback(hub.stop)
    students = [f"student-{i:02d}" for i in range(args.users)]
    cohort = workdir / "rehearsal.yaml"
    cohort.write_text(
        "cohort: rehearsal\ngpu_quota: 1\ndefault_gpus: 1\n"
        f"gpu_share: {args.share}\nusers: [{', '.join(students)}]\n"
    )
    passwords = workdir / "passwords.csv"
    token = hub.api("POST", "/users/admin/tokens", json={"scopes": ORGANIZER_SCOPES}).json()["token"]
    subprocess.run(
        [sys.executable, "-m", "gpuhub.hub.cli", "cohort", "import", str(cohort),
         "--passwords", str(passwords), "--hub-url", hub.url, "--token", token],
        check=True, stdout=subprocess.DEVNULL,
    )
    note = f"{args.gpus} fake GPUs" + (f" shared by {args.share}" if args.share > 1 else "")
    return hub.url, read_passwords(passwords), note


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hub-url", help="a running hub (default: start the test rig's hub)")
    p.add_argument("--passwords", type=Path, help="username,password CSV (with --hub-url)")
    p.add_argument("--users", type=int, default=60, help="students (own hub; default 60)")
    p.add_argument("--gpus", type=int, default=8, help="fake GPUs (own hub; default 8)")
    p.add_argument("--share", type=int, default=1, help="servers per GPU (own hub; default 1)")
    p.add_argument("--session", type=float, default=60, help="seconds each ready user works (default 60)")
    args = p.parse_args(argv)
    if bool(args.hub_url) != bool(args.passwords):
        p.error("--hub-url and --passwords go together")
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="gpuhub-rehearsal-") as tmp:
        if args.hub_url:
            base, accounts, note = args.hub_url.rstrip("/"), read_passwords(args.passwords), "the hub's GPUs"
        else:
            base, accounts, note = own_hub(stack, args, Path(tmp))
        t0 = time.perf_counter()
        barrier = threading.Barrier(len(accounts))

        def one(account):
            barrier.wait()  # everyone at once, as a class told "log in now"
            return rehearse(base, *account, args.session, t0)

        with ThreadPoolExecutor(len(accounts)) as pool:
            students = list(pool.map(one, accounts))
        print(report(students, time.perf_counter() - t0, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
