"""The config's one call that registers the service, settings from the
environment only when set, and the service's own settings."""

from pathlib import Path

import pytest
from jupyterhub.app import JupyterHub
from traitlets.config import Config

from gpuhub.hub.environment import settings_from_environment
from gpuhub.hub.gpu_usage import HUB_TEMPLATES, READ_ALL_SCOPE
from gpuhub.hub.gpu_usage.app import GpuUsageApp
from gpuhub.hub.gpu_usage.wiring import configure_gpu_usage
from gpuhub.spawner import GPUDockerSpawner
from gpuhub.spawner.gpu_status import DEFAULT_BUSY_MEMORY

TABLE = {
    "GPUHUB_BIND_URL": (JupyterHub, "bind_url"),
    "GPUHUB_GPU_QUOTA": (GPUDockerSpawner, "gpu_quota"),
    "GPUHUB_MEM_LIMIT": (GPUDockerSpawner, "mem_limit"),
    "GPUHUB_CPU_LIMIT": (GPUDockerSpawner, "cpu_limit"),
}


def test_a_variable_that_is_not_set_leaves_the_trait_default():
    c = Config()
    assert settings_from_environment(c, TABLE, {}) == {}
    assert "gpu_quota" not in c.GPUDockerSpawner and "bind_url" not in c.JupyterHub
    assert JupyterHub(config=c).bind_url == JupyterHub.class_traits()["bind_url"].default_value


def test_a_variable_that_is_set_is_parsed_by_its_trait():
    c = Config()
    environ = {"GPUHUB_GPU_QUOTA": "2", "GPUHUB_CPU_LIMIT": "1.5", "GPUHUB_MEM_LIMIT": "8G",
               "GPUHUB_BIND_URL": "http://:9000"}
    assert settings_from_environment(c, TABLE, environ) == environ
    assert (c.GPUDockerSpawner.gpu_quota, c.GPUDockerSpawner.cpu_limit) == (2, 1.5)
    assert JupyterHub(config=c).bind_url == "http://:9000"


def test_a_bad_value_names_the_variable():
    with pytest.raises(ValueError, match="GPUHUB_GPU_QUOTA='two' is not a valid GPUDockerSpawner.gpu_quota"):
        settings_from_environment(Config(), TABLE, {"GPUHUB_GPU_QUOTA": "two"})


def site_config() -> Config:
    """What config/jupyterhub_config.py and a site file in jupyterhub_config.d set before the call."""
    c = Config()
    c.Authenticator.admin_users = {"admin", "boss"}
    c.JupyterHub.services.append({"name": "site-service", "api_token": "x" * 32})  # lazily, as sites do
    c.JupyterHub.load_roles.append({"name": "site-role", "scopes": ["read:users"], "services": ["site-service"]})
    c.JupyterHub.template_paths = ["/etc/site/templates"]
    c.JupyterHub.template_vars = {"gpuhub_parent_page": "nativeauthenticator/templates/page.html", "none": None}
    c.GPUDockerSpawner.busy_memory_threshold = "512M"
    c.GPUDockerSpawner.hub_id = "gpuhub-0123456789ab"
    return c


def test_the_service_wiring_is_one_call_that_keeps_what_sites_set(tmp_path):
    c = site_config()
    environ = {"DOCKER_HOST": "unix:///x.sock", "GPUHUB_USAGE_INTERVAL": "2", "HTTPS_PROXY": "p",
               "GPUHUB_SERVICE_ENV": "HTTPS_PROXY, NOT_SET", "UNRELATED": "u"}
    configure_gpu_usage(c, state_dir=tmp_path, port=8099, environ=environ)
    hub = JupyterHub(config=c)
    site, usage = hub.services
    assert site["name"] == "site-service"
    assert usage["name"] == "gpu-usage" and usage["url"] == "http://127.0.0.1:8099"
    assert usage["environment"] == {"DOCKER_HOST": "unix:///x.sock", "GPUHUB_USAGE_INTERVAL": "2",
                                    "HTTPS_PROXY": "p"}
    assert READ_ALL_SCOPE in usage["oauth_client_allowed_scopes"]
    assert hub.template_paths[:2] == ["/etc/site/templates", HUB_TEMPLATES]
    roles = {role["name"]: role for role in hub.load_roles}
    assert "site-role" in roles
    assert roles["gpu-usage-readers"]["users"] == ["admin", "boss"]
    # least privilege: names (404 for unknown users); for GPU reclaim, read and stop
    # servers; for long jobs, report activity; for cohort reports, read the groups
    # (members, properties)
    assert roles["gpu-usage-service"]["scopes"] == [
        "read:users:name", "read:servers", "read:users:activity", "delete:servers",
        "users:activity", "list:groups", "read:groups"]
    assert READ_ALL_SCOPE in hub.custom_scopes
    token = tmp_path / "gpu_usage_metrics_token"
    assert token.stat().st_mode & 0o777 == 0o600

    # The command line carries what the service must follow from the hub's config.
    app = GpuUsageApp()
    app.parse_command_line(usage["command"][3:])
    assert app.state_dir == str(tmp_path) and app.metrics_token_file == str(token)
    assert app.busy_memory_threshold == 512 * 2**20  # the spawner's "free", not the default
    assert app.hub_id == "gpuhub-0123456789ab"  # GPU reclaim stops this hub's servers only
    assert app.hub_template_paths == ["/etc/site/templates", HUB_TEMPLATES]
    assert app.hub_template_vars == {"gpuhub_parent_page": "nativeauthenticator/templates/page.html"}


def test_without_a_site_threshold_the_service_uses_the_one_default(tmp_path):
    c = Config()
    configure_gpu_usage(c, state_dir=tmp_path, port=8099, environ={})
    (usage,) = JupyterHub(config=c).services
    app = GpuUsageApp()
    app.parse_command_line(usage["command"][3:])
    assert app.busy_memory_threshold == DEFAULT_BUSY_MEMORY
    assert app.hub_template_paths == [HUB_TEMPLATES]


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    (tmp_path / "gpu_usage_metrics_token").write_text("t0ken\n")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:9")
    for name in ("GPUHUB_USAGE_INTERVAL", "GPUHUB_USAGE_IDLE_FLAG", "GPUHUB_USAGE_CONTAINER_PREFIX",
                 "GPUHUB_USAGE_BUSY_MEMORY", "GPUHUB_USAGE_METRICS_TOKEN_FILE", "GPUHUB_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def started(argv) -> GpuUsageApp:
    app = GpuUsageApp()
    app.initialize(argv)
    app.store.close()
    return app


def test_service_settings_default_in_one_place_and_environment_only_when_set(state_dir, monkeypatch):
    app = started([f"--GpuUsageApp.state_dir={state_dir}"])
    traits = GpuUsageApp.class_traits()
    for name in ("interval", "idle_flag_seconds", "container_prefix", "busy_memory_threshold"):
        assert getattr(app, name) == traits[name].default_value, name
    assert app.metrics_token == "t0ken"

    monkeypatch.setenv("GPUHUB_USAGE_INTERVAL", "1")
    monkeypatch.setenv("GPUHUB_USAGE_IDLE_FLAG", "2")
    monkeypatch.setenv("GPUHUB_STATE_DIR", str(state_dir))
    app = started(["--GpuUsageApp.idle_flag_seconds=3"])  # the command line wins
    assert (app.interval, app.idle_flag_seconds, app.state_dir) == (1.0, 3.0, str(state_dir))


def test_bad_service_settings_stop_it_with_a_message(state_dir, monkeypatch, caplog):
    monkeypatch.setenv("GPUHUB_USAGE_INTERVAL", "soon")
    with pytest.raises(SystemExit):
        started([f"--GpuUsageApp.state_dir={state_dir}"])
    monkeypatch.delenv("GPUHUB_USAGE_INTERVAL")
    with pytest.raises(SystemExit):
        started([])  # no state dir


def test_pages_render_inside_the_hubs_page_frame(state_dir):
    """JupyterHub's page.html with gpuhub's override: the hub's top bar, logo and logout."""
    app = started([f"--GpuUsageApp.state_dir={state_dir}"])
    html = app.jinja_environment().get_template("error.html").render(
        base_url="/hub/", prefix="/", user={"name": "ann", "json_escaped_name": "ann"},
        logout_url="/hub/logout", static_url=lambda path, include_version=True: f"/hub/static/{path}",
        services=[], parsed_scopes=set(), no_spawner_check=True, xsrf_token="x",
        usage_prefix="/services/gpu-usage/", can_read_all=False, interval=5, status=403, message="no",
        views=None)
    assert 'id="jupyterhub-logo"' in html and "/hub/logo" in html
    assert 'href="/hub/home">Home' in html and 'href="/hub/token">Token' in html
    assert 'id="nav-gpu-usage" href="/services/gpu-usage/"' in html  # gpuhub's override
    assert 'id="logout"' in html and 'href="/hub/logout"' in html
    assert Path(HUB_TEMPLATES, "page.html").exists()


def test_a_user_name_cannot_end_the_script_block():
    from gpuhub.hub.gpu_usage.handlers import script_string

    assert script_string('ann"</script><b>&') == 'ann\\"\\u003c/script\\u003e\\u003cb\\u003e\\u0026'
    assert script_string("zoë") == "zo\\u00eb"
