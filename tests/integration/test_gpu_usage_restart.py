"""A hub killed with SIGKILL, then started again, gets a gpu-usage service of
its own: exactly one service process for the state dir, answering with the
new hub's tokens. Once the old service notices its hub is gone; once (the old
service frozen with SIGSTOP, so it cannot) the new one takes it over through
the pid file in the state dir."""

import os
import signal
from pathlib import Path

import requests

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import wait_for

USAGE = "/services/gpu-usage"


def usage_processes(state_dir: Path) -> list[int]:
    """Live gpu-usage processes serving ``state_dir`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        serves = (f"={state_dir}".encode() in cmdline
                  or f"GPUHUB_STATE_DIR={state_dir}\0".encode() in environ)
        if b"gpuhub.hub.gpu_usage" in cmdline and serves and state != "Z":
            found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def me(hub, token):
    return requests.get(f"{hub.url}{USAGE}/api/me", headers={"Authorization": f"token {token}"},
                        timeout=30)


def answers_for_the_new_hub(hub) -> int:
    """The one service for the state dir: a child of the running hub, answering
    200 to a token the running hub just made. Returns its PID."""
    token = hub.user_token("ann")
    wait_for(lambda: me(hub, token).status_code == 200, "the service to answer for the new hub",
             timeout=60)
    state_dir = hub.workdir / "state"
    wait_for(lambda: len(usage_processes(state_dir)) == 1, "one gpu-usage process", timeout=30)
    (pid,) = usage_processes(state_dir)
    assert parent_of(pid) == hub.proc.pid
    response = me(hub, token)
    assert response.status_code == 200 and response.json()["user"] == "ann"
    return pid


def test_a_restarted_hub_gets_a_working_service_of_its_own(start_hub):
    hub = start_hub(FakeNVML.make_gpus(2))
    hub.create_users("ann")
    first = answers_for_the_new_hub(hub)

    # The hub dies; its service notices (or is taken over), the next hub's answers.
    hub.kill()
    hub.start()
    second = answers_for_the_new_hub(hub)
    assert second != first

    # The old service cannot notice (stopped): the new one stops it by its pid file.
    os.kill(second, signal.SIGSTOP)
    hub.kill()
    hub.start()
    third = answers_for_the_new_hub(hub)
    assert third != second
    assert "older gpu-usage service (pid %d)" % second in hub.log_path.read_text()
