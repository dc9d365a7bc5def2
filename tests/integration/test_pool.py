"""The GPU pool off the ordinary path: several hubs on one engine, kept
containers, changing names, hub crashes, slow Docker calls, revoked images."""

import http.server
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import IMAGE, NO_QUEUE, PREFIX, container_of, gpus_of, other_prefix, wait_for


def live_gpu_holders(engine) -> list[tuple[str, str]]:
    """(container, GPU) for every GPU named on a live container of this test run."""
    held = []
    for container in engine.containers.list(filters={"label": "gpuhub.gpus"}):
        if container.name.startswith((f"{PREFIX}-", f"{other_prefix()}-")):
            held += [(container.name, uuid) for uuid in gpus_of(container)]
    return held


def test_two_hubs_on_one_engine_share_no_gpu_volume_or_container(start_hub, engine):
    gpus = FakeNVML.make_gpus(3)
    first = start_hub(gpus, extra_config=NO_QUEUE)
    second = start_hub(gpus, name="second", prefix=other_prefix(), extra_config=NO_QUEUE)
    users = [f"u{i}" for i in range(4)]
    for hub in (first, second):
        hub.create_users(*users)

    def spawn(hub_and_user):
        hub, name = hub_and_user
        response = hub.spawn(name, {"gpus": 1})
        if response.status_code in (201, 202):
            return hub.wait_spawn(name)[0]
        return f"refused {response.status_code}"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(spawn, [(hub, name) for hub in (first, second) for name in users]))

    assert outcomes.count("ready") == 3, outcomes  # 3 GPUs: 3 servers, across both hubs
    assert outcomes.count("refused 409") == 5, outcomes
    held = [uuid for _, uuid in live_gpu_holders(engine)]
    assert sorted(held) == sorted(gpu.uuid for gpu in gpus)  # each GPU exactly once

    # Same user name on both hubs: two containers, two volumes, two labels.
    for hub in (first, second):
        if hub.server("u0") is None:
            hub.start_server("u0", {"gpus": 0})
    mine, theirs = engine.containers.get(f"{PREFIX}-u0"), engine.containers.get(f"{other_prefix()}-u0")
    assert mine.labels["gpuhub.hub"] != theirs.labels["gpuhub.hub"]
    volumes = {m["Name"] for c in (mine, theirs) for m in c.attrs["Mounts"]}
    assert volumes == {f"{PREFIX}-user-u0", f"{other_prefix()}-user-u0"}
    assert engine.volumes.get(f"{PREFIX}-user-u0").attrs["Labels"]["gpuhub.hub"] == mine.labels["gpuhub.hub"]


def test_a_hub_refuses_a_prefix_another_hub_uses(start_hub, engine):
    first = start_hub(FakeNVML.make_gpus(1))
    first.create_users("ann")
    first.start_server("ann", {"gpus": 0})
    with pytest.raises(RuntimeError) as refused:
        start_hub(FakeNVML.make_gpus(1), name="intruder")  # same prefix, own state dir
    assert f"already uses the name prefix '{PREFIX}'" in str(refused.value)
    assert f"{PREFIX}-ann" in str(refused.value) and "GPUHUB_PREFIX" in str(refused.value)
    assert first.server("ann")["ready"]


def test_name_template_with_image_gives_the_gpu_back_after_stop(start_hub, engine):
    gpus = FakeNVML.make_gpus(1)
    hub = start_hub(gpus, extra_config='c.GPUDockerSpawner.name_template = "{prefix}-{username}-{imagename}"')
    hub.create_users("ann", "bob")
    hub.start_server("ann", {"gpus": 1})
    assert [name for name, _ in live_gpu_holders(engine)] == [
        f"{PREFIX}-ann-{IMAGE.replace('/', '-').replace(':', '-')}"
    ]
    hub.stop_server("ann")
    hub.start_server("bob", {"gpus": 1})
    assert [uuid for _, uuid in live_gpu_holders(engine)] == [gpus[0].uuid]


def test_kept_containers_never_put_two_servers_on_one_gpu(start_hub, engine):
    gpus = FakeNVML.make_gpus(2)
    hub = start_hub(gpus, extra_config="c.GPUDockerSpawner.remove = False")
    hub.create_users("ann", "bob")
    hub.start_server("ann", {"gpus": 1})
    (ann_gpu,) = gpus_of(container_of(engine, "ann"))
    hub.stop_server("ann")  # ann's container is kept, stopped, still labelled with her GPU
    hub.start_server("bob", {"gpus": 1})
    (bob_gpu,) = gpus_of(container_of(engine, "bob"))

    hub.start_server("ann", {"gpus": 1})  # her old GPU is free only if bob did not get it
    (ann_again,) = gpus_of(container_of(engine, "ann"))
    assert ann_again != bob_gpu
    assert ann_again == ({g.uuid for g in gpus} - {bob_gpu}).pop()
    held = [uuid for _, uuid in live_gpu_holders(engine)]
    assert sorted(held) == sorted({ann_again, bob_gpu})

    # Kept and re-used when the claim matches: same container, same GPU.
    kept_id = container_of(engine, "ann").id
    hub.stop_server("ann")
    hub.start_server("ann", {"gpus": 1})
    assert container_of(engine, "ann").id == kept_id
    assert gpus_of(container_of(engine, "ann")) == [ann_again]


def test_restarted_hub_removes_what_no_server_of_it_runs(start_hub, engine):
    gpus = FakeNVML.make_gpus(2)
    hub = start_hub(gpus, extra_config="c.GPUDockerSpawner.reconcile_interval = 2")
    hub.create_users("ann", "bob")
    hub.start_server("ann", {"gpus": 1})
    hub_id = container_of(engine, "ann").labels["gpuhub.hub"]
    # What a hub killed mid-spawn leaves: a container of this hub with a GPU,
    # that no server of the hub accounts for.
    leftover = engine.containers.run(
        IMAGE, ["sleep", "600"], name=f"{PREFIX}-ghost", detach=True, user="1000",
        labels={"gpuhub.hub": hub_id, "gpuhub.user": "ghost", "gpuhub.server": "",
                "gpuhub.gpus": ({g.uuid for g in gpus} - set(gpus_of(container_of(engine, "ann")))).pop()},
    )
    hub.kill()
    hub.start()
    assert hub.server("ann")["ready"]
    wait_for(lambda: not engine.containers.list(all=True, filters={"id": leftover.id}),
             "the reconcile to remove the leftover", timeout=60)
    assert "runs for no server of this hub" in hub.log_tail(400)
    hub.start_server("bob", {"gpus": 1})  # the leftover's GPU is free again
    assert container_of(engine, "ann").status == "running"  # the hub's own server stays


def test_hub_killed_mid_spawn_leaves_no_gpu_claimed_by_nobody(start_hub, engine):
    gpus = FakeNVML.make_gpus(1)
    hub = start_hub(gpus, extra_config="c.GPUDockerSpawner.reconcile_interval = 2")
    hub.create_users("ann", "bob")
    assert hub.spawn("ann", {"gpus": 1}).status_code in (201, 202)
    wait_for(lambda: engine.containers.list(all=True, filters={"name": f"^{PREFIX}-ann$"}),
             "ann's container to exist", timeout=60)
    hub.kill()
    hub.start()

    def settled():
        server, held = hub.server("ann"), live_gpu_holders(engine)
        # Either the restarted hub runs ann's server on the GPU, or nobody holds it.
        return (server is not None and server["ready"] and held) or (server is None and not held)

    wait_for(settled, "the GPU to be held by a server the hub runs, or by nobody", timeout=90)
    if hub.server("ann") is None:
        hub.start_server("bob", {"gpus": 1})


class StallingRegistry(http.server.ThreadingHTTPServer):
    """A registry on loopback that answers its ping, then holds every image
    request until released (a pull of gigabytes, as the hub sees it)."""

    def __init__(self):
        self.release = threading.Event()
        self.asked = threading.Event()
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/v2/":
                    self.send_response(200)
                    self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                registry.asked.set()
                registry.release.wait(300)
                self.send_error(404)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_a_slow_pull_and_a_refusal_do_not_hold_up_other_spawns(start_hub, engine):
    registry = StallingRegistry()
    slow_image = f"127.0.0.1:{registry.server_port}/stalled:latest"
    hub = start_hub(FakeNVML.make_gpus(1), extra_config=f"""
        {NO_QUEUE.strip()}
        c.GPUDockerSpawner.allowed_images = [{IMAGE!r}, {slow_image!r}]
        c.GPUDockerSpawner.image_registries = ["127.0.0.1:{registry.server_port}"]
    """)
    hub.create_users("puller", "gpu", "late", "cpu")
    try:
        hub.start_server("gpu", {"gpus": 1})  # every GPU held now
        assert hub.spawn("puller", {"gpus": 0, "image": slow_image}).status_code in (201, 202)
        assert registry.asked.wait(60), "the engine never asked the registry"
        # While the pull hangs on a Docker thread: a refusal, then a CPU-only spawn.
        refused = hub.spawn("late", {"gpus": 1})
        assert refused.status_code == 409, refused.text
        hub.start_server("cpu", {"gpus": 0})
        assert not registry.release.is_set() and hub.server("puller")["pending"] == "spawn"
    finally:
        registry.release.set()
        registry.shutdown()
        registry.server_close()  # later requests are refused at once: the pull fails
    assert hub.wait_spawn("puller")[0] == "failed"


def test_an_image_granted_by_a_group_ends_with_the_membership(start_hub, engine):
    engine.images.get(IMAGE).tag(f"{PREFIX}-granted", "v1")
    granted = f"{PREFIX}-granted:v1"
    hub = start_hub(FakeNVML.make_gpus(1), extra_config=f"""
        c.GPUDockerSpawner.group_overrides = {{
            "granted": {{"groups": ["vision"],
                         "spawner_override": {{"allowed_images": [{IMAGE!r}, {granted!r}]}}}},
        }}
    """)
    try:
        hub.create_users("ann", groups=("vision",))
        hub.start_server("ann", {"gpus": 0, "image": granted})
        assert container_of(engine, "ann").attrs["Config"]["Image"] == granted
        hub.stop_server("ann")
        hub.api("DELETE", "/groups/vision/users", json={"users": ["ann"]})
        refused = hub.spawn("ann", {"gpus": 0, "image": granted})
        assert refused.status_code == 400 and "Unknown option(s): 'image'" in refused.json()["message"]
        hub.start_server("ann", {"gpus": 0})  # no image named: the configured one, not the granted
        assert container_of(engine, "ann").attrs["Config"]["Image"] == IMAGE
    finally:
        engine.images.remove(granted)


def test_callable_allowed_images(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(1), extra_config=f"""
        def allowed(spawner):
            return {{"Test notebook": {IMAGE!r}, "Also test": {IMAGE!r}}}
        c.GPUDockerSpawner.allowed_images = allowed
    """)
    hub.create_users("ann")
    hub.start_server("ann", {"gpus": 0, "image": "Also test"})
    assert container_of(engine, "ann").attrs["Config"]["Image"] == IMAGE
    form = hub.login("bob").get(f"{hub.url}/hub/spawn", timeout=30)
    assert form.status_code == 200 and "Also test" in form.text
