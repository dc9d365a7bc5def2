"""GPUDockerSpawner's traits: safe defaults, bad config refused with a fix."""

from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from gpuhub.spawner import GPUDockerSpawner


def make_spawner(groups=(), **config):
    c = Config()
    for key, value in config.items():
        setattr(c.GPUDockerSpawner, key, value)
    user = SimpleNamespace(name="ann", groups=[SimpleNamespace(name=g) for g in groups])
    return GPUDockerSpawner(config=c, user=user)


def test_defaults_suit_a_gpu_hub():
    s = make_spawner(image="gpuhub/test-notebook:latest")
    assert s.remove is True
    assert s.network_name == "gpuhub" and s.use_internal_ip
    assert s.prefix == s.hub_id == "gpuhub"
    assert s.volumes == {"{prefix}-user-{username}": "/home/jovyan"}
    assert s._get_allowed_images() == {"gpuhub/test-notebook:latest": "gpuhub/test-notebook:latest"}
    assert (s.shm_size, s.pids_limit, s.container_user) == (8 << 30, 4096, "1000")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"allowed_images": "*"}, "users must never run arbitrary images"),
        ({"volumes": {"/var/run/docker.sock": "/var/run/docker.sock"}}, "must not mount the Docker socket"),
        ({"read_only_volumes": {"/run/docker.sock": "/d.sock"}}, "must not mount the Docker socket"),
        ({"volumes": {"/var/run": "/host-run"}}, "must not mount the Docker socket"),
        ({"image_registries": ["https://registry.example.org"]}, "no scheme, no path"),
        ({"container_user": "0:0"}, "non-root uid"),
        ({"container_user": "root"}, "non-root uid"),
        ({"gpu_quota": -1}, "gpu_quota"),
    ],
)
def test_unsafe_config_is_refused(config, message):
    with pytest.raises(TraitError, match=message):
        make_spawner(**config)


async def test_group_overrides_follow_current_membership():
    overrides = {
        "10-researchers": {
            "groups": ["researchers"],
            "spawner_override": {"gpu_quota": 4, "mem_limit": "64G", "environment": {"TEAM": "r"}},
        }
    }
    s = make_spawner(groups=["researchers"], gpu_quota=1, group_overrides=overrides)
    configured = (s.gpu_quota, s.mem_limit, dict(s.environment))
    await s.apply_group_overrides()
    assert (s.gpu_quota, s.mem_limit, s.environment) == (4, 64 << 30, {"TEAM": "r"})
    s.user.groups = []  # removed from the group while the hub runs
    await s.apply_group_overrides()
    assert (s.gpu_quota, s.mem_limit, s.environment) == configured == (1, 0, {})
