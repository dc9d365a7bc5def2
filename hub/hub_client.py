"""The hub's REST API from a command line tool (``gpuhub cohort``, ``gpuhub reset``,
``gpuhub datasets``): where the hub is and the token, one JSON request at a time.

The hub URL and the token come from ``--hub-url``/``--token`` or JupyterHub's own
``JUPYTERHUB_API_URL``/``JUPYTERHUB_API_TOKEN`` (set inside every server and
service). The URL may be the hub's public address (``https://hub.example.org``),
its ``/hub/`` page or its API (``…/hub/api``). Standard library only: the tools
run where only the gpuhub package is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

TIMEOUT = 60  # seconds per request


class HubAPIError(Exception):
    """A request the hub refused, or no answer: the message says which and why."""

    def __init__(self, message: str, status: int | None = None):
        self.status = status
        super().__init__(message)


def api_url(url: str) -> str:
    """``https://h``, ``https://h/hub/``, ``https://h/hub/api`` → ``https://h/hub/api``."""
    url = url.rstrip("/")
    if url.endswith("/hub/api"):
        return url
    if url.endswith("/hub"):
        return url + "/api"
    return url + "/hub/api"


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    """``--hub-url`` and ``--token``, defaulting to JupyterHub's variables."""
    parser.add_argument("--hub-url", help="the hub's address, e.g. https://hub.example.org "
                        "(default: $JUPYTERHUB_API_URL)")
    parser.add_argument("--token", help="a hub API token with the scopes this command needs "
                        "(default: $JUPYTERHUB_API_TOKEN)")
    parser.add_argument("--ca-file", help="CA bundle that signed the hub's certificate "
                        "(default: the system's)")


@dataclass
class HubClient:
    url: str  # the API root, …/hub/api
    token: str
    ca_file: str | None = None

    @classmethod
    def from_arguments(cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ):
        url = args.hub_url or environ.get("JUPYTERHUB_API_URL", "")
        token = args.token or environ.get("JUPYTERHUB_API_TOKEN", "")
        if not url or not token:
            raise HubAPIError("say where the hub is and how to sign in: --hub-url and --token, "
                              "or JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN "
                              "(an admin creates a token on the hub's Token page)")
        return cls(api_url(url), token, args.ca_file)

    def request(self, method: str, path: str, body=None, *, expect_json: bool = True):
        """``path`` below the API root, e.g. ``/users/alice``. Returns the decoded JSON
        (None for an empty answer, text when ``expect_json`` is False); raises
        :class:`HubAPIError` with the hub's own message for 4xx/5xx."""
        return self._send(method, self.url + path, path, body, expect_json)

    def service_url(self, service: str) -> str:
        """A hub service's address through the hub's proxy: …/services/NAME."""
        return self.url.removesuffix("/hub/api") + f"/services/{service}"

    def service_get(self, service: str, path: str, *, expect_json: bool = True):
        """GET ``path`` below a hub service (``/api/…``) with the same token."""
        return self._send("GET", self.service_url(service) + path, f"/services/{service}{path}", None,
                          expect_json)

    def _send(self, method: str, url: str, path: str, body, expect_json: bool):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json",
        })
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT, context=context) as answer:
                text = answer.read().decode()
        except urllib.error.HTTPError as error:
            raise HubAPIError(f"{method} {path}: {error.code} {_message(error)}", error.code) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise HubAPIError(f"cannot reach the hub at {self.url}: {reason}") from None
        if not expect_json:
            return text
        return json.loads(text) if text.strip() else None

    def get(self, path: str):
        return self.request("GET", path)


def _message(error: urllib.error.HTTPError) -> str:
    """The hub's ``{"message": …}``, or the body's first line."""
    try:
        text = error.read().decode(errors="replace")
    except OSError:
        return error.reason or ""
    try:
        return json.loads(text).get("message") or text.strip()
    except (ValueError, AttributeError):
        return text.strip().splitlines()[0] if text.strip() else (error.reason or "")
