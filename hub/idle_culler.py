"""Plain idleness: ``jupyterhub-idle-culler`` as a hub-managed service.

It stops any server (CPU-only or not) with no activity — kernels, terminals,
requests through the proxy: the hub's ``last_activity`` — for
``GPUHUB_IDLE_TIMEOUT`` seconds (default 3600; 0: no culler). Files are kept:
the spawner removes the container, never its volumes. Idle *GPUs* in a server
that is otherwise used are the gpu-usage service's job (GPU idle reclaim).

Its role has the four scopes the culler's README lists for stopping servers,
and no more: never admin. No I/O.
"""

from __future__ import annotations

import sys

from traitlets.config import Config

from gpuhub.hub.gpu_usage.wiring import current

SERVICE_NAME = "idle-culler"
ROLE_NAME = "idle-culler"
SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
DEFAULT_TIMEOUT = 3600


class IdleCullerSettingsError(ValueError):
    """GPUHUB_IDLE_TIMEOUT is not a whole number of seconds."""


def idle_timeout(environ) -> int:
    """GPUHUB_IDLE_TIMEOUT as seconds; 0 turns the culler off."""
    raw = environ.get("GPUHUB_IDLE_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    if not raw.isascii() or not raw.isdigit():
        raise IdleCullerSettingsError(
            f"GPUHUB_IDLE_TIMEOUT must be a whole number of seconds (0: no idle culler), got {raw[:40]!r}")
    return int(raw)


def configure_idle_culler(c: Config, environ) -> int:
    """Register the culler (unless the timeout is 0); returns the timeout."""
    timeout = idle_timeout(environ)
    if not timeout:
        return 0
    c.JupyterHub.services = [*current(c.JupyterHub, "services", []), {
        "name": SERVICE_NAME,
        # the hub gives it JUPYTERHUB_API_URL and its token; it checks every timeout / 2
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}"],
    }]
    c.JupyterHub.load_roles = [*current(c.JupyterHub, "load_roles", []),
                               {"name": ROLE_NAME, "scopes": list(SCOPES), "services": [SERVICE_NAME]}]
    return timeout
