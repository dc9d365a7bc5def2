"""Long jobs count as active (issue 12, item 4) on a real hub with fake GPUs:
a server whose GPU is at work with nobody connected (a training job left in
tmux after the SSH client went away) keeps its ``last_activity`` moving, so
jupyterhub-idle-culler leaves it running; an idle one beside it is culled.
Once the GPU is idle, its activity stops moving.
"""

import time

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import PREFIX, container_of, gpus_of, wait_for
from gpuhub.hub.gpu_usage.reclaimer import epoch

IDLE_TIMEOUT = 40  # GPUHUB_IDLE_TIMEOUT: the culler checks every 20 s; GPU activity is reported every 10 s
REPORT_INTERVAL = IDLE_TIMEOUT // 4


def running(hub, name) -> bool:
    server = hub.server(name)
    return bool(server and server["ready"] and not server["pending"])


def last_activity(hub, name) -> float:
    return epoch(hub.server(name)["last_activity"])


def test_a_busy_gpu_keeps_its_server_from_the_idle_culler(start_hub, engine):
    gpus = FakeNVML.make_gpus(2, util_gpu=0)
    hub = start_hub(gpus, extra_env={
        "GPUHUB_USAGE_INTERVAL": "1",
        "GPUHUB_USAGE_CONTAINER_PREFIX": f"{PREFIX}-",
        "GPUHUB_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
    })
    hub.create_users("ann", "bob")
    for name in ("ann", "bob"):
        hub.start_server(name, {"gpus": 1})
    (ann_gpu,) = gpus_of(container_of(engine, "ann"))
    for gpu in gpus:  # ann's job runs on her GPU; nobody uses either server otherwise
        gpu.util_gpu = 80 if gpu.uuid == ann_gpu else 0
    hub.nvml.write(gpus)
    busy_from = time.time()

    seen = set()

    def bob_culled() -> bool:
        assert running(hub, "ann"), "ann's server was stopped while her GPU was at work"
        seen.add(last_activity(hub, "ann"))
        return not running(hub, "bob")

    wait_for(bob_culled, "the idle culler to stop bob's idle server", timeout=2 * IDLE_TIMEOUT + 40)
    while time.time() < busy_from + IDLE_TIMEOUT + IDLE_TIMEOUT / 2 + 5:  # past a culler check after the timeout
        bob_culled()
        time.sleep(2)
    assert running(hub, "ann")
    # reported as the GPU is seen at work, every interval: moving, and recent
    assert len({when for when in seen if when >= busy_from}) >= 3, sorted(seen)
    assert time.time() - last_activity(hub, "ann") <= REPORT_INTERVAL + 10

    # the job ends: the GPU idles, and the server's activity no longer moves
    for gpu in gpus:
        gpu.util_gpu = 0
    hub.nvml.write(gpus)
    time.sleep(3)  # a sample or two taken while the GPU was still busy may yet be reported
    settled = last_activity(hub, "ann")
    time.sleep(REPORT_INTERVAL + 5)
    assert last_activity(hub, "ann") == settled
