"""Safe spawns on the real hub and engine: images only from where the admin
says, names that are data, unsafe settings refused before create, a deleted
user's files archived away from a new user of the same name."""

import time
import urllib.parse

from escapism import escape

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import IMAGE, PREFIX, wait_for

MISSING_IMAGE = f"gpuhub/never-built-{PREFIX}:1"  # Docker Hub namespace: never pulled


def escaped(name: str) -> str:
    """DockerSpawner's escaping of names in container and volume names."""
    return escape(name, "abcdefghijklmnopqrstuvwxyz0123456789", escape_char="-").lower()


def url(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def spawn_outcome(hub, name: str, options=None) -> tuple[str, str]:
    """("ready"|"failed", message) of one spawn, whether the POST waited for it or not."""
    response = hub.spawn(url(name), options)
    if response.status_code >= 400:
        return "failed", response.json().get("message", "")
    return hub.wait_spawn(url(name))


def test_a_missing_local_image_is_a_clear_error_and_nothing_is_pulled(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(1), extra_config=f"""
        c.GPUDockerSpawner.allowed_images = [{IMAGE!r}, {MISSING_IMAGE!r}]
    """)
    hub.create_users("ann", "bob")
    since = int(time.time()) - 1
    state, message = spawn_outcome(hub, "ann", {"gpus": 0, "image": MISSING_IMAGE})
    until = int(time.time()) + 1
    assert state == "failed"
    assert MISSING_IMAGE in message and "gpuhub images build" in message, message
    assert "image_registries" in message, message
    events = engine.events(since=since, until=until, decode=True, filters={"type": "image"})
    assert [e for e in events if e.get("Action") == "pull"] == []
    assert not engine.containers.list(all=True, filters={"name": f"^{PREFIX}-ann$"})

    # The image that is on the host runs; its digest is logged and on the container.
    hub.start_server("bob", {"gpus": 0})
    image_id = engine.images.get(IMAGE).id
    container = engine.containers.get(f"{PREFIX}-bob")
    assert container.labels["gpuhub.image"] in (image_id, *engine.images.get(IMAGE).attrs["RepoDigests"])
    assert f"runs image {IMAGE}: {container.labels['gpuhub.image']}" in hub.log_path.read_text()


BRACE_NAMES = ["{raw_servername}alice", "{0}", "{username.__class__}"]


def test_names_with_braces_are_data_not_templates(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(1))
    response = hub.api("POST", "/users", json={"usernames": BRACE_NAMES + ["alice"]})
    assert response.status_code == 201, response.text
    for name in BRACE_NAMES:
        state, message = spawn_outcome(hub, name, {"gpus": 0})
        assert state == "ready", f"{name}: {message}"
    for name in BRACE_NAMES:
        container = engine.containers.get(f"{PREFIX}-{escaped(name)}")
        assert container.labels["gpuhub.user"] == name
        assert container.labels["gpuhub.server"] == ""
        volume = engine.volumes.get(f"{PREFIX}-user-{escaped(name)}")
        assert volume.attrs["Labels"]["gpuhub.user"] == name
    mine = engine.containers.list(all=True, filters={"name": f"^{PREFIX}-"})
    assert sorted(c.labels["gpuhub.user"] for c in mine) == sorted(BRACE_NAMES)  # alice: none


UNSAFE = f"""
    c.GPUDockerSpawner.extra_create_kwargs = {{"host_config": {{"Privileged": True}}}}

    def only_for_called(spawner):
        return {{"cap_add": ["SYS_ADMIN"]}} if spawner.user.name == "called" else {{}}

    c.GPUDockerSpawner.extra_host_config = only_for_called
    c.GPUDockerSpawner.group_overrides = {{
        "50-unsafe": {{"groups": ["unsafe"], "spawner_override": {{
            "mounts": [{{"type": "bind", "source": "/run", "target": "/host-run"}}]}}}},
    }}
"""


def test_unsafe_settings_are_refused_before_create_whatever_their_source(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(1), extra_config=UNSAFE)
    hub.create_users("plain", "called")
    hub.create_users("grouped", groups=("unsafe",))
    expected = {  # user: Docker keys refused (config, + callable, + group override)
        "plain": {"Privileged"},
        "called": {"Privileged", "CapAdd"},
        "grouped": {"Privileged", "Mounts"},
    }
    for name, keys in expected.items():
        state, message = spawn_outcome(hub, name, {"gpus": 0})
        assert state == "failed", name
        assert "not started" in message and "admin" in message, message
        for key in keys:
            assert key in message, (name, message)
        assert "Traceback" not in message
    log = hub.log_path.read_text()
    assert "Privileged: a privileged container is root on the host (set by extra_host_config" in log
    assert "CapAdd: added capabilities" in log
    assert "Mounts: mounting /run hands over the Docker socket" in log
    assert "this user's group_overrides set mounts" in log
    assert not engine.containers.list(all=True, filters={"name": f"^{PREFIX}-"})


def test_a_deleted_users_files_are_archived_and_a_new_namesake_starts_empty(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(1))
    hub.create_users("dora")
    hub.start_server("dora", {"gpus": 0})
    written = engine.containers.get(f"{PREFIX}-dora").exec_run(
        ["sh", "-c", "echo thesis > /home/jovyan/notes.txt"], user="1000")
    assert written.exit_code == 0, written.output
    hub.stop_server("dora")

    assert hub.api("DELETE", "/users/dora").status_code == 204
    assert not engine.volumes.list(filters={"name": f"{PREFIX}-user-dora"})
    archives = engine.volumes.list(filters={"label": "gpuhub.archived-user=dora"})
    assert [v.name.startswith(f"{PREFIX}-archive-dora-") for v in archives] == [True]
    assert archives[0].attrs["Labels"]["gpuhub.hub"]  # whose archive it is: this hub's
    assert "gpuhub.user" not in archives[0].attrs["Labels"]  # the new dora owns nothing of it
    kept = engine.containers.run(
        IMAGE, ["cat", "/archive/notes.txt"], name=f"{PREFIX}-read-archive", remove=True,
        network_mode="none", user="1000", volumes={archives[0].name: {"bind": "/archive", "mode": "ro"}},
    )
    assert kept.decode().strip() == "thesis"

    hub.create_users("dora")
    hub.start_server("dora", {"gpus": 0})
    looked = engine.containers.get(f"{PREFIX}-dora").exec_run(["ls", "-A", "/home/jovyan"], user="1000")
    assert "notes.txt" not in looked.output.decode()
    wait_for(lambda: hub.server("dora")["ready"], "dora's new server")
