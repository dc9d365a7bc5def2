"""The ``gpu-usage`` hub service: who holds which GPU, how busy, since when.

A hub-managed service (``python -m gpuhub.hub.gpu_usage``) with one sampler loop,
server-rendered pages, a JSON API and Prometheus metrics; the hub config
registers it with :func:`.wiring.configure_gpu_usage`. See hub/README.md.
"""

from pathlib import Path

SERVICE_NAME = "gpu-usage"
READ_ALL_SCOPE = "custom:gpu-usage:read-all"
# Hub template overrides (nav link, GPUs on the home page): c.JupyterHub.template_paths
HUB_TEMPLATES = str(Path(__file__).resolve().parent.parent / "templates")

