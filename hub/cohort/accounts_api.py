"""``/hub/api/gpuhub/accounts``: accounts with one-time passwords, hub-side
(NativeAuthenticator keeps password hashes in the hub's database; no REST API
sets them).

- ``GET``: ``{"authenticator": "NativeAccounts", "passwords": true}`` — whether
  this hub's authenticator keeps passwords (``gpuhub cohort import`` asks).
- ``POST {"users": ["alice", …], "reset": false}`` (needs ``admin:users``):
  approved accounts with generated passwords, ``{"passwords": {"alice": "…"}}``.
  The users must exist in the hub. An account that already has a password is
  refused (409) unless ``"reset": true``; a user whose roles (own or through
  groups) grant a scope the caller lacks is refused (403): a password would
  let the caller act as them (an admin, say). Each password is one-time: the first
  login leads to the change-password page until a new one is chosen.
"""

from __future__ import annotations

import json

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from gpuhub.hub.cohort.roles_api import missing_scopes


class AccountsHandler(APIHandler):
    def _keeps_passwords(self) -> bool:
        return hasattr(self.authenticator, "create_accounts")

    def _beyond_caller(self, user: orm.User) -> list[str]:
        """Scopes of ``user``'s roles (own or through groups; not the default
        ``user`` role) that the caller does not hold: an admin's password is not
        set by a token that is no admin."""
        granted = [*user.roles, *(role for group in user.groups for role in group.roles)]
        wanted = sorted({s for role in granted if role.name != "user" for s in role.scopes})
        return missing_scopes(self.parsed_scopes, wanted)

    async def get(self):
        if not self.current_user:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        self.write(json.dumps({"authenticator": type(self.authenticator).__name__,
                               "passwords": self._keeps_passwords()}))

    async def post(self):
        if not self.current_user or not self.has_scope("admin:users"):
            raise web.HTTPError(403, "setting accounts' passwords needs the scope admin:users")
        if not self._keeps_passwords():
            raise web.HTTPError(409, f"this hub's authenticator ({type(self.authenticator).__name__}) "
                                "keeps no passwords: its users sign in through it")
        body = self.get_json_body() or {}
        users, reset = body.get("users"), body.get("reset", False)
        if not isinstance(users, list) or not users or not all(isinstance(u, str) for u in users) \
                or not isinstance(reset, bool):
            raise web.HTTPError(400, 'expected {"users": ["alice", …], "reset": false}')
        normalized = [self.authenticator.normalize_username(u) for u in users]
        unknown = [u for u in normalized if orm.User.find(self.db, u) is None]
        if unknown:
            raise web.HTTPError(404, f"no such users in the hub: {', '.join(unknown)} "
                                "(create them first: POST /hub/api/users)")
        beyond = {u: self._beyond_caller(orm.User.find(self.db, u)) for u in normalized}
        beyond = {u: missing for u, missing in beyond.items() if missing}
        if beyond:
            raise web.HTTPError(403, "a password lets its holder act as that user, and these "
                                "users can do more than this token: " + "; ".join(
                                    f"{u} ({', '.join(m)})" for u, m in sorted(beyond.items())))
        existing = [u for u in normalized if self.authenticator.get_user(u) is not None]
        if existing and not reset:
            raise web.HTTPError(409, f"these accounts have a password already: {', '.join(existing)}"
                                '; send "reset": true to replace it')
        passwords = await self.authenticator.create_accounts(normalized)
        self.log.info("One-time passwords set for %d accounts by %s", len(passwords),
                      self.current_user.name)
        self.write(json.dumps({"passwords": passwords}))
