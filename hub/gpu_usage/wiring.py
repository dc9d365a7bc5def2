"""The hub side of the service: one call in ``config/jupyterhub_config.py``
registers it, its scope and roles, and the hub page overrides.

It runs after the site files (``jupyterhub_config.d``) so that the service
follows what they set: the spawner's ``busy_memory_threshold``, the hub's
``template_paths`` and admins. It adds to the lists sites set, never drops them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from traitlets.config import Config, LazyConfigValue

from gpuhub.hub.bootstrap import ensure_secret_file
from gpuhub.spawner.container_spec import activity_interval

from . import HUB_TEMPLATES, READ_ALL_SCOPE, SERVICE_NAME

# Managed services inherit only a few of the hub's variables (PATH,
# LD_LIBRARY_PATH, …); these reach the service too when the hub has them.
PASSED_ENVIRONMENT = ("DOCKER_HOST",)
SERVICE_SCOPES = ["read:users:name", "read:servers", "read:users:activity", "delete:servers",
                  "users:activity",  # a server whose GPU is in use is active (long jobs)
                  "list:groups", "read:groups"]  # cohorts and teams: names, members, properties


def current(section: Config, name: str, default):
    """What the config holds for ``name`` so far (site files may have appended lazily)."""
    if name not in section:
        return default
    value = section[name]
    return value.get_value(default) if isinstance(value, LazyConfigValue) else value


def service_environment(environ) -> dict:
    """The hub's variables the service reads (DOCKER_HOST, GPUHUB_USAGE_*), and any
    names listed in GPUHUB_SERVICE_ENV (comma-separated), e.g. proxy settings."""
    from .app import ENVIRONMENT  # the service's own table: one list of its variables

    extra = [name.strip() for name in environ.get("GPUHUB_SERVICE_ENV", "").split(",")]
    names = (*PASSED_ENVIRONMENT, *ENVIRONMENT, *extra)
    return {name: environ[name] for name in names if name in environ}


def configure_gpu_usage(c: Config, *, state_dir, port: int | str, environ=None) -> None:
    """Run the gpu-usage service on 127.0.0.1:``port`` (behind the proxy at
    /services/gpu-usage/), with its data and metrics token (0600) in ``state_dir``."""
    environ = os.environ if environ is None else environ
    state_dir = Path(state_dir)
    token_file = state_dir / "gpu_usage_metrics_token"
    ensure_secret_file(token_file)
    hub = c.JupyterHub
    template_paths = [path for path in current(hub, "template_paths", []) if path != HUB_TEMPLATES]
    template_paths.append(HUB_TEMPLATES)  # last: a site's own page.html wins
    command = [
        sys.executable, "-m", "gpuhub.hub.gpu_usage",
        f"--GpuUsageApp.state_dir={state_dir}",
        f"--GpuUsageApp.metrics_token_file={token_file}",
        *(f"--GpuUsageApp.hub_template_paths={path}" for path in template_paths),
        *(f"--GpuUsageApp.hub_template_vars={name}={value}"
          for name, value in current(hub, "template_vars", {}).items() if isinstance(value, str)),
    ]
    hub_id = current(c.GPUDockerSpawner, "hub_id", None)
    if hub_id:  # GPU reclaim stops this hub's servers only
        command.append(f"--GpuUsageApp.hub_id={hub_id}")
    from gpuhub.hub.idle_culler import idle_timeout  # here: idle_culler imports this module

    culler_timeout = idle_timeout(environ)
    if culler_timeout:  # a GPU at work is reported well inside the culler's window
        command.append(f"--GpuUsageApp.activity_interval={activity_interval(culler_timeout)}")
    busy_memory = current(c.GPUDockerSpawner, "busy_memory_threshold", None)
    if busy_memory is not None:  # the same rule for "free" as the spawner's
        command.append(f"--GpuUsageApp.busy_memory_threshold={busy_memory}")
    service = {
        "name": SERVICE_NAME,
        "command": command,
        "url": f"http://127.0.0.1:{port}",
        "oauth_no_confirm": True,
        # admin-ui only decides whether the top bar shows "Admin", as on the hub's pages.
        "oauth_client_allowed_scopes": [READ_ALL_SCOPE, "admin-ui"],
        "environment": service_environment(environ),
    }
    hub.services = [*current(hub, "services", []), service]
    hub.custom_scopes = {
        **current(hub, "custom_scopes", {}),
        READ_ALL_SCOPE: {"description": "See every GPU, who holds it, and jobs outside the hub."},
    }
    hub.load_roles = [
        *current(hub, "load_roles", []),
        {"name": "user", "scopes": ["self", f"access:services!service={SERVICE_NAME}"]},  # own GPUs
        # users' names (404 for unknown users); for GPU reclaim, each server's
        # started and last_activity, and stopping it; reporting the activity of
        # a server whose GPU is in use; the groups for cohort reports: nothing
        # more, never admin
        {"name": "gpu-usage-service", "scopes": SERVICE_SCOPES, "services": [SERVICE_NAME]},
        {
            "name": "gpu-usage-readers",
            "scopes": [READ_ALL_SCOPE],
            "users": sorted(current(c.Authenticator, "admin_users", set())),
            "groups": ["instructors"],
        },
    ]
    hub.template_paths = template_paths  # nav link, GPUs on the home page
