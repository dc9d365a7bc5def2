"""The SSH entrance's pure parts: throttling, where forwards may go, which keys
and tokens open a shell, the home volume's name pattern, the hub wiring, the
host key. The real thing runs in tests/ssh/."""

import stat

import asyncssh
import pytest
from traitlets.config import Config

from gpuhub.hub.ssh import SERVICE_NAME
from gpuhub.hub.ssh.app import ensure_host_key
from gpuhub.hub.ssh.engine import EngineError, engine_address, volume_pattern
from gpuhub.hub.ssh.hub_api import server_path, token_allows_server
from gpuhub.hub.ssh.server import key_allowed, parse_keys, parse_login
from gpuhub.hub.ssh.sessions import forward_destination
from gpuhub.hub.ssh.throttle import Throttle
from gpuhub.hub.ssh.wiring import SCOPES, SshSettingsError, configure_ssh


# ---- throttle -------------------------------------------------------------
def test_free_failures_then_doubling_delays_then_refusal():
    throttle = Throttle(free_failures=3, max_failures=6, window=900, max_delay=10)
    delays = []
    for n in range(6):
        delays.append(throttle.delay("10.0.0.9", "alice", 100.0 + n))
        assert not throttle.blocked_for("10.0.0.9", "alice", 100.0 + n)
        throttle.record_failure("10.0.0.9", "alice", 100.0 + n)
    assert delays == [0, 0, 0, 1, 2, 4]
    assert throttle.blocked_for("10.0.0.9", "alice", 106.0) == pytest.approx(894.0)
    assert throttle.blocked_for("10.0.0.9", "bob", 106.0) > 0  # the address, whatever the name
    assert throttle.blocked_for("10.0.0.8", "bob", 106.0) == 0  # another address is not slowed
    assert throttle.delay("10.0.0.8", "bob", 106.0) == 0
    assert throttle.blocked_for("10.0.0.9", "alice", 100.0 + 900.5) == 0  # the window passed


def test_a_user_name_is_refused_only_at_three_times_the_address_limit():
    throttle = Throttle(free_failures=3, max_failures=4, window=900, max_delay=10)
    for n in range(11):  # from 11 addresses: none reaches its own limit
        throttle.record_failure(f"10.0.1.{n}", "alice", 100.0)
    assert not throttle.blocked_for("10.0.2.1", "alice", 101.0)
    assert throttle.delay("10.0.2.1", "alice", 101.0) == 1  # 11 // 3 = 3 failures counted: slowed
    throttle.record_failure("10.0.1.99", "alice", 100.0)
    assert throttle.blocked_for("10.0.2.1", "alice", 101.0) > 0
    assert throttle.delay("10.0.2.1", "bob", 101.0) == 0


def test_delays_stop_at_max_delay_and_memory_stays_bounded():
    throttle = Throttle(free_failures=0, max_failures=1000, window=900, max_delay=10)
    for n in range(50):
        throttle.record_failure("10.0.0.9", "alice", float(n))
    assert throttle.delay("10.0.0.9", "alice", 50.0) == 10
    assert len(throttle._failures[("addr", "10.0.0.9")]) <= 1000


# ---- forwarding -------------------------------------------------------------
@pytest.mark.parametrize("host,expected", [("localhost", "127.0.0.1"), ("127.0.0.1", "127.0.0.1"),
                                           ("LOCALHOST", "127.0.0.1"), ("::1", "::1")])
def test_forwards_go_to_the_container_loopback(host, expected):
    assert forward_destination(host, 6006) == (expected, 6006)


@pytest.mark.parametrize("host,port", [("172.31.1.1", 8081), ("10.0.0.1", 80), ("169.254.169.254", 80),
                                       ("example.org", 443), ("127.0.0.2", 80), ("0.0.0.0", 80),
                                       ("localhost", 0), ("localhost", 70000)])
def test_forwards_anywhere_else_are_refused(host, port):
    with pytest.raises(asyncssh.ChannelOpenError) as refused:
        forward_destination(host, port)
    assert refused.value.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED
    assert "localhost:PORT" in refused.value.reason


# ---- keys and tokens -------------------------------------------------------
@pytest.fixture(scope="module")
def keys():
    """Public keys, as a client offers them."""
    return [asyncssh.generate_private_key("ssh-ed25519").convert_to_public() for _ in range(2)]


def line(key, options=""):
    return f"{options} {key.export_public_key().decode().strip()}".strip()


def test_a_listed_key_is_allowed_another_is_not(keys):
    listed = parse_keys(f"# my laptop\n\n{line(keys[0])}\nnot a key at all\n", "alice")
    assert key_allowed(listed, keys[0], "10.0.0.9", "alice")
    assert not key_allowed(listed, keys[1], "10.0.0.9", "alice")
    assert not key_allowed(parse_keys("", "alice"), keys[0], "10.0.0.9", "alice")


def test_from_is_honoured_and_options_the_entrance_does_not_enforce_refuse_the_key(keys):
    listed = parse_keys(line(keys[0], 'from="10.0.0.0/8"') + "\n" + line(keys[1], 'command="backup"'), "alice")
    assert key_allowed(listed, keys[0], "10.1.2.3", "alice")
    assert not key_allowed(listed, keys[0], "192.168.1.1", "alice")
    assert not key_allowed(listed, keys[1], "10.1.2.3", "alice")  # would open a shell, not run "backup"


def test_only_tokens_that_may_use_the_server_open_a_shell():
    assert token_allows_server(["access:servers!user=alice", "read:users!user=alice"], "alice")
    assert token_allows_server(["access:servers!server=alice/"], "alice")
    assert not token_allows_server(["access:servers!user=bob"], "alice")
    assert not token_allows_server(["read:users:name!user=alice"], "alice")
    assert not token_allows_server(["access:servers!server=alice/gpu"], "alice")  # a named server only
    assert token_allows_server(["access:servers!server=alice/gpu"], "alice", "gpu")
    assert not token_allows_server(["access:servers!server=alice/"], "alice", "gpu")


def test_the_ssh_user_name_names_a_user_and_one_of_their_servers():
    assert parse_login("alice") == ("alice", "")
    assert parse_login("alice/lab") == ("alice", "lab")
    assert parse_login("a.b@example.org/gpu-2") == ("a.b@example.org", "gpu-2")
    for bad in ("", "/lab", "alice/", "alice/lab/x"):
        assert parse_login(bad) is None, bad
    assert server_path("alice", "") == "/users/alice/server"
    assert server_path("a b", "my lab") == "/users/a%20b/servers/my%20lab"


# ---- engine helpers ---------------------------------------------------------
def test_the_home_volume_pattern_fixes_the_prefix_and_matches_any_user_name():
    pattern = volume_pattern("{prefix}-user-{username}", "gpuhub")
    assert pattern.fullmatch("gpuhub-user-alice") and pattern.fullmatch("gpuhub-user-a-2ebob")
    assert not pattern.fullmatch("gpuhub-archive-alice-20260101T000000Z")
    assert not pattern.fullmatch("other-user-alice") and not pattern.fullmatch("gpuhubXuser-alice")


def test_engine_address(monkeypatch):
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    assert engine_address("unix:///run/x.sock") == ("unix", "/run/x.sock")
    assert engine_address(None) == ("unix", "/var/run/docker.sock")
    assert engine_address("tcp://10.0.0.2:2375") == ("tcp", "10.0.0.2:2375")
    with pytest.raises(EngineError, match="unix:// or plain tcp://"):
        engine_address("ssh://me@host")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    with pytest.raises(EngineError):
        engine_address("tcp://10.0.0.2:2376")


# ---- wiring and host key ----------------------------------------------------
def test_the_entrance_is_a_scoped_service_never_admin(tmp_path):
    c = Config()
    c.GPUDockerSpawner.hub_id = "gpuhub-abc"
    c.GPUDockerSpawner.image = "gpuhub/pytorch-notebook:2.6"
    c.GPUDockerSpawner.volumes = {"/srv/data": "/data", "{prefix}-home-{username}": {"bind": "/home/me", "mode": "rw"}}
    assert configure_ssh(c, state_dir=tmp_path, environ={"GPUHUB_SSH_PORT": "2222", "DOCKER_HOST": "unix:///d",
                                                         "GPUHUB_SSH_MAX_FAILURES": "5", "SECRET": "x"}) == 2222
    (service,) = c.JupyterHub.services
    assert service["name"] == SERVICE_NAME and "admin" not in service and "url" not in service
    assert "--SshEntranceApp.port=2222" in service["command"]
    assert "--SshEntranceApp.hub_id=gpuhub-abc" in service["command"]
    assert "--SshEntranceApp.home_volume={prefix}-home-{username}" in service["command"]
    assert "--SshEntranceApp.home=/home/me" in service["command"]
    assert service["environment"] == {"DOCKER_HOST": "unix:///d", "GPUHUB_SSH_PORT": "2222",
                                      "GPUHUB_SSH_MAX_FAILURES": "5"}
    (role,) = c.JupyterHub.load_roles
    assert role == {"name": "gpuhub-ssh", "scopes": SCOPES, "services": [SERVICE_NAME]}
    assert not any(scope.startswith("admin") for scope in SCOPES)


def test_port_default_off_and_bad_values():
    c = Config()
    assert configure_ssh(c, state_dir="/s", environ={}) == 8022
    assert "--SshEntranceApp.home_volume={prefix}-user-{username}" in c.JupyterHub.services[0]["command"]
    off = Config()
    assert configure_ssh(off, state_dir="/s", environ={"GPUHUB_SSH_PORT": "0"}) == 0
    assert "services" not in off.JupyterHub
    for bad in ("ssh", "-1", "70000"):
        with pytest.raises(SshSettingsError, match="GPUHUB_SSH_PORT must be a TCP port"):
            configure_ssh(Config(), state_dir="/s", environ={"GPUHUB_SSH_PORT": bad})
    no_home = Config()
    no_home.GPUDockerSpawner.volumes = {"/srv/data": "/data"}
    with pytest.raises(SshSettingsError, match="GPUHUB_SSH_PORT=0"):
        configure_ssh(no_home, state_dir="/s", environ={})


def test_the_host_key_is_made_once_0600(tmp_path):
    path = tmp_path / "ssh_host_ed25519_key"
    first = ensure_host_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_host_key(path).export_public_key() == first.export_public_key()
