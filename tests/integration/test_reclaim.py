"""GPU idle reclaim, leases and the idle culler on one real hub, with fake GPUs.

Four servers start together: ann and bob hold a GPU each (idle timeout
20 s), cid holds one on a 60 s lease (group ``leased``), dan is CPU-only;
every GPU is held, so eve waits in the GPU queue, and gets ann's when ann's
is reclaimed.
Every GPU runs at 80 % until ann's drops to 0; ann's activity, reported
through the hub's API as her server does, keeps her server for a while, then
she is reclaimed with her files kept. bob's busy GPU keeps his server past
its idle timeout with no activity. cid is warned in the hub UI, then stopped
when the lease ends. jupyterhub-idle-culler (a service with a scoped role)
stops dan. The history and the users' notices say why.
"""

import datetime
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import PREFIX, Progress, container_of, gpus_of, wait_for

USAGE = "/services/gpu-usage"
IDLE_TIMEOUT = 20  # c.GPUDockerSpawner.gpu_idle_timeout
LEASE = 60  # cid's, through the group "leased"
CULL_TIMEOUT = 90  # GPUHUB_IDLE_TIMEOUT

EXTRA_CONFIG = f"""
c.GPUDockerSpawner.gpu_idle_timeout = {IDLE_TIMEOUT}
c.GPUDockerSpawner.group_overrides["20-leased"] = {{
    "groups": ["leased"],
    "spawner_override": {{"gpu_lease": {LEASE}, "gpu_idle_timeout": 0}},
}}
"""


def get(hub, path, token):
    return requests.get(f"{hub.url}{USAGE}{path}", headers={"Authorization": f"token {token}"}, timeout=30)


def running(hub, name) -> bool:
    server = hub.server(name)
    return bool(server and server["ready"] and not server["pending"])


def post_activity(hub, name):
    """What a single-user server sends the hub when its kernels or terminals are used."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    response = hub.api("POST", f"/users/{name}/activity",
                       json={"servers": {"": {"last_activity": now}}, "last_activity": now})
    assert response.status_code == 200, response.text


def child_token(hub, marker: bytes) -> str:
    """The API token the hub gave its managed service whose command line has ``marker``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != hub.proc.pid or marker not in (entry / "cmdline").read_bytes():
                continue
            environ = dict(v.split(b"=", 1) for v in (entry / "environ").read_bytes().split(b"\0") if b"=" in v)
        except OSError:
            continue
        return environ[b"JUPYTERHUB_API_TOKEN"].decode()
    raise AssertionError(f"the hub runs no service {marker!r}")


def test_idle_gpus_are_reclaimed_busy_ones_kept_leases_end_and_the_culler_culls(start_hub, engine):
    gpus = FakeNVML.make_gpus(3, util_gpu=80)
    hub = start_hub(gpus, extra_config=EXTRA_CONFIG, extra_env={
        "GPUHUB_USAGE_INTERVAL": "1",
        "GPUHUB_RECLAIM_INTERVAL": "1",
        "GPUHUB_USAGE_CONTAINER_PREFIX": f"{PREFIX}-",
        "GPUHUB_IDLE_TIMEOUT": str(CULL_TIMEOUT),
    })
    hub.create_users("ann", "bob", "dan", "eve")
    hub.create_users("cid", groups=("leased",))
    tokens = {name: hub.user_token(name) for name in ("ann", "cid", "admin")}

    # ---- the services and their privileges: scoped roles, never admin ----
    admin_api = {"Authorization": f"token {tokens['admin']}"}
    services = requests.get(f"{hub.url}/hub/api/services", headers=admin_api, timeout=30).json()
    assert services["idle-culler"]["roles"] == ["idle-culler"]
    assert services["idle-culler"]["admin"] is False and services["gpu-usage"]["admin"] is False
    for marker, needed in ((b"jupyterhub_idle_culler", {"list:users", "read:servers", "delete:servers"}),
                           (b"gpuhub.hub.gpu_usage", {"read:servers", "delete:servers"})):
        whoami = hub.api("GET", "/user", token=child_token(hub, marker)).json()
        scopes = set(whoami["scopes"])
        assert needed <= scopes, (marker, scopes)
        assert not {s for s in scopes if s.split("!")[0].startswith("admin")
                    or s.split("!")[0] in ("users", "servers", "tokens", "groups")}, (marker, scopes)

    # cid's notices on the home page, watched from the start (the warning shows for 15 s)
    watching = threading.Event()

    def watch_lease():
        while not watching.wait(1):
            notices = get(hub, "/api/me", tokens["cid"]).json().get("notices", [])
            lease = next((n for n in notices if n["kind"] == "lease"), None)
            if lease:
                return time.time(), {**lease, "html": get(hub, "/embed", tokens["cid"]).text}
        raise AssertionError("cid saw no lease warning before the lease ended")

    lease_watch = ThreadPoolExecutor(1).submit(watch_lease)

    # ---- four servers at once ----
    for name, gpu_count in (("ann", 1), ("bob", 1), ("cid", 1), ("dan", 0)):
        response = hub.spawn(name, {"gpus": gpu_count})
        assert response.status_code in (201, 202), response.text
    ready_at = {}
    for name in ("ann", "bob", "cid", "dan"):
        state, message = hub.wait_spawn(name)
        assert state == "ready", (name, message)
        ready_at[name] = time.time()
    ann = container_of(engine, "ann")
    (ann_gpu,) = gpus_of(ann)
    # Servers report activity often enough for a 20 s idle timeout; CPU-only ones as before.
    assert "JUPYTERHUB_ACTIVITY_INTERVAL=5" in ann.attrs["Config"]["Env"]
    assert not any(v.startswith("JUPYTERHUB_ACTIVITY_INTERVAL=")
                   for v in container_of(engine, "dan").attrs["Config"]["Env"])
    home = next(m["Destination"] for m in ann.attrs["Mounts"] if m["Type"] == "volume")
    assert ann.exec_run(["sh", "-c", f"echo epoch 7 > {home}/kept.txt"]).exit_code == 0

    # ---- every GPU is held: eve waits in line for one ----
    assert hub.spawn("eve", {"gpus": 1}).status_code == 202
    eve = Progress(hub, "eve")
    wait_for(lambda: eve.position() == 1, "eve in the GPU queue", timeout=30)

    # ---- ann's GPU goes idle; her activity keeps the server, then stops ----
    for gpu in gpus:
        if gpu.uuid == ann_gpu:
            gpu.util_gpu = 0
    hub.nvml.write(gpus)
    idle_from = time.time()
    while time.time() < idle_from + IDLE_TIMEOUT + 10:
        post_activity(hub, "ann")
        assert running(hub, "ann"), "ann was reclaimed while her server was in use"
        time.sleep(3)
    last_activity = time.time()
    # bob meanwhile: a busy GPU, no activity past his idle timeout: kept.
    assert time.time() >= ready_at["bob"] + IDLE_TIMEOUT + 5 and running(hub, "bob")
    wait_for(lambda: not running(hub, "ann"), "ann's idle GPU to be reclaimed", timeout=IDLE_TIMEOUT + 30)
    reclaimed_after = time.time() - last_activity
    assert reclaimed_after >= IDLE_TIMEOUT - 4, reclaimed_after  # a report interval of slack
    # The first GPU reclaimed (ann's, or cid's if its lease ended first) went to
    # the head of the queue: eve, who then uses it.
    assert hub.wait_spawn("eve")[0] == "ready"
    (eve_gpu,) = gpus_of(container_of(engine, "eve"))
    for gpu in gpus:
        gpu.util_gpu = 80
    hub.nvml.write(gpus)
    eve.close()

    # ---- cid's lease: warned in the hub UI (the home page's embed), then stopped ----
    wait_for(lambda: not running(hub, "cid"), "cid's lease to end", timeout=LEASE + 30)
    stopped = time.time()
    watching.set()
    warned_at, warning = lease_watch.result()
    assert warned_at < warning["ends"] <= stopped, (warned_at, warning, stopped)
    assert warning["ends"] - warned_at <= LEASE / 4 + 3  # a quarter of the lease before its end
    assert "GPU lease ends at" in warning["html"] and "save your work" in warning["html"]

    # ---- the culler stops dan's idle CPU-only server ----
    wait_for(lambda: not running(hub, "dan"), "the idle culler to stop dan",
             timeout=ready_at["dan"] + CULL_TIMEOUT + CULL_TIMEOUT / 2 + 30 - time.time())
    assert time.time() - ready_at["dan"] >= CULL_TIMEOUT - 5

    # ---- the history, and what the users read on their next visit ----
    reclaimed = get(hub, "/api/gpus", tokens["admin"]).json()["reclaimed"]
    by_user = {r["user"]: r for r in reclaimed}
    assert set(by_user) == {"ann", "cid"}  # dan was the culler's, not a GPU reclaim
    assert min(reclaimed, key=lambda r: r["time"])["gpus"] == [eve_gpu]
    assert by_user["ann"]["kind"] == "idle" and by_user["ann"]["gpus"] == [ann_gpu]
    assert by_user["ann"]["reason"].startswith("its GPU was idle for")
    assert (by_user["cid"]["kind"], by_user["cid"]["reason"]) == ("lease", "its GPU lease of 1 min ended")
    page = get(hub, "/all", tokens["admin"])
    assert 'id="gpu-reclaimed"' in page.text and "its GPU lease of 1 min ended" in page.text
    embed = get(hub, "/embed", tokens["ann"]).text
    assert "Your server was stopped at" in embed and "its GPU was idle for" in embed and "(files kept)" in embed
    mine = get(hub, "/", tokens["ann"]).text
    assert 'id="gpu-reclaimed"' in mine and "cid" not in mine
    assert "its GPU lease of 1 min ended (files kept)" in get(hub, "/embed", tokens["cid"]).text

    # ---- files kept; the notice goes once the server runs again ----
    hub.start_server("ann", {"gpus": 1})
    assert container_of(engine, "ann").exec_run(["cat", f"{home}/kept.txt"]).output == b"epoch 7\n"
    assert get(hub, "/api/me", tokens["ann"]).json()["notices"] == []
