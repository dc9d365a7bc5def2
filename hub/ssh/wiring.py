"""The hub side of the SSH entrance: one call in ``config/jupyterhub_config.py``
registers the service and its role. No I/O (the service makes its host key).

Its role can see users' names, start (and see) their servers and report their
activity, and no more: never admin. Whether a token given as a password is a user's is asked with
that token itself (``GET /hub/api/user``), not with the service's rights.
"""

from __future__ import annotations

import sys
from pathlib import Path

from traitlets.config import Config

from gpuhub.hub.gpu_usage.wiring import current
from gpuhub.spawner import GPUDockerSpawner
from gpuhub.spawner.user_volumes import per_user_templates

from . import SERVICE_NAME

ROLE_NAME = "gpuhub-ssh"
# servers: start a stopped server, follow its progress; users:activity: an SSH
# session keeps the server from looking idle to the idle culler
SCOPES = ["read:users:name", "servers", "users:activity"]


class SshSettingsError(ValueError):
    """GPUHUB_SSH_PORT is not a port number (nor 0: off)."""


def ssh_port(environ) -> int:
    """GPUHUB_SSH_PORT as a port number; 0 turns the entrance off; default 8022."""
    raw = environ.get("GPUHUB_SSH_PORT", "").strip()
    if not raw:
        return 8022
    if not raw.isascii() or not raw.isdigit() or int(raw) > 65535:
        raise SshSettingsError(f"GPUHUB_SSH_PORT must be a TCP port (1-65535) or 0 (no SSH entrance), got {raw[:40]!r}")
    return int(raw)


def home_volume(volumes: dict) -> tuple[str, str]:
    """The spawner's per-user volume template and where it is mounted: the home."""
    for template in per_user_templates(volumes):
        target = volumes[template]
        return template, target["bind"] if isinstance(target, dict) else target
    raise SshSettingsError("GPUDockerSpawner.volumes names no per-user volume (e.g. "
                           "{'{prefix}-user-{username}': '/home/jovyan'}): the SSH entrance reads "
                           "~/.ssh/authorized_keys from it; set GPUHUB_SSH_PORT=0 to run without SSH")


def service_environment(environ) -> dict:
    """The hub's variables the service reads: DOCKER_HOST and its own GPUHUB_SSH_*."""
    from .app import ENVIRONMENT  # the service's own table: one list of its variables

    return {name: environ[name] for name in ("DOCKER_HOST", *ENVIRONMENT) if name in environ}


def configure_ssh(c: Config, *, state_dir, environ) -> int:
    """Register the entrance (unless GPUHUB_SSH_PORT=0); returns its port."""
    port = ssh_port(environ)
    if not port:
        return 0
    spawner = c.GPUDockerSpawner
    volumes = current(spawner, "volumes", None) or {  # the spawner's default
        "{prefix}-user-{username}": current(spawner, "home_directory", GPUDockerSpawner.home_directory.default_value)}
    template, home = home_volume(volumes)
    command = [
        sys.executable, "-m", "gpuhub.hub.ssh",
        f"--SshEntranceApp.port={port}",
        f"--SshEntranceApp.host_key_file={Path(state_dir) / 'ssh_host_ed25519_key'}",
        f"--SshEntranceApp.hub_id={current(spawner, 'hub_id', '')}",
        f"--SshEntranceApp.prefix={current(spawner, 'prefix', GPUDockerSpawner.prefix.default_value)}",
        f"--SshEntranceApp.image={current(spawner, 'image', GPUDockerSpawner.image.default_value)}",
        f"--SshEntranceApp.home={home}",
        f"--SshEntranceApp.home_volume={template}",
    ]
    hub = c.JupyterHub
    hub.services = [*current(hub, "services", []), {
        "name": SERVICE_NAME, "command": command, "environment": service_environment(environ)}]
    hub.load_roles = [*current(hub, "load_roles", []),
                      {"name": ROLE_NAME, "scopes": list(SCOPES), "services": [SERVICE_NAME]}]
    return port
