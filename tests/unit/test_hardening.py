"""The check before create, over create requests built the way DockerSpawner
builds them (docker-py's HostConfig, then extra_create_kwargs['host_config']
merged in), and where images may come from."""

from datetime import datetime, timezone

import pytest
from docker.types import HostConfig, Mount

from gpuhub.spawner import container_spec, hardening, image_source, user_volumes

API = "1.43"
GIB = 1 << 30


def create_request(extra_host_config=None, raw_host_config=None, user="1000", **host_kwargs):
    """Like DockerSpawner.create_object: our hardened extra_host_config, rendered
    through docker-py, with the admin's raw extra_create_kwargs['host_config'] under it."""
    host = container_spec.required_host_config([], GIB, 4096, extra_host_config)
    host = {"binds": {"gpuhub-user-ann": {"bind": "/home/jovyan", "mode": "rw"}},
            "network_mode": "gpuhub", **host, **host_kwargs}
    host_config = dict(raw_host_config or {})
    host_config.update(HostConfig(version=API, **host))
    return {"image": "img", "name": "gpuhub-ann", "user": user, "host_config": host_config}


def test_the_hubs_own_request_passes():
    assert hardening.refusals(create_request()) == []


BAD = [
    # (what, create request, Docker key refused)
    ("privileged in extra_host_config", create_request({"privileged": True}), "Privileged"),
    ("cap_add in extra_host_config", create_request({"cap_add": ["SYS_ADMIN"]}), "CapAdd"),
    ("API-cased Privileged in extra_create_kwargs", create_request(raw_host_config={"Privileged": True}), "Privileged"),
    ("API-cased CapAdd in extra_create_kwargs", create_request(raw_host_config={"CapAdd": ["NET_ADMIN"]}), "CapAdd"),
    ("lower-case privileged (Docker decodes keys without case)",
     create_request(raw_host_config={"privileged": True}), "Privileged"),
    ("docker.sock bind", create_request(binds=["/var/run/docker.sock:/var/run/docker.sock:rw"]), "Binds"),
    ("/run/docker.sock bind", create_request(binds={"/run/docker.sock": {"bind": "/d", "mode": "ro"}}), "Binds"),
    ("/var/run bind", create_request(binds=["/var/run:/host-run:ro"]), "Binds"),
    ("/run bind", create_request(binds=["/run:/host-run:ro"]), "Binds"),
    ("/ bind", create_request(binds=["/:/host:ro"]), "Binds"),
    ("//run bind", create_request(binds=["//run/:/host-run:ro"]), "Binds"),
    ("/var/../run bind", create_request(binds=["/var/../run:/x:ro"]), "Binds"),
    ("a docker.sock elsewhere", create_request(binds=["/srv/docker.sock:/d:rw"]), "Binds"),
    ("socket in mounts", create_request(mounts=[Mount("/d", "/var/run/docker.sock", type="bind")]), "Mounts"),
    ("/var/run in mounts", create_request(mounts=[Mount("/h", "/var/run", type="bind")]), "Mounts"),
    ("raw Mounts in extra_create_kwargs",
     create_request(raw_host_config={"Mounts": [{"Type": "bind", "Source": "/run", "Target": "/r"}]}), "Mounts"),
    ("local volume bound to /var/run",
     create_request(mounts=[Mount("/r", None, type="volume", driver_config={
         "Name": "local", "Options": {"type": "none", "o": "bind", "device": "/var/run"}})]), "Mounts"),
    ("lower-case binds next to Binds", create_request(raw_host_config={"binds": ["/run:/r"]}), "Binds"),
    ("host network", create_request({"network_mode": "host"}), "NetworkMode"),
    ("host PID namespace", create_request({"pid_mode": "host"}), "PidMode"),
    ("host IPC namespace", create_request({"ipc_mode": "host"}), "IpcMode"),
    ("another container's PID namespace", create_request({"pid_mode": "container:gpuhub-bob"}), "PidMode"),
    ("host user namespace", create_request({"userns_mode": "host"}), "UsernsMode"),
    ("API-cased host namespace", create_request(raw_host_config={"PidMode": "host"}), "PidMode"),
    ("seccomp off", create_request({"security_opt": ["seccomp=unconfined"]}), "SecurityOpt"),
    ("host devices", create_request({"devices": ["/dev/sda:/dev/sda:rwm"]}), "Devices"),
    ("another container's volumes", create_request({"volumes_from": ["gpuhub-bob"]}), "VolumesFrom"),
    ("root user", create_request(user="0:0"), "User"),
    ("no user (the image's, often root)", {k: v for k, v in create_request().items() if k != "user"}, "User"),
]


@pytest.mark.parametrize("what, request_, key", BAD, ids=[b[0] for b in BAD])
def test_unsafe_requests_are_refused_naming_the_key(what, request_, key):
    found = hardening.refusals(request_)
    assert key in [refusal.key for refusal in found], found
    error = hardening.UnsafeSettings(found)
    assert error.status_code == 500 and key in error.jupyterhub_message
    assert "extra_host_config" in str(found[0]) or "volumes" in str(found[0]) or "container_user" in str(found[0])


def test_hardening_missing_from_the_final_request_is_refused():
    request_ = create_request()
    request_["host_config"].pop("CapDrop")
    request_["host_config"]["SecurityOpt"] = []
    assert {r.key for r in hardening.refusals(request_)} == {"CapDrop", "SecurityOpt"}


@pytest.mark.parametrize("source, exposed", [
    ("/var/run/docker.sock", True), ("/run/docker.sock", True), ("/var/run", True), ("/run/", True),
    ("/var", True), ("/", True), ("/srv/dockerd/docker.sock", True), ("/run/gpuhub-test", True),
    ("/srv/data", False), ("/run-data", False), ("gpuhub-user-ann", False), ("/var/lib/data", False),
])
def test_docker_socket_in_any_path_form(source, exposed):
    sockets = hardening.sockets_for("unix:///run/gpuhub-test/docker.sock")
    assert hardening.exposes_docker_socket(source, sockets) is exposed


@pytest.mark.parametrize("image, registry", [
    ("gpuhub/pytorch-notebook:2.6", "docker.io"),
    ("ubuntu", "docker.io"),
    ("registry.example.org/gpuhub/nb:1", "registry.example.org"),
    ("127.0.0.1:5000/stalled:latest", "127.0.0.1:5000"),
    ("localhost/nb", "localhost"),
])
def test_registry_of_an_image(image, registry):
    assert image_source.registry_of(image) == registry


def test_only_listed_registries_are_pulled_from():
    assert not image_source.may_pull("gpuhub/pytorch-notebook:2.6", [])
    assert not image_source.may_pull("gpuhub/pytorch-notebook:2.6", ["registry.example.org"])
    assert image_source.may_pull("registry.example.org/nb:1", ["registry.example.org"])
    assert image_source.may_pull("gpuhub/nb:1", ["docker.io"])
    message = image_source.missing_message("gpuhub/nb:1", [])
    assert "gpuhub images build" in message and "docker.io" in message and "image_registries" in message


def test_digest_prefers_the_repo_digest():
    assert image_source.digest_of({"Id": "sha256:1", "RepoDigests": ["r/nb@sha256:2"]}) == "r/nb@sha256:2"
    assert image_source.digest_of({"Id": "sha256:1", "RepoDigests": []}) == "sha256:1"


def test_only_volumes_named_after_the_user_are_the_users():
    volumes = {"{prefix}-user-{username}": "/home/jovyan", "datasets": "/data",
               "/srv/{username}": "/srv", "{prefix}-{raw_username}-scratch": "/scratch"}
    assert user_volumes.per_user_templates(volumes) == [
        "{prefix}-user-{username}", "{prefix}-{raw_username}-scratch"]
    when = datetime(2026, 11, 22, 15, 30, tzinfo=timezone.utc)
    assert user_volumes.archive_names("gh", "ann", 1, when) == ["gh-archive-ann-20261122T153000Z"]
    assert user_volumes.archive_names("gh", "ann", 2, when)[1] == "gh-archive-ann-20261122T153000Z-2"


def test_every_container_the_spawner_creates_is_checked():
    """An admin's extra_create_kwargs={"name": …} must not route around the check."""
    from gpuhub.spawner.gpu_docker import GPUDockerSpawner
    from tests.unit.test_spawner_config import make_spawner

    spawner = make_spawner(image="img")
    assert isinstance(spawner, GPUDockerSpawner)
    with pytest.raises(hardening.UnsafeSettings, match="Privileged"):
        spawner.docker("create_container", **{**create_request(raw_host_config={"Privileged": True}),
                                              "name": "not-the-servers-name"})
