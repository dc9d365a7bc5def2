"""A real converge: site.yml turns a fresh Debian target (systemd as PID 1, in
a container on the test engine) into a running hub behind HTTPS, twice.

The target installs docker.io, Python, Node.js, configurable-http-proxy and
nginx from Debian and the project's dependencies from PyPI (through the
test's egress proxy); the test notebook image goes in from a `docker save`
archive (gpuhub_notebook_image_archive). Fakes only at the hardware
boundary: the fake libnvidia-ml.so.1 and the fake nvidia hook, mounted into
the target and named by systemd drop-ins only this test writes. The tests
below run in order on one target: deploy, log in and spawn over HTTPS,
ufw (active on the target before the play) lets in HTTPS and the SSH
entrance and nothing else, --check --diff, a second converge with changed=0,
a hub restart that keeps the server and its GPU.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.ansible.target import FAKES, EgressProxy, Target, ansible_playbook, docker, recap
from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import IMAGE, REPO, wait_for

ADMIN, PASSWORD = "ann", "ansible-Test-pass-1"
SERVER_NAME = "hub.test"  # tls_proxy_server_name: the certificate's name
TIMINGS: dict[str, float] = {}

DOCKER_DROP_IN = f"""[Service]
# gpuhub test: the fake nvidia hook makes dockerd accept GPU requests
Environment=PATH={FAKES}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"""
HUB_DROP_IN = f"""[Service]
# gpuhub test: the fake NVML for the hub and its gpu-usage service
Environment=LD_LIBRARY_PATH={FAKES}/nvml/lib FAKE_NVML_STATE={FAKES}/state/gpus
Environment=GPUHUB_SERVICE_ENV=LD_LIBRARY_PATH,FAKE_NVML_STATE
"""


class PinnedHost(HTTPAdapter):
    """HTTPS to the target's address, checking the certificate for SERVER_NAME."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs.update(server_hostname=SERVER_NAME, assert_hostname=SERVER_NAME)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def deployed(engine, nvml_library, tmp_path_factory):
    work = tmp_path_factory.mktemp("converge")
    state = work / "state"
    state.mkdir(mode=0o755)
    gpus = FakeNVML.make_gpus(2)
    FakeNVML(state / "gpus").write(gpus)
    (state / "gpus").chmod(0o644)
    archive = work / "notebook-image.tar"
    docker("save", "--output", str(archive), IMAGE)
    proxy = EgressProxy()
    target = Target("converge", mounts=(
        "/etc/ssl/certs/ca-certificates.crt:/etc/gpuhub-test/ca-certificates.crt:ro",
        f"{REPO}/tests/fakes/bin:{FAKES}/bin:ro",
        f"{nvml_library}:{FAKES}/nvml/lib:ro",
        f"{state}:{FAKES}/state:ro",
    ))
    try:
        target.start(proxy)
        # A host whose own firewall is on (ufw, every incoming connection
        # denied): the play must let its public ports in (host_firewall: auto).
        # ufw's kernel hardening (/etc/ufw/sysctl.conf) is host-wide, read-only
        # in a container: emptied here, on the target only.
        target.exec("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ufw"
                    " >/dev/null && : > /etc/ufw/sysctl.conf && ufw --force enable")
        target.write("/etc/systemd/system/docker.service.d/gpuhub-test.conf", DOCKER_DROP_IN)
        target.write("/etc/systemd/system/gpuhub.service.d/gpuhub-test.conf", HUB_DROP_IN)
        inventory = target.inventory(work / "inventory.json", {
            "gpuhub_admin": ADMIN,
            "gpuhub_admin_password": PASSWORD,
            "gpuhub_authenticator": "native",
            "gpuhub_source": str(REPO),
            "gpuhub_notebook_image": IMAGE,
            "gpuhub_notebook_image_build": False,
            "gpuhub_notebook_image_archive": str(archive),
            "tls_proxy_mode": "self_signed",
            "tls_proxy_server_name": SERVER_NAME,
        })
        first = ansible_playbook(inventory)
        TIMINGS["first converge"] = first.seconds
        assert first.returncode == 0, first.output[-6000:]
        cert = work / "hub.crt"
        docker("cp", f"{target.container}:/etc/gpuhub/tls/self_signed.crt", str(cert))
        yield {"target": target, "inventory": inventory, "first": first, "cert": cert, "gpus": gpus,
               "url": f"https://{target.ip()}"}
    except BaseException:
        print(target.exec("journalctl", "--no-pager", "-n", "80", "-u", "gpuhub", check=False).stdout)
        raise
    finally:
        proxy.stop()
        target.remove()
        print("timings (s):", {k: round(v, 1) for k, v in TIMINGS.items()})


def https(deployed) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment replaces verify
    session.verify = str(deployed["cert"])
    session.mount("https://", PinnedHost())
    return session


def api(deployed, token, method, path, **kwargs):
    return https(deployed).request(
        method, f"{deployed['url']}/hub/api{path}", headers={"Authorization": f"token {token}"}, timeout=120, **kwargs)


def nested_container(deployed, user) -> dict:
    """The user's container in the target's own Docker engine."""
    import json

    out = deployed["target"].exec("docker", "inspect", f"gpuhub-{user}").stdout
    return json.loads(out)[0]


def wait_ready(deployed, token, user, timeout=240):
    def ready():
        server = api(deployed, token, "GET", f"/users/{user}").json()["servers"].get("")
        return server if server and server["ready"] else None
    return wait_for(ready, f"{user}'s server to be ready", timeout=timeout)


PROCESSES = """
import pathlib
for p in pathlib.Path("/proc").glob("[0-9]*"):
    try:
        print(p.name, p.joinpath("cmdline").read_bytes().replace(b"\\0", b" ").decode())
    except OSError:
        pass
"""


def processes(target) -> dict[str, str]:
    """PID -> command line, in the target (minbase has no ps)."""
    lines = target.exec("python3", "-c", PROCESSES).stdout.splitlines()
    return dict((line.split(" ", 1) + [""])[:2] for line in lines)


def hub_children(target) -> set[str]:
    """PIDs of configurable-http-proxy, the gpu-usage service and the SSH entrance."""
    return {pid for pid, args in processes(target).items()
            if "configurable-http-proxy" in args or "gpuhub.hub.gpu_usage" in args or "gpuhub.hub.ssh" in args}


def test_first_converge_deploys_everything_and_skips_the_gpu_role(deployed):
    output = deployed["first"].output
    # The GPU role said why it did nothing on this GPU-less target.
    assert "nvidia_container_toolkit: skipped, no NVIDIA GPU on this host" in output
    # The play ends by saying where the admin's password is.
    assert output.rindex("TASK [tls_proxy") < output.index(f"sudo cat /srv/gpuhub/admin_passwords/{ADMIN}")
    target = deployed["target"]
    for unit in ("docker", "gpuhub-fence", "gpuhub", "nginx"):
        assert target.exec("systemctl", "is-active", unit, check=False).stdout.strip() == "active", unit
    # The hub's proxy listens on localhost only; nginx is the public face.
    listening = target.exec("ss", "-Htln").stdout
    assert "127.0.0.1:8000" in listening and "0.0.0.0:8000" not in listening and "*:8000" not in listening
    # Plain HTTP redirects to HTTPS.
    plain = requests.get(f"http://{target.ip()}/hub/login", allow_redirects=False, timeout=30)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    # Secrets: the environment file is root's, the admin password the hub's, both 0600.
    modes = target.exec("stat", "-c", "%U %a %n", "/etc/gpuhub/gpuhub.env",
                        f"/srv/gpuhub/admin_passwords/{ADMIN}", "/srv/gpuhub").stdout.split("\n")
    assert modes[:3] == ["root 600 /etc/gpuhub/gpuhub.env", f"gpuhub 600 /srv/gpuhub/admin_passwords/{ADMIN}",
                         "gpuhub 700 /srv/gpuhub"]
    # The hub runs unprivileged and hardened, its children in its cgroup.
    shown = dict(line.split("=", 1) for line in target.exec(
        "systemctl", "show", "gpuhub", "-p", "User,NoNewPrivileges,ProtectSystem,ProtectHome,PrivateTmp,KillMode,"
        "ReadWritePaths,ExecStartPre").stdout.splitlines())
    assert shown["User"] == "gpuhub" and shown["NoNewPrivileges"] == "yes"
    assert (shown["ProtectSystem"], shown["ProtectHome"], shown["PrivateTmp"]) == ("strict", "yes", "yes")
    assert shown["KillMode"] == "control-group" and shown["ReadWritePaths"] == "/srv/gpuhub"
    assert "upgrade-db" in shown["ExecStartPre"]
    # The fence is in place in the target's own iptables.
    assert target.exec("/opt/gpuhub/venv/bin/gpuhub", "fence", "check", check=False).returncode == 0


def test_admin_logs_in_over_https_and_spawns_a_gpu_server(deployed):
    session = https(deployed)
    url = deployed["url"]
    session.get(f"{url}/hub/login", timeout=60)
    login = session.post(f"{url}/hub/login", allow_redirects=False, timeout=60, data={
        "username": ADMIN, "password": PASSWORD, "_xsrf": session.cookies.get("_xsrf", "")})
    assert login.status_code == 302, login.text[:2000]
    made = session.post(f"{url}/hub/api/users/{ADMIN}/tokens", json={"note": "converge test"}, timeout=60,
                        headers={"X-XSRFToken": session.cookies.get("_xsrf", "")})
    assert made.status_code == 201, made.text
    token = deployed["token"] = made.json()["token"]

    started = time.monotonic()
    spawn = api(deployed, token, "POST", f"/users/{ADMIN}/server", json={"gpus": 1})
    assert spawn.status_code in (201, 202), spawn.text
    wait_ready(deployed, token, ADMIN)
    TIMINGS["spawn"] = time.monotonic() - started
    container = nested_container(deployed, ADMIN)
    held = container["Config"]["Labels"]["gpuhub.gpus"]
    assert held in {gpu.uuid for gpu in deployed["gpus"]}
    deployed["held"], deployed["container_id"] = held, container["Id"]
    # The user's server answers through nginx and the hub's proxy.
    lab = https(deployed).get(f"{url}/user/{ADMIN}/api/status", timeout=60,
                             headers={"Authorization": f"token {token}"})
    assert lab.status_code == 200, lab.text[:500]


def test_ufw_lets_in_the_public_ports_and_nothing_else(deployed, tmp_path):
    target = deployed["target"]
    rules = target.exec("ufw", "status").stdout
    assert "Status: active" in rules
    for port, what in (("80", "HTTP"), ("443", "HTTPS"), ("8022", "SSH entrance")):
        assert re.search(rf"^{port}/tcp +ALLOW +Anywhere +# gpuhub {what}", rules, re.M), rules
    # The SSH entrance through the firewall, with a key from ann's home.
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    target.exec("docker", "exec", "-u", "1000", f"gpuhub-{ADMIN}", "sh", "-c",
                f'mkdir -p ~/.ssh && echo "{key.with_suffix(".pub").read_text().strip()}" >> ~/.ssh/authorized_keys')
    entered = subprocess.run(
        ["ssh", "-p", "8022", "-i", str(key), "-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         f"{ADMIN}@{target.ip()}", "echo $JUPYTERHUB_USER"],
        capture_output=True, text=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"})
    assert entered.stdout.strip() == ADMIN, entered.stderr
    # Any other port stays closed from outside, though it answers on the host itself.
    target.exec("systemd-run", "--unit", "gpuhub-test-probe", "python3", "-m", "http.server", "9099")
    wait_for(lambda: target.exec("python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9099')",
                                 check=False).returncode == 0, "the probe server in the target", timeout=30)
    with pytest.raises(OSError):
        socket.create_connection((target.ip(), 9099), timeout=3).close()
    target.exec("systemctl", "stop", "gpuhub-test-probe")


def test_check_diff_changes_nothing(deployed):
    result = ansible_playbook(deployed["inventory"], "--check", "--diff")
    TIMINGS["check --diff"] = result.seconds
    assert result.returncode == 0, result.output[-6000:]
    assert recap(result.output)["changed"] == 0, result.output[-6000:]


def test_second_converge_changes_nothing(deployed):
    result = ansible_playbook(deployed["inventory"])
    TIMINGS["second converge"] = result.seconds
    assert result.returncode == 0, result.output[-6000:]
    counts = recap(result.output)
    assert counts["changed"] == 0 and counts["failed"] == 0, result.output[-6000:]


def test_hub_restart_keeps_the_server_and_its_gpu(deployed):
    token, target = deployed["token"], deployed["target"]
    before = target.exec("systemctl", "show", "-p", "MainPID", "gpuhub").stdout
    children = hub_children(target)
    assert len(children) == 3, children  # configurable-http-proxy, gpu-usage and gpuhub-ssh
    target.exec("systemctl", "restart", "gpuhub")
    assert target.exec("systemctl", "show", "-p", "MainPID", "gpuhub").stdout != before
    # KillMode: the old proxy and service stopped with the old hub.
    assert not children & set(processes(target))
    wait_for(lambda: api(deployed, token, "GET", "/").status_code == 200, "the hub after its restart", timeout=120)
    wait_ready(deployed, token, ADMIN, timeout=60)
    container = nested_container(deployed, ADMIN)
    assert container["Id"] == deployed["container_id"] and container["State"]["Running"]
    assert container["Config"]["Labels"]["gpuhub.gpus"] == deployed["held"]
    # The restarted hub still counts ann's GPU as held: bob gets the other one.
    assert api(deployed, token, "POST", "/users", json={"usernames": ["bob"]}).status_code in (201, 409)
    assert api(deployed, token, "POST", "/users/bob/server", json={"gpus": 1}).status_code in (201, 202)
    wait_ready(deployed, token, "bob")
    other = {gpu.uuid for gpu in deployed["gpus"]} - {deployed["held"]}
    assert nested_container(deployed, "bob")["Config"]["Labels"]["gpuhub.gpus"] in other
