"""The network fence on the real engine and the host's real iptables.

Each test works on its own network (``<prefix>-fence…``) and removes its
fence and network again. Traffic goes only to this machine: a listener the
test starts on 0.0.0.0, and the hub on the network's gateway. 169.254.0.0/16
is checked in the rules, never sent to.
"""

import json
import os
import re
import socket
import subprocess
import threading

import docker
import pytest

from gpuhub.hub.bootstrap import ensure_docker_network
from gpuhub.hub.fence import network_facts
from gpuhub.hub.fence_rules import chain_name, tag
from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import FENCE_COMMAND, IMAGE, PREFIX, fence, free_port, wait_for

PROBE = r"""
import json, socket, sys, urllib.request
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=5).close()
        return "open"
    except OSError as error:
        return type(error).__name__
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except OSError as error:
        return type(error).__name__
targets = json.loads(sys.argv[1])
print(json.dumps({name: get(t) if isinstance(t, str) else connect(*t) for name, t in targets.items()}))
"""


def rules(binary="iptables") -> list[str]:
    return subprocess.run([binary, "-w", "-S"], check=True, capture_output=True, text=True).stdout.splitlines()


def fence_lines(network: str) -> list[str]:
    """Every rule and chain of ours for ``network``, in both families."""
    mine = "|".join(re.escape(m) for m in (tag(network), chain_name("IN", network), chain_name("FWD", network)))
    ours = re.compile(rf'({mine})("|\s|$)')  # whole names: not those of "<network>-other"
    return [f"{b}: {line}" for b in ("iptables", "ip6tables") for line in rules(b) if ours.search(line)]


class Listener:
    """A TCP listener on 0.0.0.0 (like sshd or an exporter), counting connections."""

    def __init__(self):
        self.sock = socket.create_server(("0.0.0.0", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def make_network(engine):
    """make_network(suffix, icc=False) -> NetworkFacts; fence and network removed after."""
    names = []

    def make(suffix, icc=False):
        name = f"{PREFIX}-{suffix}"
        names.append(name)
        if icc:
            engine.networks.create(name, driver="bridge")
        else:
            ensure_docker_network(name)
        return network_facts(name)

    yield make
    for name in names:
        fence("remove", "--network", name)
        for container in engine.containers.list(all=True, filters={"network": name}):
            container.remove(force=True)
        try:
            engine.networks.get(name).remove()
        except docker.errors.NotFound:
            pass
        assert fence_lines(name) == [], f"fence rules for {name} left behind"


def user_container(engine, network, command, **kwargs):
    """A container like a user's server: non-root, no capabilities, no-new-privileges."""
    return engine.containers.run(
        IMAGE, command, name=f"{PREFIX}-fence-{free_port()}", network=network, user="1000",
        cap_drop=["ALL"], security_opt=["no-new-privileges:true"], entrypoint=[], **kwargs,
    )


def probe(engine, network, **targets) -> dict:
    """From a container on ``network``: "open" or the error for each (host, port),
    the HTTP status (or error) for each URL."""
    output = user_container(engine, network, ["python3", "-c", PROBE, json.dumps(targets)], remove=True)
    return json.loads(output.decode().strip().splitlines()[-1])


def test_container_reaches_the_hub_api_and_no_other_host_port(make_network, start_hub, engine):
    net = make_network("fence")
    hub_port = free_port()
    applied = fence("apply", "--network", net.name, "--hub-ports", str(hub_port))
    assert applied.returncode == 0, applied.stderr
    listener = Listener()
    try:
        # The listener answers on the gateway address from this host: it is there to be reached.
        socket.create_connection((net.gateway, listener.port), timeout=5).close()
        wait_for(lambda: listener.accepted == 1, "the listener to accept this host's connection", timeout=10)
        start_hub(FakeNVML.make_gpus(1), network=net.name, hub_port=hub_port, hub_ports=str(hub_port))

        targets = {"hub_api": f"http://{net.gateway}:{hub_port}/hub/api/", "other_port": (net.gateway, listener.port)}
        fenced = probe(engine, net.name, **targets)
        assert fenced == {"hub_api": 200, "other_port": "ConnectionRefusedError"}
        assert listener.accepted == 1  # nothing got through

        # Without the fence the same probe gets through: the fence is what stops it.
        assert fence("remove", "--network", net.name).returncode == 0
        unfenced = probe(engine, net.name, **targets)
        assert unfenced == {"hub_api": 200, "other_port": "open"}
    finally:
        listener.close()


def test_containers_on_the_network_cannot_reach_each_other(make_network, engine):
    """enable_icc=false alone does nothing where dockerd runs --iptables=false
    (the test engine): the fence's FORWARD rule is what keeps users apart."""
    net = make_network("fence-icc-off")
    assert fence("apply", "--network", net.name, "--hub-ports", "18081").returncode == 0
    server = user_container(engine, net.name, ["python3", "-m", "http.server", "8888"], detach=True)
    server.reload()
    address = server.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
    # The server answers (from this host) before we ask from a neighbour.
    wait_for(lambda: _answers(address, 8888), f"http.server in {server.name}", timeout=60)

    assert probe(engine, net.name, neighbour=(address, 8888)) == {"neighbour": "ConnectionRefusedError"}
    assert fence("remove", "--network", net.name).returncode == 0
    assert probe(engine, net.name, neighbour=(address, 8888)) == {"neighbour": "open"}


@pytest.fixture
def own_netns():
    """run(*argv) in a network namespace of the test's own (empty iptables), so
    rules a test puts there are seen by no other hub or test on this host."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"),
                 "the namespace", timeout=10)

        def run(*argv):
            return subprocess.run(["nsenter", f"--net=/proc/{holder.pid}/ns/net", *argv],
                                  capture_output=True, text=True, timeout=120)
        yield run
    finally:
        holder.kill()
        holder.wait()


def test_a_rule_ahead_of_the_fence_is_named_and_apply_goes_first(make_network, own_netns):
    """A permissive rule put above the fence later (a firewall tool, a test rig's
    ACCEPT) decides before it: check names the rule, apply puts the fence first."""
    net = make_network("fence-ahead")
    args = ["--network", net.name, "--hub-ports", "18081"]
    assert own_netns(*FENCE_COMMAND, "apply", *args).returncode == 0
    forward_hook = "-A FORWARD -m comment --comment gpuhub-fence -j DOCKER-USER"
    input_hook = f'-A INPUT -i {net.bridge} -m comment --comment "{tag(net.name)}" -j {chain_name("IN", net.name)}'
    for rule in (["FORWARD", "1", "-i", net.bridge, "-o", net.bridge, "-j", "ACCEPT"],
                 ["INPUT", "1", "-i", net.bridge, "-j", "ACCEPT"]):
        assert own_netns("iptables", "-w", "-I", *rule).returncode == 0

    checked = own_netns(*FENCE_COMMAND, "check", *args)
    assert checked.returncode == 1
    assert (
        f"not fenced: iptables: INPUT: `-A INPUT -i {net.bridge} -j ACCEPT` comes before the fence's hook "
        "(what it accepts is never fenced)"
    ) in checked.stdout.splitlines()
    assert (
        f"not fenced: iptables: FORWARD: `-A FORWARD -i {net.bridge} -o {net.bridge} -j ACCEPT` comes before "
        "the jump to DOCKER-USER (what it accepts is never fenced)"
    ) in checked.stdout.splitlines()

    applied = own_netns(*FENCE_COMMAND, "apply", *args)
    assert applied.returncode == 0, applied.stderr
    assert own_netns(*FENCE_COMMAND, "check", *args).returncode == 0
    chains = {c: own_netns("iptables", "-w", "-S", c).stdout.splitlines() for c in ("FORWARD", "INPUT")}
    assert chains["FORWARD"][1:3] == [forward_hook, f"-A FORWARD -i {net.bridge} -o {net.bridge} -j ACCEPT"]
    assert chains["INPUT"][1:3] == [input_hook, f"-A INPUT -i {net.bridge} -j ACCEPT"]
    assert own_netns(*FENCE_COMMAND, "apply", *args).stdout.strip() == f"fence for {net.name} already in place"


def _answers(host, port) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def test_link_local_is_rejected_first_and_reached_from_forward(make_network):
    net = make_network("fence-ll")
    assert fence("apply", "--network", net.name, "--hub-ports", "18081").returncode == 0
    forward_chain = chain_name("FWD", net.name)
    table = rules()
    ours = [line for line in table if line.startswith(f"-A {forward_chain} ")]
    assert ours[0] == (
        f'-A {forward_chain} -d 169.254.0.0/16 -m comment --comment "{tag(net.name)}" '
        "-j REJECT --reject-with icmp-port-unreachable"
    )
    hook = f'-A DOCKER-USER -i {net.bridge} -m comment --comment "{tag(net.name)}" -j {forward_chain}'
    assert [line for line in table if line.startswith("-A DOCKER-USER ")][0] == hook
    assert any(line.startswith("-A FORWARD ") and line.endswith("-j DOCKER-USER") for line in table)
    checked = fence("check", "--network", net.name, "--hub-ports", "18081")
    assert checked.returncode == 0, checked.stdout


def test_applying_twice_changes_nothing_and_remove_takes_it_all(make_network):
    net = make_network("fence-twice")
    args = ("--network", net.name, "--hub-ports", "18081", "--allow", "10.9.8.7:3128", "--allow", "host:3142")
    first = fence("apply", *args)
    assert first.returncode == 0, first.stderr
    after_first = fence_lines(net.name)
    assert len(after_first) > 10

    second = fence("apply", *args)
    assert (second.returncode, second.stdout.strip()) == (0, f"fence for {net.name} already in place")
    assert fence_lines(net.name) == after_first

    # Other settings: check says so, apply rewrites only our chains.
    stale = fence("check", "--network", net.name, "--hub-ports", "18081")
    assert stale.returncode == 1
    assert "differs from the fence for these settings" in stale.stdout
    assert f"fix: sudo gpuhub fence apply --network {net.name} --hub-ports 18081" in stale.stdout

    removed = fence("remove", "--network", net.name)
    assert removed.returncode == 0, removed.stderr
    assert fence_lines(net.name) == []


def test_hub_refuses_a_network_that_lets_containers_talk(make_network, start_hub):
    net = make_network("fence-icc", icc=True)
    with pytest.raises(RuntimeError) as refused:
        start_hub(FakeNVML.make_gpus(1), network=net.name)
    message = str(refused.value)
    assert "allows traffic between containers" in message
    assert f"docker network rm {net.name}" in message
    assert "Traceback" not in message


def test_hub_refuses_an_unfenced_network_and_names_the_command(make_network, start_hub):
    net = make_network("fence-none")
    port = free_port()
    with pytest.raises(RuntimeError) as refused:
        start_hub(FakeNVML.make_gpus(1), network=net.name, hub_port=port, hub_ports=str(port))
    message = str(refused.value)
    assert f"the hub's Docker network '{net.name}' is not fenced" in message
    assert f"sudo gpuhub fence apply --network {net.name} --hub-ports {port}" in message
    assert "Traceback" not in message


def test_warn_mode_starts_the_hub_with_a_warning(make_network, start_hub):
    net = make_network("fence-warn")
    hub = start_hub(
        FakeNVML.make_gpus(1), network=net.name, extra_env={"GPUHUB_FENCE_CHECK": "warn"}
    )
    assert f"WARNING: gpuhub: the hub's Docker network '{net.name}' is not fenced" in hub.log_tail(400)
