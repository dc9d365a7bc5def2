# gpuhub: JupyterHub for GPU servers.   jupyterhub -f config/jupyterhub_config.py
#
# Values only. Site settings: environment variables (below), or files in
# config/jupyterhub_config.d/*.py, loaded last in name order (see its README).
# Every GPUDockerSpawner option is documented in its trait's help:
#   python -c "from gpuhub.spawner import GPUDockerSpawner; GPUDockerSpawner.class_print_help()"
import os
import sys
from pathlib import Path

from gpuhub.hub.auth.native import NATIVE_PAGE, NATIVE_TEMPLATE_ROOT, NativeAccounts
from gpuhub.hub.auth.oauth import OAUTH_KINDS, OAuthSettingsError, oauth_config
from gpuhub.hub.bootstrap import ensure_fenced_network, ensure_private_dir, ensure_secret_file
from gpuhub.hub.cohort.roles_api import configure_cohort_api
from gpuhub.hub.gpu_usage.wiring import configure_gpu_usage
from gpuhub.hub.idle_culler import IdleCullerSettingsError, configure_idle_culler
from gpuhub.hub.identity import ensure_hub_id, ensure_prefix_is_ours
from gpuhub.hub.ssh.wiring import SshSettingsError, configure_ssh
from gpuhub.hub.reset import configure_reset
from gpuhub.hub.variables import apply_hub_variables
from gpuhub.spawner import GPUDockerSpawner

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
c.JupyterHub.hub_bind_url = f"http://{hub_ip}:{fence.hub_port}"
# HTTPS at the proxy when both name PEM files; plain HTTP only on a trusted network.
ssl_cert, ssl_key = env("GPUHUB_SSL_CERT", ""), env("GPUHUB_SSL_KEY", "")
if bool(ssl_cert) != bool(ssl_key):
    sys.exit("gpuhub: HTTPS needs both GPUHUB_SSL_CERT and GPUHUB_SSL_KEY (PEM files): set both, or neither")
if ssl_cert:
    c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = ssl_cert, ssl_key
    c.JupyterHub.bind_url = "https://:8000"  # JupyterHub's default address, over TLS
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
if authenticator == "shared-password":  # hackathons: password_groups in a site file (hub/cohort/README.md)
    c.SharedPasswordAuthenticator.admin_password = ensure_secret_file(
        ensure_private_dir(state_dir / "admin_passwords") / "shared-password", 24)
c.JupyterHub.template_vars = {"gpuhub_parent_page": NATIVE_PAGE if authenticator == "native" else None}
c.JupyterHub.template_paths = [NATIVE_TEMPLATE_ROOT]  # where NATIVE_PAGE is found
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

# ---- cohorts (hub/cohort): instructors' roles and one-time passwords, hub-side API ----
configure_cohort_api(c)

# ---- servers: GPUDockerSpawner ----
c.JupyterHub.spawner_class = "gpu-docker"
# Names and labels on the Docker engine: several hubs may share one (spawner/README.md)
c.GPUDockerSpawner.hub_id = ensure_hub_id(state_dir)
c.JupyterHub.cleanup_servers = False  # servers (and their GPUs) outlive a hub restart
c.GPUDockerSpawner.image = "gpuhub/pytorch-notebook:2.6-cuda12.4"
c.GPUDockerSpawner.network_name = network
c.GPUDockerSpawner.mem_limit = "16G"
c.GPUDockerSpawner.cpu_limit = min(4, os.cpu_count() or 1)  # Docker refuses more than the host has
c.GPUDockerSpawner.default_url = "/lab"
# start_timeout: queue_timeout + 10 min to start (spawner/settings.py); who waits
# for GPUs is kept here, so that after a restart each is told their place is lost
c.GPUDockerSpawner.queue_file = str(state_dir / "gpu-queue.json")
# Named servers: each user may have this many besides the default one (a stopped
# one counts until deleted); GPUHUB_NAMED_SERVERS=0 turns them off.
c.JupyterHub.named_server_limit_per_user = 3

# ---- environment variables: each sets its trait only when set (hub/variables.py, config/README.md) ----
try:
    apply_hub_variables(c, os.environ)
except ValueError as error:
    sys.exit(f"gpuhub: {error}")

# ---- site settings and overrides, last so they win ----
config_d = Path(env("GPUHUB_CONFIG_D", Path(__file__).parent / "jupyterhub_config.d"))
for path in sorted(config_d.glob("*.py")):
    load_subconfig(str(path))  # noqa: F821

# ---- idle servers: jupyterhub-idle-culler, scoped role (GPUHUB_IDLE_TIMEOUT, 0 = off) ----
try:
    configure_idle_culler(c, os.environ)
except IdleCullerSettingsError as error:
    sys.exit(f"gpuhub: {error}")

# ---- GPU usage service (hub/gpu_usage): who holds which GPU, pages, JSON, metrics ----
# After the site files: it follows their busy_memory_threshold, template_paths, admins.
configure_gpu_usage(c, state_dir=state_dir, port=env("GPUHUB_USAGE_PORT", "8082"))

# ---- Reset my environment (hub/reset.py): the page, GET/POST/DELETE …/reset in the API ----
configure_reset(c)

# ---- SSH entrance (hub/ssh): ssh -p 8022 USER@HUB into one's own server (GPUHUB_SSH_PORT, 0 = off) ----
# After the site files: it follows their prefix, image and volumes.
try:
    configure_ssh(c, state_dir=state_dir, environ=os.environ)
except SshSettingsError as error:
    sys.exit(f"gpuhub: {error}")

# ---- last, with the final settings: this hub's names on the engine are its own ----
ensure_prefix_is_ours(
    c.GPUDockerSpawner.get("prefix", GPUDockerSpawner.prefix.default_value),
    c.GPUDockerSpawner.hub_id,
)
