"""Tornado handlers: pages and JSON API (users through HubOAuth), /metrics
(a bearer token). All of them read the sampler's latest sample; none reads
NVML or Docker.
"""

from __future__ import annotations

import hmac
import json
import time
from types import SimpleNamespace
from urllib.parse import quote

from jupyterhub.services.auth import HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from . import READ_ALL_SCOPE, reclaim, views
from .cohorts import may_read_some_cohort
from .metrics import render
from .params import InvalidParameter, parse_window
from .store import week_start


def script_string(text: str) -> str:
    """``text`` for a JavaScript string literal inside <script> (page.html puts the
    user name there unescaped): JSON-escaped, and no "</script>" can end the block."""
    escaped = json.dumps(text)[1:-1]
    return escaped.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class UsageHandler(HubOAuthenticated, web.RequestHandler):
    """Shared by pages and API: the sample, the user, what they may see.

    Handlers get a small read model from the app's settings (``usage``): the
    latest sample, the history, the GPU-hours and a few settings.
    """

    @property
    def usage(self):
        return self.settings["usage"]

    @property
    def can_read_all(self) -> bool:
        return READ_ALL_SCOPE in (self.current_user or {}).get("scopes", ())

    def since(self) -> float:
        try:
            window = parse_window(self.get_query_argument("window", None))
        except InvalidParameter as error:
            raise web.HTTPError(400, str(error)) from None
        return time.time() - window

    def sample(self):
        sample = self.usage.latest()
        if sample is None:
            raise web.HTTPError(503, "no GPU sample yet: the first one is taken within seconds")
        return sample

    def require_read_all(self):
        if not self.can_read_all:
            raise web.HTTPError(403, f"this view needs the scope {READ_ALL_SCOPE} (admins, instructors)")

    def require_user_access(self, name: str):
        if name != self.current_user["name"] and not self.can_read_all:
            raise web.HTTPError(403, "you may see only your own GPU usage")

    def user_view(self, name: str, since: float) -> dict:
        sample = self.sample()
        week, total = self.usage.store.user_hours(name, week_start(sample.time))
        data = views.user_gpus(sample, self.usage.history, name, since,
                               self.usage.idle_flag_seconds, week, total)
        records = self.usage.reclaims.recent(user=name)
        data["reclaimed"] = [record.model() for record in records]
        data["home"] = views.home_model(self.usage.home_size(name), self.usage.soft_limit)
        data["notices"] = reclaim.user_notices(records, {s.server for s in sample.servers_of(name)},
                                               self.usage.lease_warnings(), name, time.time())
        return data

    def all_view(self, since: float) -> dict:
        sample = self.sample()
        store = self.usage.store
        data = views.all_gpus(sample, self.usage.history, since, self.usage.idle_flag_seconds,
                              store.total_hours(), store.week_hours(week_start(sample.time)))
        data["reclaimed"] = [record.model() for record in self.usage.reclaims.recent()]
        return data

    async def user_exists(self, name: str) -> bool:
        """Known from the sample or the GPU-hours, else asked of the hub (cached a minute)."""
        if self.sample().servers_of(name) or self.usage.store.knows(name):
            return True
        cache = self.usage.known_users
        exists = cache.get(name)
        if exists is not None:
            return exists
        url = f"{self.hub_auth.api_url}/users/{quote(name, safe='')}"
        request_headers = {"Authorization": f"token {self.hub_auth.api_token}"}
        try:
            await AsyncHTTPClient().fetch(url, headers=request_headers)
            exists = True
        except HTTPClientError as error:
            if error.code != 404:
                raise web.HTTPError(502, f"the hub did not say whether user {name!r} exists")
            exists = False
        cache.set(name, exists)
        return exists


class PageHandler(UsageHandler):
    """Pages inside the hub's own frame: JupyterHub's page.html (with the
    site's and gpuhub's overrides), given the variables it needs."""

    def hub_namespace(self) -> dict:
        """What JupyterHub's page.html reads (jupyterhub/handlers/base.py: template_namespace)."""
        user = self.current_user
        scopes = (user or {}).get("scopes", ())
        hub_prefix = self.usage.hub_prefix
        return {
            "base_url": hub_prefix,
            "prefix": self.usage.base_url,
            "user": SimpleNamespace(name=user["name"], json_escaped_name=script_string(user["name"]),
                                    admin=bool(user.get("admin")))
            if user else None,
            "login_url": url_path_join(hub_prefix, "login"),
            "logout_url": url_path_join(hub_prefix, "logout"),
            "static_url": self.usage.hub_static,
            "version_hash": "",
            # Every user who reaches this page can use this service; the hub's
            # own pages list the services a user may access, here that is us.
            "services": [SimpleNamespace(name=self.usage.service_name, href=self.usage.prefix)]
            if user else [],
            # Unfiltered scopes only: page.html asks `'admin-ui' in parsed_scopes`.
            "parsed_scopes": {scope for scope in scopes if "!" not in scope},
            "admin_access": bool((user or {}).get("admin")),
            "no_spawner_check": True,
            "xsrf_token": self.xsrf_token.decode("ascii"),
        }

    def render_page(self, template: str, **context):
        html = self.settings["jinja"].get_template(template).render(
            **self.hub_namespace(),
            can_read_all=self.can_read_all,
            can_see_cohorts=may_read_some_cohort((self.current_user or {}).get("scopes", ())),
            usage_prefix=self.usage.prefix,
            interval=self.usage.interval,
            views=views,
            **context,
        )
        self.finish(html)

    def write_error(self, status_code: int, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        self.render_page("error.html", status=status_code, message=message)


class MyGpusPage(PageHandler):
    @web.authenticated
    def get(self):
        since = self.since()
        self.render_page("me.html", page="me", data=self.user_view(self.current_user["name"], since))


class EmbedPage(PageHandler):
    """My GPUs as a bare table, for the iframe on the hub's home page."""

    @web.authenticated
    def get(self):
        self.render_page("embed.html", data=self.user_view(self.current_user["name"], self.since()))


class AllGpusPage(PageHandler):
    @web.authenticated
    def get(self):
        self.require_read_all()
        since = self.since()
        self.render_page("all.html", page="all", data=self.all_view(since))


class ApiHandler(UsageHandler):
    """JSON in, JSON out; no login redirects: 401 without credentials, 403 without scope."""

    def prepare(self):
        if self.current_user is None:
            if self.request.headers.get("Authorization") or self.get_cookie(self.hub_auth.cookie_name):
                raise web.HTTPError(
                    403, f"this token or login lacks access to the {self.usage.service_name} service")
            raise web.HTTPError(401, "log in to the hub, or send Authorization: token <hub API token>")

    def write_json(self, data):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "log_message", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))


class MeApi(ApiHandler):
    def get(self):
        self.write_json(self.user_view(self.current_user["name"], self.since()))


class UserApi(ApiHandler):
    async def get(self, name: str):
        self.require_user_access(name)
        since = self.since()
        if not await self.user_exists(name):
            raise web.HTTPError(404, f"no user {name!r} on this hub")
        self.write_json(self.user_view(name, since))


class GpusApi(ApiHandler):
    def get(self):
        self.require_read_all()
        self.write_json(self.all_view(self.since()))


class GpuApi(ApiHandler):
    def get(self, uuid: str):
        since = self.since()
        sample = self.sample()
        device = sample.device(uuid)
        if device is None:
            raise web.HTTPError(404, f"no GPU {uuid!r} on this host; GET api/me or api/gpus lists them")
        holds_it = device.holder is not None and device.holder.user == self.current_user["name"]
        if not (holds_it or self.can_read_all):
            raise web.HTTPError(403, "you may see only the GPUs your servers hold")
        model = views.device_model(device, self.usage.history, since, self.usage.idle_flag_seconds)
        model["processes"] = [
            {"pid": p.pid, "used_memory": p.used_memory}
            for p in device.processes
            if self.can_read_all or (p.holder and p.holder.user == self.current_user["name"])
        ]
        self.write_json(model)


class NotFoundApi(ApiHandler):
    def get(self, path: str):
        raise web.HTTPError(404, "no such API path: try api/me, api/users/NAME, api/gpus, api/gpus/UUID")


class MetricsHandler(web.RequestHandler):
    """Prometheus text format; ``Authorization: Bearer <token>`` (or ``token <token>``)."""

    def get(self):
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not token or scheme.lower() not in ("bearer", "token"):
            self.set_header("WWW-Authenticate", 'Bearer realm="gpu-usage metrics"')
            raise web.HTTPError(401)
        if not hmac.compare_digest(token.strip().encode(), self.settings["usage"].metrics_token.encode()):
            raise web.HTTPError(403)
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(render(self.settings["registry"]))

    def write_error(self, status_code: int, **kwargs):
        messages = {401: "metrics need Authorization: Bearer <token> (the token file in the hub's state dir)",
                    403: "wrong metrics token"}
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(messages.get(status_code, self._reason) + "\n")
