"""Fair GPU access in the allocator: shared GPUs for a class, GPU model choice,
and a GPU quota that counts all of a user's servers (issue 10).

One hub per host setup; each test walks through its cases on that hub.
"""

from concurrent.futures import ThreadPoolExecutor

import requests

from tests.fakes.fake_gpus import FakeGPU, FakeNVML, fake_uuid
from tests.integration.hubrig import PREFIX, Progress, gpus_of, wait_for

SHARE_LABEL = "gpuhub.gpu_share"


def containers_of(engine, user: str) -> list:
    return [
        c for c in engine.containers.list(all=True, filters={"label": f"gpuhub.user={user}"})
        if c.name.startswith(f"{PREFIX}-")
    ]


def holds_gpu(engine, name: str) -> bool:
    return bool([uuid for c in containers_of(engine, name) for uuid in gpus_of(c)])


def test_a_class_shares_gpus_and_exclusive_servers_never_join_them(start_hub, engine):
    gpus = FakeNVML.make_gpus(2)
    hub = start_hub(gpus, extra_config="""
        c.GPUDockerSpawner.gpu_share = 2
        c.GPUDockerSpawner.group_overrides["20-exclusive"] = {
            "groups": ["exclusive"], "spawner_override": {"gpu_share": 1}}
    """)
    students = [f"s{i}" for i in range(5)]
    hub.create_users(*students)
    hub.create_users("rex", groups=("exclusive",))

    def spawn(name):
        response = hub.spawn(name, {"gpus": 1})
        assert response.status_code in (201, 202), response.text
        return hub.wait_spawn(name)[0]

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(spawn, students[:4])) == ["ready"] * 4

    held = {}
    for name in students[:4]:
        (container,) = containers_of(engine, name)
        assert container.labels[SHARE_LABEL] == "2"
        env = container.attrs["Config"]["Env"]
        assert "GPUHUB_GPU_SHARE=2" in env and "GPUHUB_GPU_MEMORY_FRACTION=0.5" in env
        for uuid in gpus_of(container):
            held.setdefault(uuid, []).append(name)
    assert sorted(held) == sorted(gpu.uuid for gpu in gpus)
    assert all(len(sharers) == 2 for sharers in held.values()), held  # each GPU in exactly 2

    # the usage page tells a student their GPU is shared
    def my_usage():
        response = requests.get(f"{hub.url}/services/gpu-usage/api/me", timeout=30,
                                headers={"Authorization": f"token {hub.user_token('s1')}"})
        servers = response.json()["servers"] if response.status_code == 200 else []
        return servers and servers[0]["gpus"] and servers[0]

    assert wait_for(my_usage, "s1's usage page to list its GPU")["share"] == 2

    # A fifth student and an exclusive user find no place: both wait in line, holding nothing.
    lines = {}
    for name, place in (("s4", 1), ("rex", 2)):  # one after the other: their order is known
        assert hub.spawn(name, {"gpus": 1}).status_code == 202
        lines[name] = Progress(hub, name)
        wait_for(lambda: lines[name].position() == place, f"{name} at position {place}", timeout=60)
    assert "only 0 of the 2 GPUs" not in lines["s4"].messages()[-1]
    assert not holds_gpu(engine, "s4") and not holds_gpu(engine, "rex")

    # One student stops: the half-used GPU goes to the student in line, never to
    # the exclusive user, who moves up and keeps waiting for a GPU nobody shares.
    hub.stop_server("s0")
    assert hub.wait_spawn("s4")[0] == "ready"
    (s4,) = containers_of(engine, "s4")
    s0_gpu = next(u for u, names in held.items() if "s0" in names)
    assert gpus_of(s4) == [s0_gpu]
    wait_for(lambda: lines["rex"].position() == 1, "rex to move up", timeout=30)
    assert not holds_gpu(engine, "rex")

    # Both students on the other GPU stop: nobody shares it now, and rex gets it whole.
    other_gpu = next(u for u in held if u != s0_gpu)
    for name in held[other_gpu]:
        hub.stop_server(name)
    assert hub.wait_spawn("rex")[0] == "ready"
    (rex,) = containers_of(engine, "rex")
    assert gpus_of(rex) == [other_gpu] and rex.labels[SHARE_LABEL] == "1"
    for line in lines.values():
        line.close()


H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"


def test_models_and_a_quota_over_all_of_a_users_servers(start_hub, engine):
    gpus = [FakeGPU(0, fake_uuid("GPU", 0), name=A100),
            FakeGPU(1, fake_uuid("GPU", 1), name=H100),
            FakeGPU(2, fake_uuid("GPU", 2), name=H100)]
    # the queue (where there is one) stays on: being over quota is refused, never queued
    hub = start_hub(gpus, extra_config="""
        c.JupyterHub.allow_named_servers = True
        c.GPUDockerSpawner.gpu_quota = 1
        c.GPUDockerSpawner.group_overrides["20-h100"] = {
            "groups": ["h100"], "spawner_override": {"gpu_models": ["H100"]}}
    """)
    hub.create_users("ann", "bob")
    hub.create_users("hal", groups=("h100",))

    # the model asked for, by part of its name in any case
    hub.start_server("ann", {"gpus": 1, "gpu_model": "a100"})
    (ann,) = containers_of(engine, "ann")
    assert gpus_of(ann) == [gpus[0].uuid]

    # an unknown model: 400 with the models there are; a group's models: its members' list
    unknown = hub.spawn("bob", {"gpus": 1, "gpu_model": "V100"})
    assert unknown.status_code == 400, unknown.text
    assert unknown.json()["message"] == (
        f"gpu_model must be part of the name of a GPU model you may use: {A100}, {H100}; got 'V100'."
    )
    refused = hub.spawn("hal", {"gpus": 1, "gpu_model": "A100"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == (
        f"gpu_model must be part of the name of a GPU model you may use: {H100} "
        f"(this host has: {A100}, {H100}); got 'A100'."
    )
    hub.start_server("hal", {"gpus": 1})  # any model hal may use: never the A100
    (hal,) = containers_of(engine, "hal")
    assert gpus_of(hal)[0] in (gpus[1].uuid, gpus[2].uuid)
    assert not containers_of(engine, "bob")

    # the form offers each model with how many are free
    page = hub.login("bob").get(f"{hub.url}/hub/spawn/bob", timeout=30).text
    assert f'<option value="{A100}">{A100} (0 of 1 free)</option>' in page
    assert f'<option value="{H100}">{H100} (1 of 2 free)</option>' in page

    # quota 1 over all servers: ann's second (named) server is refused, never given a GPU
    second = hub.api("POST", "/users/ann/servers/second", json={"gpus": 1})
    assert second.status_code == 409, second.text
    assert second.json()["message"] == (
        "You asked for 1 GPU(s), but your quota is 1 GPU(s) over all your servers and your "
        "other servers hold 1 (your default server: 1). Stop one of them, or ask for fewer "
        "GPUs (0 at most)."
    )
    assert [gpus_of(c) for c in containers_of(engine, "ann")] == [[gpus[0].uuid]]
    cpu_only = hub.api("POST", "/users/ann/servers/second", json={"gpus": 0})
    assert cpu_only.status_code in (201, 202), cpu_only.text  # a CPU-only one is fine

    # ann's default server dies from outside: the quota looks again, fresh, before refusing
    ann.kill()
    third = hub.api("POST", "/users/ann/servers/third", json={"gpus": 1})
    assert third.status_code in (201, 202), third.text
