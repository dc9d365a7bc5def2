"""The gate's server checks: jupyterhub-singleuser answers as a spawner starts it, the
user id, a writable home. Standard library only."""

import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from outcomes import CheckFailed, free_port

SINGLEUSER_TIMEOUT = 30


class StandInHub(http.server.BaseHTTPRequestHandler):
    """Answers jupyterhub-singleuser's start-up request to the hub API: without an answer
    it retries for ~45 s and exits (jupyterhub 5.5.4, check_hub_version)."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def singleuser_environment(port, hub_port):
    """The variables a spawner gives jupyterhub-singleuser, for user "gate"."""
    prefix = "/user/gate/"
    return {
        **os.environ,
        "JUPYTERHUB_USER": "gate",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub_port}/hub/api",
        "JUPYTERHUB_API_TOKEN": secrets.token_hex(16),
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-gate",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
    }


def check_singleuser(args):
    command = shutil.which("jupyterhub-singleuser") or os.path.join(
        os.path.dirname(sys.executable), "jupyterhub-singleuser"
    )
    if not os.access(command, os.X_OK):
        raise CheckFailed(f"jupyterhub-singleuser not found on PATH nor next to {sys.executable}")
    port = free_port()
    url = f"http://127.0.0.1:{port}/user/gate/api"
    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as workdir, open(os.path.join(workdir, "log"), "w+") as log:
        started = time.monotonic()
        # Root is refused unless --expect-uid 0 said root is intended (development on a host).
        allow_root = ["--allow-root"] if os.getuid() == 0 == args.expect_uid else []
        server = subprocess.Popen(
            [command, *allow_root], env=singleuser_environment(port, hub.server_address[1]),
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            while time.monotonic() - started < SINGLEUSER_TIMEOUT and server.poll() is None:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        version = json.load(response).get("version", "?")
                    return f"{url} answered 200 after {time.monotonic() - started:.1f} s (jupyter_server {version})"
                except OSError:
                    time.sleep(0.25)
            exit_code = server.poll()
        finally:
            server.kill()  # nothing of it is kept: no need for a clean shutdown
            server.wait()
            hub.shutdown()
            hub.server_close()
        log.seek(0)
        tail = "".join(log.readlines()[-10:]).strip()
    why = "gave no answer" if exit_code is None else f"exited with {exit_code}"
    raise CheckFailed(f"{command} {why} within {SINGLEUSER_TIMEOUT} s at {url}; last log lines:\n{tail}")


def check_user_id(args):
    uid = os.getuid()
    if uid != args.expect_uid:
        raise CheckFailed(f"running as uid {uid}, expected {args.expect_uid} (USER in the Dockerfile?)")
    return f"uid {uid}, gid {os.getgid()}"


def check_home_writable(args):
    home = os.path.expanduser("~")
    try:
        with tempfile.NamedTemporaryFile(dir=home, prefix=".gpuhub-gate-"):
            pass
    except OSError as error:
        raise CheckFailed(f"HOME={home} is not writable by uid {os.getuid()}: {error}") from error
    return f"HOME={home} is writable"
