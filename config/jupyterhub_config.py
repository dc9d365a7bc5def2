# gpuhub: JupyterHub for GPU servers.   jupyterhub -f config/jupyterhub_config.py
#
# Values only. Site settings: environment variables (below), or files in
# config/jupyterhub_config.d/*.py, loaded last in name order (see its README).
# Every GPUDockerSpawner option is documented in its trait's help:
#   python -c "from gpuhub.spawner import GPUDockerSpawner; GPUDockerSpawner.class_print_help()"
import os
import sys
from pathlib import Path

from gpuhub.hub.bootstrap import ensure_docker_network, ensure_private_dir, ensure_secret_file
from gpuhub.hub.auth.native import NATIVE_PAGE, NATIVE_TEMPLATE_ROOT, NativeAccounts
from gpuhub.hub.auth.oauth import OAUTH_KINDS, OAuthSettingsError, oauth_config
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
network = env("GPUHUB_NETWORK", "gpuhub")
hub_ip = ensure_docker_network(network)
# HTTPS at the proxy when both name PEM files; plain HTTP only on a trusted network.
ssl_cert, ssl_key = env("GPUHUB_SSL_CERT", ""), env("GPUHUB_SSL_KEY", "")
if bool(ssl_cert) != bool(ssl_key):
    sys.exit("gpuhub: HTTPS needs both GPUHUB_SSL_CERT and GPUHUB_SSL_KEY (PEM files): set both, or neither")
c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = ssl_cert, ssl_key
c.JupyterHub.bind_url = env("GPUHUB_BIND_URL", f"{'https' if ssl_cert else 'http'}://:8000")
c.JupyterHub.hub_bind_url = f"http://{hub_ip}:{env('GPUHUB_HUB_PORT', '8081')}"
c.JupyterHub.hub_connect_ip = hub_ip

# ---- who may log in (hub/auth/) ----
# native: local accounts; the hub creates the admin account (GPUHUB_ADMIN) at
# the first start, its password in <state>/admin_passwords/<name>; sign-ups
# wait for an admin's approval. github / generic-oauth: OAUTH_CLIENT_ID, ...
# plus GPUHUB_ADMIN and an allow-list, or the hub refuses to start (config/README.md).
authenticator = env("GPUHUB_AUTHENTICATOR", "github" if env("OAUTH_CLIENT_ID") else "native")
c.JupyterHub.authenticator_class = NativeAccounts if authenticator == "native" else authenticator
c.Authenticator.admin_users = {env("GPUHUB_ADMIN", "admin")}
c.NativeAccounts.admin_passwords_dir = str(state_dir / "admin_passwords")
c.JupyterHub.template_vars = {"gpuhub_parent_page": NATIVE_PAGE if authenticator == "native" else None}
if authenticator in OAUTH_KINDS:
    try:
        c.merge(oauth_config(authenticator, os.environ))
    except OAuthSettingsError as error:
        sys.exit(f"gpuhub: {error}")
# Cookies stay home: no login cookie on cross-site subrequests or form posts;
# HTTPS-only when the hub serves HTTPS (the proxy talks plain HTTP to the hub).
c.JupyterHub.tornado_settings = {
    "cookie_options": {"samesite": "Lax", **({"secure": True} if ssl_cert else {})},
}

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
c.JupyterHub.template_paths = [HUB_TEMPLATES, NATIVE_TEMPLATE_ROOT]  # nav links, GPUs on the home page

# ---- site settings and overrides, last so they win ----
config_d = Path(env("GPUHUB_CONFIG_D", Path(__file__).parent / "jupyterhub_config.d"))
for path in sorted(config_d.glob("*.py")):
    load_subconfig(str(path))  # noqa: F821
