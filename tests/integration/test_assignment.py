"""GPU assignment under pressure: bursts, hub restarts, dead containers, foreign jobs."""

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.fakes.fake_gpus import FakeMIG, FakeNVML, FakeProcess, fake_uuid
from tests.integration.hubrig import NO_QUEUE, container_of, gpus_of, wait_for

GIB = 1 << 30


def refusal(response) -> str:
    assert response.status_code == 409, f"{response.status_code} {response.text}"
    return response.json()["message"]


def test_fifty_users_at_once_over_eight_gpus(start_hub, engine):
    gpus = FakeNVML.make_gpus(8)
    hub = start_hub(gpus, extra_config=NO_QUEUE)
    users = [f"u{i:02d}" for i in range(50)]
    hub.create_users(*users)

    def spawn(name):
        response = hub.spawn(name, {"gpus": 1})
        if response.status_code in (201, 202):
            return name, *hub.wait_spawn(name)
        return name, "refused", refusal(response)

    with ThreadPoolExecutor(len(users)) as pool:
        outcomes = list(pool.map(spawn, users))

    ready = [name for name, state, _ in outcomes if state == "ready"]
    refused = [message for _, state, message in outcomes if state != "ready"]
    assert len(ready) == 8, outcomes
    assert len(refused) == 42
    for message in refused:
        assert "only 0 of the 8 GPUs on this host are free right now" in message, message
    held = [uuid for name in ready for uuid in gpus_of(container_of(engine, name))]
    assert sorted(held) == sorted(gpu.uuid for gpu in gpus)  # each GPU exactly once


def test_hub_restart_keeps_assignments(start_hub, engine):
    gpus = FakeNVML.make_gpus(3)
    hub = start_hub(gpus, extra_config=NO_QUEUE)
    hub.create_users("ann", "bob", "cid", "dan")
    hub.start_server("ann", {"gpus": 1})
    hub.start_server("bob", {"gpus": 1})
    before = {name: gpus_of(container_of(engine, name)) for name in ("ann", "bob")}
    ann_token = hub.user_token("ann")

    hub.kill()  # SIGKILL: no clean-up of any kind
    hub.start()

    assert hub.server("ann")["ready"] and hub.server("bob")["ready"]
    status = hub.api("GET", "/users/ann/tokens", token=ann_token)
    assert status.status_code == 200
    # Still routed through the (new) proxy, same container, same GPUs.
    reply = requests.get(
        f"{hub.url}/user/ann/api/status", headers={"Authorization": f"token {ann_token}"}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert {name: gpus_of(container_of(engine, name)) for name in before} == before

    hub.start_server("cid", {"gpus": 1})
    (cid_gpu,) = gpus_of(container_of(engine, "cid"))
    assert cid_gpu not in before["ann"] + before["bob"]
    assert "only 0 of the 3 GPUs" in refusal(hub.spawn("dan", {"gpus": 1}))


def test_container_killed_from_outside_frees_its_gpu(start_hub, engine):
    gpus = FakeNVML.make_gpus(1)
    hub = start_hub(gpus, extra_config=NO_QUEUE)
    hub.create_users("ann", "bob")
    hub.start_server("ann", {"gpus": 1})
    assert "only 0 of the 1 GPUs" in refusal(hub.spawn("bob", {"gpus": 1}))

    container_of(engine, "ann").kill()
    hub.start_server("bob", {"gpus": 1})
    assert gpus_of(container_of(engine, "bob")) == [gpus[0].uuid]
    # The hub notices ann's server is gone, and does not give ann bob's GPU back.
    wait_for(lambda: hub.server("ann") is None, "hub to notice ann's server died", timeout=90)
    assert "only 0 of the 1 GPUs" in refusal(hub.spawn("ann", {"gpus": 1}))


def test_gpu_with_foreign_process_or_memory_is_not_handed_out(start_hub, engine):
    gpus = FakeNVML.make_gpus(3)
    gpus[1].mem_used = 3 * GIB  # e.g. a zombie context NVML cannot attribute
    hub = start_hub(gpus, processes=[FakeProcess(gpus[0].uuid, pid=4242, mem=GIB)], extra_config=NO_QUEUE)
    hub.create_users("ann", "bob")
    hub.start_server("ann", {"gpus": 1})
    assert gpus_of(container_of(engine, "ann")) == [gpus[2].uuid]
    message = refusal(hub.spawn("bob", {"gpus": 1}))
    assert "2 busy with jobs outside the hub" in message
    assert f"GPU 0 ({gpus[0].uuid}) not assigned: 1 process(es)" in hub.log_path.read_text()

    # The foreign job ends: the GPU is handed out again.
    hub.nvml.write(gpus)
    hub.start_server("bob", {"gpus": 1})
    assert gpus_of(container_of(engine, "bob")) == [gpus[0].uuid]


def test_lost_gpu_is_never_assigned_and_no_nvml_means_cpu_only(start_hub, engine):
    gpus = FakeNVML.make_gpus(2)
    gpus[0].lost = True
    hub = start_hub(gpus, extra_config=NO_QUEUE)
    hub.create_users("ann", "bob")
    hub.start_server("ann", {"gpus": 1})
    assert gpus_of(container_of(engine, "ann")) == [gpus[1].uuid]
    assert "only 0 of the 1 GPUs" in refusal(hub.spawn("bob", {"gpus": 1}))


def test_without_nvml_every_spawn_works_with_zero_gpus(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(2), extra_config=NO_QUEUE)
    hub.stop()
    hub.nvml.write(FakeNVML.make_gpus(2), driver_loaded=False)
    hub.start()
    hub.create_users("ann", "bob")
    hub.start_server("ann")  # no options: default 1 GPU capped by 0 usable → CPU-only
    assert gpus_of(container_of(engine, "ann")) == []
    message = refusal(hub.spawn("bob", {"gpus": 1}))
    assert "cannot use its GPUs right now" in message and "Start your server with 0 GPUs" in message
    hub_lines = [line for line in hub.log_path.read_text().splitlines() if " JupyterHub " in line]
    assert sum("Running CPU-only" in line for line in hub_lines) == 1  # once, not per spawn


def test_mig_devices_are_handed_out_one_per_server(start_hub, engine):
    gpus = FakeNVML.make_gpus(1, name="NVIDIA A100-SXM4-80GB")
    gpus[0].mig = [
        FakeMIG(fake_uuid("MIG", i), "NVIDIA A100 MIG 3g.40gb", 40 * GIB)
        for i in range(2)
    ]
    hub = start_hub(gpus, extra_config=NO_QUEUE)
    hub.create_users("ann", "bob", "cid")
    hub.start_server("ann", {"gpus": 1})
    hub.start_server("bob", {"gpus": 1})
    held = gpus_of(container_of(engine, "ann")) + gpus_of(container_of(engine, "bob"))
    assert sorted(held) == sorted(mig.uuid for mig in gpus[0].mig)  # never the parent GPU
    assert "only 0 of the 2 GPUs" in refusal(hub.spawn("cid", {"gpus": 1}))
