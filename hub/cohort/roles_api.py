"""The hub-side API of ``gpuhub cohort``: what JupyterHub's REST API lacks.

- ``GET|PUT|DELETE /hub/api/gpuhub/cohorts/{cohort}/instructors-role``: the
  role :func:`names.instructor_role_name` with :func:`names.instructor_scopes`,
  granted to the group :func:`names.instructors_group`. JupyterHub deletes
  roles not in ``load_roles`` at every start, except those marked
  ``managed_by_auth`` (kept while ``Authenticator.reset_managed_roles_on_startup``
  is False, its default): ours are marked so. Whoever calls must hold
  ``admin:groups`` and every scope the role grants (no one hands out more
  than they have).
- ``GET|POST /hub/api/gpuhub/accounts``: one-time passwords for new accounts
  (hub/cohort/accounts_api.py).

Registered with :func:`configure_cohort_api` through
``c.JupyterHub.extra_handlers`` (deprecated in favour of services, but a
service cannot create roles: they live in the hub's database). Checked with
JupyterHub 5.x and 6.x (same ``roles``/``scopes`` functions).
"""

from __future__ import annotations

import json

from jupyterhub import orm, roles, scopes
from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from gpuhub.hub.cohort import names
from gpuhub.hub.cohort.cohort_file import NAME, NAME_RULE

API = "/api/gpuhub"  # below the hub's prefix: /hub/api/gpuhub/…


def missing_scopes(have: dict, wanted: list[str]) -> list[str]:
    """Those of ``wanted`` (``scope!group=x`` or plain) that ``have`` (a handler's
    ``parsed_scopes``) does not cover."""
    return [scope for scope in wanted if not _has(scope, have)]


def _has(scope: str, have: dict) -> bool:
    try:
        return scopes.has_scope(scope, have)
    except ValueError:  # an unexpanded filter (``!user``): not something a caller holds as such
        return False


def role_model(role: orm.Role) -> dict:
    return {"name": role.name, "scopes": sorted(role.scopes),
            "groups": sorted(group.name for group in role.groups)}


class InstructorsRoleHandler(APIHandler):
    """A cohort's instructors' role: read, create or update, delete."""

    def _cohort(self, cohort: str) -> str:
        if not NAME.match(cohort):
            raise web.HTTPError(400, f"invalid cohort name {cohort!r}: {NAME_RULE}")
        return cohort

    def _require(self, wanted: list[str]):
        if not self.current_user:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        missing = missing_scopes(self.parsed_scopes, wanted)
        if missing:
            raise web.HTTPError(403, "this token lacks the scopes " + ", ".join(missing)
                                + ": managing a cohort's instructors' role needs admin:groups "
                                "and every scope the role grants")

    async def get(self, cohort: str):
        cohort = self._cohort(cohort)
        self._require(["read:roles:groups"])
        role = orm.Role.find(self.db, names.instructor_role_name(cohort))
        if role is None:
            raise web.HTTPError(404, f"cohort {cohort} has no instructors' role")
        self.write(json.dumps(role_model(role)))

    async def put(self, cohort: str):
        cohort = self._cohort(cohort)
        wanted = names.instructor_scopes(cohort)
        self._require(["admin:groups", *wanted])
        group = orm.Group.find(self.db, names.instructors_group(cohort))
        if group is None:
            raise web.HTTPError(404, f"group {names.instructors_group(cohort)} does not exist: "
                                "create it first (gpuhub cohort import does)")
        try:
            role = roles.create_role(self.db, {
                "name": names.instructor_role_name(cohort),
                "description": f"Instructors of cohort {cohort}: its members' servers and usage",
                "scopes": wanted,
                "managed_by_auth": True,  # kept at hub start (see the module's docstring)
            })
        except (KeyError, ValueError) as error:  # e.g. the gpu-usage scope is not defined
            raise web.HTTPError(409, f"cannot create the role: {error}") from None
        roles.grant_role(self.db, group, role, managed=True)
        self.log.info("Instructors' role %s of cohort %s set by %s", role.name, cohort,
                      self.current_user.name)
        self.write(json.dumps(role_model(role)))

    async def delete(self, cohort: str):
        cohort = self._cohort(cohort)
        self._require(["admin:groups", *names.instructor_scopes(cohort)])
        name = names.instructor_role_name(cohort)
        if orm.Role.find(self.db, name) is None:
            raise web.HTTPError(404, f"cohort {cohort} has no instructors' role")
        roles.delete_role(self.db, name)
        self.log.info("Instructors' role %s deleted by %s", name, self.current_user.name)
        self.set_status(204)


def cohort_handlers() -> list[tuple]:
    from gpuhub.hub.cohort.accounts_api import AccountsHandler

    return [
        (rf"{API}/cohorts/([^/]+)/instructors-role", InstructorsRoleHandler),
        (rf"{API}/accounts", AccountsHandler),
    ]


def configure_cohort_api(c) -> None:
    """Add the endpoints to ``c.JupyterHub.extra_handlers`` (keeps a site's own)."""
    current = c.JupyterHub.extra_handlers if "extra_handlers" in c.JupyterHub else []
    c.JupyterHub.extra_handlers = [*current, *cohort_handlers()]
