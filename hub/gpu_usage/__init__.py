"""The ``gpu-usage`` hub service: who holds which GPU, how busy, since when.

A hub-managed service (``python -m gpuhub.hub.gpu_usage``) with one sampler loop,
server-rendered pages, a JSON API and Prometheus metrics. See hub/README.md.
"""

from pathlib import Path

SERVICE_NAME = "gpu-usage"
READ_ALL_SCOPE = "custom:gpu-usage:read-all"
# Hub template overrides (nav link, GPUs on the home page): c.JupyterHub.template_paths
HUB_TEMPLATES = str(Path(__file__).resolve().parent.parent / "templates")

# Managed services inherit only a few of the hub's variables (PATH,
# LD_LIBRARY_PATH, …); these reach the service too when the hub has them.
PASSED_ENVIRONMENT = (
    "DOCKER_HOST",
    "GPUHUB_USAGE_INTERVAL",
    "GPUHUB_USAGE_IDLE_FLAG",
    "GPUHUB_USAGE_CONTAINER_PREFIX",
)


def service_environment(environ, **settings) -> dict:
    """The service's environment: ``settings``, the hub's PASSED_ENVIRONMENT, and
    any names listed in GPUHUB_SERVICE_ENV (comma-separated), e.g. proxy settings."""
    extra = [name.strip() for name in environ.get("GPUHUB_SERVICE_ENV", "").split(",")]
    names = [name for name in (*PASSED_ENVIRONMENT, *extra) if name in environ]
    return {**{name: environ[name] for name in names}, **settings}
