"""The SSH entrance (hub/ssh) on a real hub, engine and containers, with the
system's OpenSSH client (and asyncssh's client where a password is typed).

One hub for the module. Failed logins are throttled per source address, so
the tests that fail on purpose connect from their own loopback addresses
(127.0.0.2, 127.0.0.3): the others stay unslowed.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import socket
import subprocess
import threading
import time
from pathlib import Path

import asyncssh
import pytest

from gpuhub.hub.ssh.sessions import SFTP_SERVER
from tests.integration.hubrig import IMAGE, PREFIX, Hub, running_hub, wait_for

ACCOUNT_PASSWORD = "gpuhub-Test-pass-1"
GPUS = 6  # alice, bob, carol, dave, ivan and alice's named server: one each (a start takes 1 by default)
@pytest.fixture(scope="module")
def hub(engine, nvml_library, tmp_path_factory):
    with running_hub(tmp_path_factory.mktemp("ssh-hub"), GPUS, extra_env={"GPUHUB_SSH_MAX_FAILURES": "6"}) as hub:
        yield hub


def keypair(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def authorize(engine, user: str, key: Path):
    """The user puts a public key into ~/.ssh/authorized_keys of their server (as from JupyterLab)."""
    container = engine.containers.get(f"{PREFIX}-{user}")
    public = key.with_suffix(".pub").read_text().strip()
    result = container.exec_run(
        ["sh", "-c", 'mkdir -p ~/.ssh && chmod 700 ~/.ssh && printf "%s\\n" "$1" >> ~/.ssh/authorized_keys', "sh", public],
        user="1000")
    assert result.exit_code == 0, result.output


def user_with_key(hub: Hub, engine, folder: Path, user: str, stopped=False) -> Path:
    """A new hub user whose server has their key authorized (then stopped, if asked)."""
    hub.create_users(user)
    hub.start_server(user)
    key = keypair(folder, user)
    authorize(engine, user, key)
    if stopped:
        hub.stop_server(user)
    return key


CLIENT_ENV = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}  # only the test's keys


CLIENT_OPTIONS = ["-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                  "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]


def ssh_command(hub: Hub, user: str, key: Path, *command: str, options=(), source="127.0.0.1") -> list[str]:
    # options first: for ssh, the first value given for an option wins
    return ["ssh", *options, "-p", str(hub.ssh_port), "-b", source, "-i", str(key), *CLIENT_OPTIONS,
            f"{user}@127.0.0.1", *command]


def ssh(hub: Hub, user: str, key: Path, *command: str, options=(), source="127.0.0.1", timeout=240, input=None):
    return subprocess.run(ssh_command(hub, user, key, *command, options=options, source=source),
                          capture_output=True, text=True, timeout=timeout, env=CLIENT_ENV, input=input)


@pytest.fixture(scope="module")
def alice(hub, engine, tmp_path_factory):
    """alice: a server with her key authorized, and a hub account password."""
    hub.login("alice", ACCOUNT_PASSWORD)  # a real account: the password works on the login page
    hub.start_server("alice")
    key = keypair(tmp_path_factory.mktemp("alice-keys"), "alice")
    authorize(engine, "alice", key)
    return key


def test_key_login_lands_in_own_server_as_notebook_user(hub, engine, alice):
    started = time.monotonic()
    result = ssh(hub, "alice", alice, "whoami; echo $JUPYTERHUB_USER; hostname")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    whoami, name, hostname = result.stdout.split()
    assert (whoami, name) == ("jovyan", "alice")
    # her container (Docker sets the hostname to the id's start), not another one
    assert engine.containers.get(f"{PREFIX}-alice").id.startswith(hostname)
    print(f"ssh alice@hub whoami (server running): {took:.2f} s")
    assert ssh(hub, "alice", alice, "exit 7").returncode == 7  # the command's exit status


def test_an_ssh_session_counts_as_activity(hub, alice):
    before = hub.server("alice")["last_activity"]
    time.sleep(1.1)
    assert ssh(hub, "alice", alice, "true").returncode == 0
    # the idle culler sees the server in use (reported as the session opens)
    wait_for(lambda: hub.server("alice")["last_activity"] > before, "alice's SSH activity", timeout=10)


def test_stdin_and_stderr(hub, alice):
    result = ssh(hub, "alice", alice, "wc -c; echo oops >&2", input="x" * 100_000)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "100000"
    assert "oops" in result.stderr


async def _run_with_terminal(hub: Hub, key: Path, command: str, size, resize=None):
    async with asyncssh.connect(
            "127.0.0.1", hub.ssh_port, username="alice", client_keys=[str(key)], known_hosts=None,
            agent_path=None, preferred_auth="publickey") as conn:
        process = await conn.create_process(command, term_type="xterm-256color", term_size=size)
        if resize:
            process.change_terminal_size(*resize)
        result = await process.wait()
        return result.exit_status, result.stdout


def test_terminal_with_window_size_and_resize(hub, alice):
    status, output = asyncio.run(_run_with_terminal(hub, alice, "tty; stty size; echo $TERM", (100, 30)))
    assert status == 0, output
    device, size, term = output.split("\r\n")[:3]
    assert device.startswith("/dev/pts/") and size == "30 100" and term == "xterm-256color"
    status, output = asyncio.run(_run_with_terminal(hub, alice, "sleep 2; stty size", (100, 30), (132, 43)))
    assert output.strip() == "43 132"


async def _open_shell_and_vanish(hub: Hub, key: Path, tty: bool):
    conn = await asyncssh.connect("127.0.0.1", hub.ssh_port, username="alice", client_keys=[str(key)],
                                  known_hosts=None, agent_path=None, preferred_auth="publickey")
    shell = await conn.create_process(term_type="xterm" if tty else None)
    shell.stdin.write("echo $((6 * 7))\n")
    while "42" not in await asyncio.wait_for(shell.stdout.readline(), 30):
        pass
    conn.abort()  # the client vanishes: no exit, no EOF


def shells_in(engine, user: str) -> list[str]:
    listing = engine.containers.get(f"{PREFIX}-{user}").exec_run(
        ["sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"], user="1000")
    return [line for line in listing.output.decode().splitlines() if line.startswith("/bin/bash -l")]


@pytest.mark.parametrize("tty", [True, False])
def test_a_vanished_client_leaves_no_shell_behind(hub, engine, alice, tty):
    assert shells_in(engine, "alice") == []
    asyncio.run(_open_shell_and_vanish(hub, alice, tty))
    wait_for(lambda: shells_in(engine, "alice") == [], "the shell to end (SIGHUP, as from sshd)", timeout=15)


def test_a_tmux_session_outlives_the_ssh_connection(hub, engine, alice):
    """The system client with a terminal (ssh -tt) starts tmux, then is killed:
    no exit, no EOF. The login shell is hung up; the tmux session lives on."""
    client = subprocess.Popen(ssh_command(hub, "alice", alice, options=("-tt",)), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=CLIENT_ENV)
    try:
        client.stdin.write(b"tmux new -d -s training 'sleep 600' && echo started-$((6 * 7))\n")
        client.stdin.flush()
        seen, deadline = b"", time.monotonic() + 60
        while b"started-42" not in seen:
            assert time.monotonic() < deadline and client.poll() is None, seen
            if select.select([client.stdout], [], [], 1)[0]:
                seen += os.read(client.stdout.fileno(), 4096)
    finally:
        client.kill()
        client.wait(10)
    wait_for(lambda: shells_in(engine, "alice") == [], "the login shell to be hung up", timeout=15)
    listed = ssh(hub, "alice", alice, "tmux ls -F '#{session_name} #{pane_current_command}'")
    assert listed.returncode == 0, listed.stderr
    assert "training sleep" in listed.stdout
    ssh(hub, "alice", alice, "tmux kill-server")


def test_other_users_key_and_unknown_user_get_the_same_refusal(hub, engine, alice, tmp_path):
    bob = user_with_key(hub, engine, tmp_path, "bob")
    assert ssh(hub, "bob", bob, "echo $JUPYTERHUB_USER").stdout.strip() == "bob"
    as_bob = ssh(hub, "bob", alice, "echo $JUPYTERHUB_USER")  # alice's key, bob's name
    nobody = ssh(hub, "nobody", alice, "true")
    assert as_bob.returncode == nobody.returncode == 255
    assert as_bob.stdout == nobody.stdout == ""
    assert as_bob.stderr.replace("bob", "X") == nobody.stderr.replace("nobody", "X")
    assert "Permission denied" in as_bob.stderr


def test_ssh_to_a_stopped_server_starts_it(hub, engine, tmp_path):
    key = user_with_key(hub, engine, tmp_path, "carol", stopped=True)
    started = time.monotonic()
    result = ssh(hub, "carol", key, "whoami; echo $JUPYTERHUB_USER")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["jovyan", "carol"]
    assert "starting it" in result.stderr and "Your server is ready." in result.stderr
    assert hub.server("carol")["ready"]
    print(f"ssh carol@hub to a stopped server: {took:.1f} s; progress:\n{result.stderr}")


def test_a_named_server_is_user_slash_name(hub, engine, alice):
    """``alice/lab`` is alice's named server lab: started over SSH when stopped,
    never made (a typo would hold a GPU); her key only."""
    made = hub.api("POST", "/users/alice/servers/lab", json={"gpus": 0})
    assert made.status_code in (201, 202), made.text
    wait_for(lambda: (hub.api("GET", "/users/alice").json()["servers"].get("lab") or {}).get("ready"),
             "alice's server lab", timeout=180)
    assert ssh(hub, "alice/lab", alice, "echo $JUPYTERHUB_SERVER_NAME").stdout.strip() == "lab"
    hub.api("DELETE", "/users/alice/servers/lab")
    wait_for(lambda: "lab" not in hub.api("GET", "/users/alice").json()["servers"], "lab to stop", timeout=60)
    started = ssh(hub, "alice/lab", alice, "echo $JUPYTERHUB_SERVER_NAME")
    assert started.returncode == 0 and started.stdout.strip() == "lab", started.stderr
    assert "Your server lab is not running" in started.stderr
    unknown = ssh(hub, "alice/labb", alice, "true")
    assert unknown.returncode == 1
    assert "you have no server named 'labb' (your named servers: lab)" in unknown.stderr
    assert "labb" not in hub.api("GET", "/users/alice?include_stopped_servers=1").json()["servers"]
    assert ssh(hub, "bob/lab", alice, "true").returncode == 255  # alice's key is not bob's
    hub.api("DELETE", "/users/alice/servers/lab", json={"remove": True})
    wait_for(lambda: hub.api("DELETE", "/users/alice/servers/lab", json={"remove": True}).status_code == 404,
             "lab to be removed", timeout=60)


def test_a_start_over_ssh_shows_the_queue_position(hub, engine, tmp_path):
    """All GPUs held: the SSH client is told its place in the GPU queue, then gets in."""
    key = user_with_key(hub, engine, tmp_path, "dave", stopped=True)
    fillers = []
    for name in ("erin", "frank", "grace", "heidi", "judy"):  # until the fake GPUs are all held
        running = [u for u in hub.api("GET", "/users").json() if (u["servers"].get("") or {}).get("ready")]
        if len(running) >= GPUS:
            break
        hub.create_users(name)
        hub.start_server(name)
        fillers.append(name)
    client = subprocess.Popen(ssh_command(hub, "dave", key, "echo $JUPYTERHUB_USER"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLIENT_ENV)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(client.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90
    while not any("position 1 in the queue" in line for line in lines):
        assert time.monotonic() < deadline and client.poll() is None, lines
        time.sleep(0.3)
    hub.stop_server(fillers[-1])  # a GPU comes free: dave's start goes on
    output = client.stdout.read()  # stderr is the reader's
    client.wait(180)
    reader.join(10)
    assert client.returncode == 0, lines
    assert output.strip() == "dave"
    assert any("Your server is ready." in line for line in lines), lines
    for name in fillers[:-1]:  # GPUs back for the tests after this one
        hub.stop_server(name)
    print("progress in dave's terminal:\n" + "".join(lines))


async def _password_login(hub: Hub, user: str, password: str) -> str:
    async with asyncssh.connect(
            "127.0.0.1", hub.ssh_port, username=user, password=password, client_keys=None,
            known_hosts=None, agent_path=None, preferred_auth="password",
            local_addr=("127.0.0.3", 0)) as conn:
        return (await conn.run("echo $JUPYTERHUB_USER", check=True)).stdout.strip()


def test_api_token_as_password_works_account_password_never(hub, alice):
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_password_login(hub, "alice", ACCOUNT_PASSWORD))
    hub.create_users("bob")
    with pytest.raises(asyncssh.PermissionDenied):  # bob's token is not alice's
        asyncio.run(_password_login(hub, "alice", hub.user_token("bob")))
    limited = hub.api("POST", "/users/alice/tokens", json={"scopes": ["read:users:name!user=alice"]})
    assert limited.status_code == 201, limited.text
    with pytest.raises(asyncssh.PermissionDenied):  # a token that may not use her server
        asyncio.run(_password_login(hub, "alice", limited.json()["token"]))
    assert asyncio.run(_password_login(hub, "alice", hub.user_token("alice"))) == "alice"


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_forwarding_reaches_only_the_own_container(hub, engine, alice):
    container = engine.containers.get(f"{PREFIX}-alice")
    container.exec_run(["python3", "-m", "http.server", "8765", "--bind", "127.0.0.1"],
                       user="1000", detach=True, workdir="/home/jovyan")
    local = free_local_port()
    forward = subprocess.Popen(
        ssh_command(hub, "alice", alice, options=("-N", "-o", "ExitOnForwardFailure=yes",
                                                  "-L", f"127.0.0.1:{local}:localhost:8765")),
        env=CLIENT_ENV, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline and b"Directory listing" not in body:
            try:
                with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    body = b"".join(iter(lambda: s.recv(65536), b""))
            except OSError:
                time.sleep(0.5)
        assert b"200 OK" in body and b"Directory listing" in body
    finally:
        forward.terminate()
        forward.wait(10)
    network = container.attrs["NetworkSettings"]["Networks"]
    gateway = next(iter(network.values()))["Gateway"]
    for target in (f"{gateway}:{hub.hub_port}", f"{gateway}:22", "10.0.0.1:80", "example.org:443"):
        refused = ssh(hub, "alice", alice, options=("-W", target, "-o", "LogLevel=INFO"))
        assert refused.returncode == 255 and "prohibited" in refused.stderr, (target, refused.stderr)
    # 127.0.0.1 is the container's loopback: the hub's port there is not the hub's
    reached = ssh(hub, "alice", alice, options=("-W", f"127.0.0.1:{hub.port}"))
    assert reached.stdout == ""


# What VS Code Remote-SSH does (its documented requirements: bash, tar, glibc
# >= 2.28, libstdc++; exec channels; forwarding to the remote's localhost):
# `ssh -T -D PORT host bash`, a script on stdin that starts its server on a
# loopback port and prints "listeningOn==PORT==", then connections through
# the SOCKS proxy to 127.0.0.1:PORT. The server here is a stand-in (VS Code's
# own is downloaded from Microsoft, unreachable from this machine).
REMOTE_SSH_SCRIPT = r"""
set -e
command -v bash tar >/dev/null
ldd --version | head -1
ls /usr/lib/*/libstdc++.so.6 >/dev/null
exec python3 -u -c '
import http.server, socketserver
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"stand-in server of " + self.path.encode())
    def log_message(self, *args): pass
with socketserver.TCPServer(("127.0.0.1", 0), Handler) as server:
    print("listeningOn==%d==" % server.server_address[1], flush=True)
    server.serve_forever()
'
"""


def socks5_get(proxy_port: int, host: str, port: int) -> bytes:
    """GET / through a SOCKS5 proxy (ssh -D) to host:port; b"" when the proxy refuses."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=30) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        address = host.encode()
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(address)]) + address + port.to_bytes(2, "big"))
        reply = s.recv(10)
        if len(reply) < 2 or reply[1] != 0:
            return b""
        s.sendall(b"GET /workbench HTTP/1.0\r\n\r\n")
        return b"".join(iter(lambda: s.recv(65536), b""))


def test_vscode_remote_ssh_flow(hub, engine, alice):
    socks = free_local_port()
    client = subprocess.Popen(
        ssh_command(hub, "alice", alice, "bash", options=("-T", "-D", f"127.0.0.1:{socks}")),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLIENT_ENV)
    try:
        client.stdin.write(REMOTE_SSH_SCRIPT)
        client.stdin.flush()
        glibc = client.stdout.readline()
        assert "GLIBC" in glibc.upper() or "GNU libc" in glibc, glibc
        announced = client.stdout.readline()
        port = int(re.fullmatch(r"listeningOn==(\d+)==\n", announced).group(1))
        assert b"stand-in server of /workbench" in socks5_get(socks, "127.0.0.1", port)
        gateway = next(iter(engine.containers.get(f"{PREFIX}-alice").attrs["NetworkSettings"]["Networks"].values()))["Gateway"]
        assert socks5_get(socks, gateway, hub.hub_port) == b""  # the hub: refused through the proxy too
    finally:
        client.kill()
        client.wait(10)


def test_twenty_wrong_attempts_are_slowed_then_refused(hub, alice, tmp_path):
    stranger = keypair(tmp_path, "mallory")
    times, banners = [], 0
    for _ in range(20):
        started = time.monotonic()
        result = ssh(hub, "alice", stranger, "true", options=("-o", "LogLevel=INFO"), source="127.0.0.2")
        times.append(time.monotonic() - started)
        assert result.returncode == 255 and "Permission denied" in result.stderr
        banners += "Too many failed logins" in result.stderr
    print("attempt times (s):", " ".join(f"{t:.1f}" for t in times))
    assert max(times[3:6]) >= min(times[:3]) + 0.9  # slowed down after the free attempts
    assert banners >= 12  # then refused outright (GPUHUB_SSH_MAX_FAILURES=6)
    # the right key from that address is refused too, for now; from another one it works
    assert ssh(hub, "alice", alice, "true", source="127.0.0.2").returncode == 255
    assert ssh(hub, "alice", alice, "true").returncode == 0


def scp(hub: Hub, key: Path, *paths: str):
    return subprocess.run(["scp", "-P", str(hub.ssh_port), "-i", str(key), *CLIENT_OPTIONS, *paths],
                          capture_output=True, text=True, timeout=120, env=CLIENT_ENV)


def test_scp_round_trip_through_the_home_volume(hub, engine, alice, tmp_path):
    sent = tmp_path / "weights.bin"
    sent.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    started = time.monotonic()
    result = scp(hub, alice, str(sent), "alice@127.0.0.1:weights.bin")  # OpenSSH 9: over SFTP
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    stored = engine.containers.get(f"{PREFIX}-alice").exec_run(
        ["stat", "-c", "%s %U", "/home/jovyan/weights.bin"], user="1000")
    assert stored.output.decode().split() == [str(sent.stat().st_size), "jovyan"]
    back = tmp_path / "back.bin"
    result = scp(hub, alice, "alice@127.0.0.1:weights.bin", str(back))
    assert result.returncode == 0, result.stderr
    assert back.read_bytes() == sent.read_bytes()
    print(f"scp 3 MiB up: {took:.2f} s")


def test_sftp_puts_lists_and_gets_in_the_home_volume(hub, engine, alice, tmp_path):
    sent = tmp_path / "notes.txt"
    sent.write_text("epoch 3: loss 0.12\n")
    batch = tmp_path / "batch"
    batch.write_text(f"mkdir runs\nput {sent} runs/notes.txt\nls -l runs\nget runs/notes.txt {tmp_path}/back.txt\n")
    result = subprocess.run(["sftp", "-P", str(hub.ssh_port), "-i", str(alice), *CLIENT_OPTIONS, "-b", str(batch),
                             "alice@127.0.0.1"], capture_output=True, text=True, timeout=120, env=CLIENT_ENV)
    assert result.returncode == 0, result.stderr
    assert "notes.txt" in result.stdout
    assert (tmp_path / "back.txt").read_text() == sent.read_text()
    stored = engine.containers.get(f"{PREFIX}-alice").exec_run(["cat", "/home/jovyan/runs/notes.txt"], user="1000")
    assert stored.output.decode() == sent.read_text()


def test_an_image_without_sftp_server_says_so(engine):
    """What sftp and scp users are told when their image lacks the SFTP server
    (the test image has it, as the image line does: an empty folder hides it)."""
    container = engine.containers.create(IMAGE, ["/bin/sh", "-c", SFTP_SERVER], entrypoint=[], user="1000",
                                         network_disabled=True, name=f"{PREFIX}-nosftp",
                                         tmpfs={"/usr/lib/openssh": "ro"})
    try:
        container.start()
        assert container.wait(timeout=60)["StatusCode"] == 127
        output = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert "has no SFTP server (Debian package openssh-sftp-server)" in output


def test_only_this_hubs_container_of_the_user_is_ever_entered(hub, engine, tmp_path):
    """Found by the labels user + default server + this hub, never by name: a
    container that claims to be ivan's but belongs to another hub is left alone."""
    key = user_with_key(hub, engine, tmp_path, "ivan", stopped=True)
    decoy = engine.containers.run(
        IMAGE, ["sleep", "600"], entrypoint=[], name=f"{PREFIX}-ivan-decoy", detach=True, user="1000",
        labels={"gpuhub.user": "ivan", "gpuhub.server": "", "gpuhub.hub": "another-hub"}, network_disabled=True)
    try:
        result = ssh(hub, "ivan", key, "hostname")
        assert result.returncode == 0, result.stderr
        assert "starting it" in result.stderr  # the decoy did not count as ivan's running server
        assert not decoy.id.startswith(result.stdout.strip())
        assert engine.containers.get(f"{PREFIX}-ivan").id.startswith(result.stdout.strip())
    finally:
        decoy.remove(force=True)
