"""NVML trouble on a real hub: a wedged driver, a driver loaded after the hub.

The spawn form keeps answering, GPU spawns fail with a message that names
the problem in plain words, CPU-only servers start, and GPUs come back
without a hub restart. The fake NVML hangs or fails at the hardware
boundary only (tests/fakes/README.md).
"""

import html
import re
import time

import requests

from gpuhub.spawner.inventory import DEFAULT_TIMEOUT
from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import container_of, gpus_of, wait_for

# A loaded machine answers slower: the margin keeps this from being a timing
# test. Without the NVML timeout the form never answers at all.
FORM_ANSWER_LIMIT = DEFAULT_TIMEOUT + 50
WEDGED = "NVML did not answer within 10 s (a GPU or the driver may be wedged)"
NOT_LOADED = "the NVIDIA driver is not loaded"


def spawn_form(hub, session: requests.Session) -> str:
    """The spawn page's text as a person reads it (tags dropped, spaces collapsed)."""
    response = session.get(f"{hub.url}/hub/spawn", timeout=FORM_ANSWER_LIMIT)
    assert response.status_code == 200, response.text
    options = re.findall(r'<option value="(\d+)"', response.text)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())
    return f"{text} [GPU choices: {','.join(options)}]"


def form_saying(hub, session: requests.Session, text: str, timeout: float) -> str:
    """Reload the spawn page until it says ``text``; fail showing the last page."""
    last = [""]

    def says():
        last[0] = spawn_form(hub, session)
        return text in last[0]

    try:
        wait_for(says, f"the spawn form to say {text!r}", timeout=timeout)
    except TimeoutError as error:
        raise AssertionError(f"{error}; it said: {last[0]}") from None
    return last[0]


def refused_spawn(hub, name: str, options: dict) -> str:
    """Ask for a server that must be refused; return what the user is told.

    The hub answers the POST with the error when the spawn fails fast, and
    otherwise reports it on the progress stream: either way one message.
    """
    response = hub.spawn(name, options)
    if response.status_code in (201, 202):
        state, message = hub.wait_spawn(name)
        assert state == "failed", message
        return message
    assert response.status_code == 409, response.text
    return response.json()["message"]


def hub_log_lines(hub, text: str) -> list[str]:
    """The hub's own log lines (not the gpu-usage service's) containing text."""
    return [line for line in hub.log_tail(100_000).splitlines()
            if text in line and " JupyterHub " in line]


def test_wedged_nvml_form_answers_spawns_fail_clearly_cpu_works_then_recovers(
    start_hub, engine
):
    gpus = FakeNVML.make_gpus(2)
    hub = start_hub(gpus)
    hub.create_users("bob")
    ann = hub.login("ann")
    assert "2 of 2 GPUs free right now" in spawn_form(hub, ann)

    hub.nvml.write(gpus, hang=True)
    try:
        # Each form request answers (within FORM_ANSWER_LIMIT); the first may
        # still show the reading of a moment ago, shared by nearby requests.
        started = time.monotonic()
        form = form_saying(hub, ann, WEDGED, timeout=2 * FORM_ANSWER_LIMIT)
        print(f"spawn form with NVML wedged answered in {time.monotonic() - started:.1f} s")
        assert f"No GPUs are available on this hub right now ({WEDGED})" in form
        assert "[GPU choices: 0]" in form  # only CPU-only is offered

        message = refused_spawn(hub, "ann", {"gpus": 1})
        assert WEDGED in message and "Start your server with 0 GPUs" in message
        assert hub.server("ann") is None

        hub.start_server("bob", {"gpus": 0})
        assert gpus_of(container_of(engine, "bob")) == []
    finally:
        hub.nvml.write(gpus)  # the driver answers again

    form_saying(hub, ann, "2 of 2 GPUs free right now", timeout=60)
    hub.start_server("ann", {"gpus": 1})
    assert gpus_of(container_of(engine, "ann"))[0] in {gpu.uuid for gpu in gpus}
    # Logged once for the episode, not once per form or spawn.
    assert len(hub_log_lines(hub, "NVML has not answered for 10 s")) == 1
    assert len(hub_log_lines(hub, "NVML answered again after")) == 1


def test_hub_started_before_the_driver_finds_gpus_without_restart(start_hub, engine):
    gpus = FakeNVML.make_gpus(1)
    hub = start_hub(gpus, driver_loaded=False)
    ann = hub.login("ann")
    assert f"No GPUs are available on this hub right now ({NOT_LOADED})" in spawn_form(hub, ann)
    assert NOT_LOADED in refused_spawn(hub, "ann", {"gpus": 1})
    hub_process = hub.proc.pid

    hub.nvml.write(gpus)  # the driver loads; init is retried 5 s after the failure, then less often
    form_saying(hub, ann, "1 of 1 GPUs free right now", timeout=120)
    hub.start_server("ann", {"gpus": 1})
    assert gpus_of(container_of(engine, "ann")) == [gpus[0].uuid]
    assert hub.proc.pid == hub_process and hub.proc.poll() is None
    assert hub_log_lines(hub, "NVML answers again (driver 550.54.15): 1 healthy GPU(s)")
