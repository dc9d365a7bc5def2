# gpuhub: JupyterHub for GPU servers.   jupyterhub -f config/jupyterhub_config.py
#
# Values only. Site settings: environment variables (below), or files in
# config/jupyterhub_config.d/*.py, loaded last in name order (see its README).
# Every GPUDockerSpawner option is documented in its trait's help:
#   python -c "from gpuhub.spawner import GPUDockerSpawner; GPUDockerSpawner.class_print_help()"
import os
import sys
from pathlib import Path

from gpuhub.hub.bootstrap import ensure_fenced_network, ensure_private_dir, ensure_secret_file
from gpuhub.hub.gpu_usage import HUB_TEMPLATES, READ_ALL_SCOPE, service_environment

c = get_config()  # noqa: F821
env = os.environ.get

# ---- where the hub keeps its state (database, secrets: mode 0700/0600) ----
state_dir = ensure_private_dir(env("GPUHUB_STATE_DIR", "/srv/gpuhub"))
c.JupyterHub.db_url = f"sqlite:///{state_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(state_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.auth_token = ensure_secret_file(state_dir / "proxy_auth_token")
c.ConfigurableHTTPProxy.pid_file = str(state_dir / "jupyterhub-proxy.pid")

# ---- network: public proxy; hub on the containers' Docker network only ----
# The hub refuses to start unless that network is fenced (`gpuhub fence apply`):
# containers reach the hub API, not this host's other ports nor 169.254.169.254.
fence, hub_ip = ensure_fenced_network(os.environ)  # GPUHUB_NETWORK, GPUHUB_HUB_PORT, GPUHUB_FENCE_*
network = fence.network
c.JupyterHub.bind_url = env("GPUHUB_BIND_URL", "http://:8000")
c.JupyterHub.hub_bind_url = f"http://{hub_ip}:{fence.hub_port}"
c.JupyterHub.hub_connect_ip = hub_ip

# ---- who may log in ----
# native: local accounts; new sign-ups wait for an admin's approval.
# github / generic-oauth: settings from OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET,
# OAUTH_CALLBACK_URL (and OAUTH2_AUTHORIZE_URL, OAUTH2_TOKEN_URL,
# OAUTH2_USERDATA_URL for generic OIDC); allow-lists in jupyterhub_config.d.
c.JupyterHub.authenticator_class = env(
    "GPUHUB_AUTHENTICATOR", "github" if env("OAUTH_CLIENT_ID") else "native"
)
c.NativeAuthenticator.open_signup = False
c.NativeAuthenticator.allow_all = True  # approval by an admin is NativeAuthenticator's gate
c.Authenticator.admin_users = {env("GPUHUB_ADMIN", "admin")}

# ---- servers: GPUDockerSpawner ----
c.JupyterHub.spawner_class = "gpu-docker"
c.JupyterHub.cleanup_servers = False  # servers (and their GPUs) outlive a hub restart
c.GPUDockerSpawner.image = env("GPUHUB_IMAGE", "gpuhub/pytorch-notebook:2.6-cuda12.4")
c.GPUDockerSpawner.network_name = network
c.GPUDockerSpawner.gpu_quota = int(env("GPUHUB_GPU_QUOTA", "1"))
c.GPUDockerSpawner.mem_limit = env("GPUHUB_MEM_LIMIT", "16G")
c.GPUDockerSpawner.cpu_limit = float(env("GPUHUB_CPU_LIMIT", "4"))
c.GPUDockerSpawner.default_url = "/lab"
c.GPUDockerSpawner.start_timeout = 300  # a first start may pull a large image

# ---- GPU usage service (hub/gpu_usage): who holds which GPU, pages, JSON, metrics ----
# Prometheus: Authorization: Bearer <contents of gpu_usage_metrics_token> on /services/gpu-usage/metrics
usage_metrics_token_file = state_dir / "gpu_usage_metrics_token"
ensure_secret_file(usage_metrics_token_file)
c.JupyterHub.services = [{
    "name": "gpu-usage",
    "command": [sys.executable, "-m", "gpuhub.hub.gpu_usage"],
    "url": f"http://127.0.0.1:{env('GPUHUB_USAGE_PORT', '8082')}",
    "oauth_no_confirm": True,
    "oauth_client_allowed_scopes": [READ_ALL_SCOPE],
    "environment": service_environment(
        os.environ,
        GPUHUB_STATE_DIR=str(state_dir),
        GPUHUB_USAGE_METRICS_TOKEN_FILE=str(usage_metrics_token_file),
    ),
}]
c.JupyterHub.custom_scopes = {
    READ_ALL_SCOPE: {"description": "See every GPU, who holds it, and jobs outside the hub."},
}
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=gpu-usage"]},  # own GPUs
    {"name": "gpu-usage-service", "scopes": ["read:users:name"], "services": ["gpu-usage"]},
    {
        "name": "gpu-usage-readers",
        "scopes": [READ_ALL_SCOPE],
        "users": sorted(c.Authenticator.admin_users),
        "groups": ["instructors"],
    },
]
c.JupyterHub.template_paths = [HUB_TEMPLATES]  # nav link, GPUs on the home page

# ---- site settings and overrides, last so they win ----
config_d = Path(env("GPUHUB_CONFIG_D", Path(__file__).parent / "jupyterhub_config.d"))
for path in sorted(config_d.glob("*.py")):
    load_subconfig(str(path))  # noqa: F821
