#!/usr/bin/env python3
"""Docker HEALTHCHECK for the notebook server: exit 0 when its /api answers.

Where the server listens: JUPYTERHUB_SERVICE_URL (set by JupyterHub for every
single-user server, e.g. http://0.0.0.0:8888/user/alice/), else port 8888 under
JUPYTERHUB_SERVICE_PREFIX (default "/"). A --port=N on the server's command line
(spawner args) wins over both.
"""

import os
import sys
import urllib.parse
import urllib.request


def server_port_from_cmdline(default):
    """--port=N / --ServerApp.port=N of a running jupyter server process, if any."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not any("jupyter" in a for a in args[:2]):
            continue
        for i, arg in enumerate(args):
            for flag in ("--port", "--ServerApp.port"):
                if arg.startswith(flag + "="):
                    return int(arg.split("=", 1)[1])
                if arg == flag and i + 1 < len(args):
                    return int(args[i + 1])
    return default


def api_url():
    service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if service_url:
        parts = urllib.parse.urlsplit(service_url)
        port, path = parts.port or 8888, parts.path or "/"
    else:
        port, path = 8888, os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
    port = server_port_from_cmdline(port)
    return f"http://127.0.0.1:{port}{path.rstrip('/')}/api"


def main():
    url = api_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            response.read()
    except Exception as e:  # any failure means unhealthy; say why in `docker inspect`
        print(f"{url}: {e}")
        return 1
    print(f"{url}: {response.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
