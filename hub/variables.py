"""The hub's environment variables: which one sets which trait, and the rule for
named servers. config/README.md's table documents them. No I/O.

``config/jupyterhub_config.py`` calls :func:`apply_hub_variables` after its own
values (the defaults), before the site files in ``jupyterhub_config.d`` (which win).
"""

from __future__ import annotations

from collections.abc import Mapping

from jupyterhub.app import JupyterHub
from jupyterhub.proxy import ConfigurableHTTPProxy
from traitlets.config import Config

from gpuhub.hub.environment import settings_from_environment
from gpuhub.spawner import GPUDockerSpawner

HUB_VARIABLES = {
    "GPUHUB_BIND_URL": (JupyterHub, "bind_url"),
    "GPUHUB_PROXY_API_URL": (ConfigurableHTTPProxy, "api_url"),
    "GPUHUB_NAMED_SERVERS": (JupyterHub, "named_server_limit_per_user"),
    "GPUHUB_IMAGE": (GPUDockerSpawner, "image"),
    "GPUHUB_PREFIX": (GPUDockerSpawner, "prefix"),
    "GPUHUB_GPU_QUOTA": (GPUDockerSpawner, "gpu_quota"),
    "GPUHUB_MEM_LIMIT": (GPUDockerSpawner, "mem_limit"),
    "GPUHUB_CPU_LIMIT": (GPUDockerSpawner, "cpu_limit"),
    "GPUHUB_GPU_SHARE": (GPUDockerSpawner, "gpu_share"),
    "GPUHUB_GPU_LEASE": (GPUDockerSpawner, "gpu_lease"),
    "GPUHUB_GPU_IDLE_TIMEOUT": (GPUDockerSpawner, "gpu_idle_timeout"),
    "GPUHUB_QUEUE_TIMEOUT": (GPUDockerSpawner, "queue_timeout"),
    "GPUHUB_DATASETS_VOLUME": (GPUDockerSpawner, "datasets_volume"),
}


def apply_hub_variables(config: Config, environ: Mapping[str, str]) -> dict[str, str]:
    """Set the traits of :data:`HUB_VARIABLES` whose variables are set, then turn
    named servers on when ``JupyterHub.named_server_limit_per_user`` is above 0.

    gpuhub reads a limit of 0 as "named servers off" (JupyterHub reads it as
    "no limit", which gpuhub does not offer: quotas would not bound a user).
    Raises ValueError naming the variable for a value that is refused.
    """
    used = settings_from_environment(config, HUB_VARIABLES, environ)
    limit = config.JupyterHub.get("named_server_limit_per_user", 0)
    if limit < 0:
        raise ValueError(
            f"GPUHUB_NAMED_SERVERS={environ.get('GPUHUB_NAMED_SERVERS')!r}: it is the number of "
            "named servers a user may have besides the default one, 0 (named servers off) or "
            "more; fix or unset GPUHUB_NAMED_SERVERS")
    config.JupyterHub.allow_named_servers = limit > 0
    return used
