"""The hub's environment variables (hub/variables.py): issue 10's settings reach
their traits, named servers follow GPUHUB_NAMED_SERVERS, bad values are refused
naming the variable (tests/integration/test_group_properties.py: the hub
stops with that message)."""

import pytest
from traitlets.config import Config

from gpuhub.hub.variables import HUB_VARIABLES, apply_hub_variables
from gpuhub.spawner import GPUDockerSpawner
from tests.integration.hubrig import REPO


def configured(environ: dict, named_servers_default=3) -> Config:
    c = Config()
    c.JupyterHub.named_server_limit_per_user = named_servers_default  # as the config sets it
    apply_hub_variables(c, environ)
    return c


def test_fair_access_variables_set_their_traits():
    c = configured({"GPUHUB_GPU_SHARE": "2", "GPUHUB_QUEUE_TIMEOUT": "600", "GPUHUB_GPU_LEASE": "28800",
                    "GPUHUB_GPU_IDLE_TIMEOUT": "0", "GPUHUB_NAMED_SERVERS": "5"})
    spawner = GPUDockerSpawner(config=c)
    assert (spawner.gpu_share, spawner.queue_timeout, spawner.gpu_lease, spawner.gpu_idle_timeout) \
        == (2, 600.0, 28800.0, 0.0)
    assert (c.JupyterHub.allow_named_servers, c.JupyterHub.named_server_limit_per_user) == (True, 5)


def test_unset_variables_leave_the_defaults():
    c = configured({})
    assert not c.GPUDockerSpawner
    assert (c.JupyterHub.allow_named_servers, c.JupyterHub.named_server_limit_per_user) == (True, 3)
    spawner = GPUDockerSpawner(config=c)
    assert (spawner.gpu_share, spawner.queue_timeout, spawner.gpu_lease, spawner.gpu_idle_timeout) \
        == (1, 1800.0, 0.0, 1800.0)


def test_named_servers_zero_turns_them_off():
    c = configured({"GPUHUB_NAMED_SERVERS": "0"})
    assert c.JupyterHub.allow_named_servers is False
    assert configured({}, named_servers_default=0).JupyterHub.allow_named_servers is False


@pytest.mark.parametrize("name, value, message", [
    ("GPUHUB_GPU_SHARE", "0", "GPUHUB_GPU_SHARE='0' is not a valid GPUDockerSpawner.gpu_share "
                              "\\(.*should not be less than 1"),
    ("GPUHUB_GPU_LEASE", "-1", "GPUHUB_GPU_LEASE='-1' is not a valid GPUDockerSpawner.gpu_lease"),
    ("GPUHUB_GPU_LEASE", "8h", "GPUHUB_GPU_LEASE='8h' is not a valid GPUDockerSpawner.gpu_lease"),
    ("GPUHUB_GPU_IDLE_TIMEOUT", "nan", "GPUHUB_GPU_IDLE_TIMEOUT='nan' is not a valid .*finite"),
    ("GPUHUB_QUEUE_TIMEOUT", "soon", "GPUHUB_QUEUE_TIMEOUT='soon' is not a valid"),
    ("GPUHUB_GPU_QUOTA", "-1", "GPUHUB_GPU_QUOTA='-1' is not a valid GPUDockerSpawner.gpu_quota"),
    ("GPUHUB_NAMED_SERVERS", "three", "GPUHUB_NAMED_SERVERS='three' is not a valid "
                                      "JupyterHub.named_server_limit_per_user"),
    ("GPUHUB_NAMED_SERVERS", "-1", "GPUHUB_NAMED_SERVERS='-1': .* 0 \\(named servers off\\) or more"),
])
def test_a_bad_value_is_refused_naming_the_variable(name, value, message):
    with pytest.raises(ValueError, match=f"^{message}.*fix or unset {name}$"):
        configured({name: value})


def test_every_variable_is_documented_in_the_config_readme():
    readme = (REPO / "config" / "README.md").read_text()
    assert [name for name in HUB_VARIABLES if f"`{name}`" not in readme] == []

