"""Reset my environment, on the hub: the confirmation page, the REST API, and
the one call that registers them (``configure_reset(c)``).

A reset is a request recorded on the server's spawner (its state, so a hub
restart keeps it); the spawner carries it out at the server's next start,
before the new container is made (``spawner/environment_reset.py``). A
running server is stopped and started again at once, with its last options;
a stopped one is reset when it next starts.

Who may: whoever holds the ``servers`` scope on that server — the user
themselves (``servers!user``), a cohort's instructors (``servers!group=…``,
``hub/cohort/names.py``) and admins — as JupyterHub's own ``has_scope``
decides. Others get 403 whether or not the user exists (JupyterHub's
``needs_scope`` answers 404 to holders of a filtered scope; a refusal that
says what is needed serves people better, and names no user either way).

| path | method | does |
|---|---|---|
| ``/hub/reset/USER[/SERVER]`` | GET | the confirmation page: what moves where |
| same | POST (form, xsrf) | request the reset (or ``action=cancel``), then the spawn page |
| ``/hub/api/users/USER/server/reset`` | GET, POST, DELETE | the pending request; request (202); cancel |
| ``/hub/api/users/USER/servers/SERVER/reset`` | same | same, for a named server |
"""

from __future__ import annotations

from datetime import datetime, timezone

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import has_scope
from jupyterhub.utils import url_escape_path, url_path_join
from tornado import web

from gpuhub.spawner.environment_reset import ENVIRONMENT_DIRECTORIES, reset_folder, stamp

from .gpu_usage.wiring import current


def _server_label(user_name: str, server_name: str) -> str:
    return f"{user_name}'s server {server_name!r}" if server_name else f"{user_name}'s server"


def require_scope(handler: BaseHandler, scope: str, user_name: str, server_name: str) -> None:
    """403 unless the caller holds ``scope`` on that server (or its user, group, all)."""
    if handler.current_user is None:
        raise web.HTTPError(403, "Missing or invalid credentials.")
    if not has_scope(f"{scope}!server={user_name}/{server_name}", handler.parsed_scopes, db=handler.db):
        raise web.HTTPError(
            403, f"Resetting {_server_label(user_name, server_name)} needs the {scope!r} scope on "
            "that user: the user, their cohort's instructors and admins have it",
        )


class Reset:
    """One server's reset: checks, the request, the restart. Used by both handlers."""

    def __init__(self, handler: BaseHandler, user_name: str, server_name: str):
        self.handler = handler
        self.label = _server_label(user_name, server_name)
        self.user = handler.find_user(user_name)
        if self.user is None:
            raise web.HTTPError(404, f"No user named {user_name!r}")
        if server_name:
            if not handler.allow_named_servers:
                raise web.HTTPError(400, "Named servers are not enabled on this hub: "
                                    "reset the default server (no server name)")
            if server_name not in self.user.orm_spawners:
                raise web.HTTPError(404, f"{user_name} has no server named {server_name!r}")
        self.server_name = server_name
        self.spawner = self.user.spawners[server_name]
        if not hasattr(self.spawner, "reset_requested"):
            raise web.HTTPError(400, "This hub's servers cannot be reset: their spawner is not "
                                "GPUDockerSpawner")

    @property
    def pending(self) -> str:
        return self.spawner.reset_requested

    def describe(self, request_stamp: str = "") -> dict:
        """What moves where: into the folder of ``request_stamp``, else of the
        pending request, else of now (the page's example)."""
        when = request_stamp or self.pending or stamp(datetime.now(timezone.utc))
        folder = "~/" + reset_folder(when)
        return {
            "user": self.user.name,
            "server": self.server_name,
            "pending": self.pending or None,
            "folder": folder,
            "directories": [
                {"path": f"~/{name}", "moves_to": f"{folder}/{name}", "holds": holds}
                for name, holds in ENVIRONMENT_DIRECTORIES.items()
            ],
        }

    def _save(self, value: str) -> None:
        self.spawner.reset_requested = value
        self.spawner.orm_spawner.state = self.spawner.get_state()
        self.handler.db.commit()

    async def request(self) -> dict:
        """Record the request; a running server is stopped and started again."""
        if self.spawner.pending:
            raise web.HTTPError(409, f"{self.label} is busy ({self.spawner.pending}): "
                                "try again when it has finished")
        request_stamp = stamp(datetime.now(timezone.utc))
        self._save(request_stamp)
        restarted = self.spawner.ready and await self.spawner.poll_and_notify() is None
        if restarted:
            self.handler.log.info("Reset of %s requested by %s: restarting it",
                                  self.label, self.handler.current_user.name)
            stopping = await self.handler.stop_single_user(self.user, self.server_name)
            await stopping
            await self.handler.spawn_single_user(self.user, self.server_name)  # last options
        else:
            self.handler.log.info("Reset of %s requested by %s: at its next start",
                                  self.label, self.handler.current_user.name)
        answer = self.describe(request_stamp)
        answer["restarted"] = restarted
        answer["message"] = (
            f"{self.label} is starting again in a fresh container; the folders that exist "
            f"move into {answer['folder']}/" if restarted else
            f"{self.label} is stopped: the folders that exist move into {answer['folder']}/ "
            "when it next starts"
        )
        return answer

    def cancel(self) -> bool:
        if not self.pending:
            return False
        self._save("")
        self.handler.log.info("Reset of %s cancelled by %s", self.label,
                              self.handler.current_user.name)
        return True


class ResetPageHandler(BaseHandler):
    """``/hub/reset/USER[/SERVER]``: what a reset moves, and the button that does it."""

    @web.authenticated
    async def get(self, user_name, server_name=""):
        require_scope(self, "servers", user_name, server_name)
        reset = Reset(self, user_name, server_name)
        others = [s.name or "default" for s in reset.user.all_spawners() if s.name != server_name]
        html = await self.render_template(
            "reset.html", reset=reset.describe(), label=reset.label, for_user=reset.user,
            running=bool(reset.spawner.active), other_servers=others,
            xsrf=self.xsrf_token.decode("ascii"),
        )
        self.finish(html)

    @web.authenticated
    async def post(self, user_name, server_name=""):
        require_scope(self, "servers", user_name, server_name)
        reset = Reset(self, user_name, server_name)
        if self.get_body_argument("action", "reset") == "cancel":
            reset.cancel()
            self.redirect(url_path_join(self.hub.base_url, "home"))
            return
        try:
            answer = await reset.request()
        except web.HTTPError:
            raise
        except Exception:  # the start failed at once: the spawn page shows why
            self.log.warning("Restart of %s after its reset request failed", reset.label, exc_info=True)
            answer = {"restarted": True}
        escaped = url_escape_path(server_name)
        if answer["restarted"]:
            self.redirect(url_path_join(self.hub.base_url, "spawn-pending", reset.user.escaped_name, escaped))
        else:
            self.redirect(url_path_join(self.hub.base_url, "spawn", reset.user.escaped_name, escaped))


class ResetAPIHandler(APIHandler):
    """``/hub/api/users/USER/server/reset`` and ``…/servers/SERVER/reset``."""

    async def get(self, user_name, server_name=""):
        require_scope(self, "read:servers", user_name, server_name)
        self.write(Reset(self, user_name, server_name).describe())

    async def post(self, user_name, server_name=""):
        require_scope(self, "servers", user_name, server_name)
        answer = await Reset(self, user_name, server_name).request()
        self.set_status(202)
        self.write(answer)

    async def delete(self, user_name, server_name=""):
        require_scope(self, "servers", user_name, server_name)
        reset = Reset(self, user_name, server_name)
        self.write({"user": reset.user.name, "server": server_name, "cancelled": reset.cancel()})


HANDLERS = [
    (r"/reset/([^/]+)", ResetPageHandler),
    (r"/reset/([^/]+)/([^/]+)", ResetPageHandler),
    (r"/api/users/([^/]+)/server/reset", ResetAPIHandler),
    (r"/api/users/([^/]+)/servers/([^/]+)/reset", ResetAPIHandler),
]


def configure_reset(c) -> None:
    """Serve the reset page and API from the hub (``c.JupyterHub.extra_handlers``;
    JupyterHub logs that it is deprecated in favour of services, but a service
    cannot stop and start servers with the hub's own checks and last options)."""
    hub = c.JupyterHub
    existing = [h for h in current(hub, "extra_handlers", []) if h not in HANDLERS]
    hub.extra_handlers = [*existing, *HANDLERS]
