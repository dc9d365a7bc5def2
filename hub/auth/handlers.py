"""NativeAuthenticator's sign-up, login and approval pages, with these changes.

- Sign-up as an admin name gets a clear refusal (the account itself is
  refused by ``NativeAccounts.create_user``; this only words the message).
- Approving and discarding users stay GET links (NativeAuthenticator's
  admin page), but a link from another site cannot trigger them: a browser
  says where a request comes from (``Sec-Fetch-Site``), and SameSite=Lax
  cookies still ride along on a cross-site link.
- A login with a one-time password (``gpuhub cohort import``) leads to the
  change-password page, which says why, until the user chose their own.
- Login works on JupyterHub 6, which removed the ``statsd`` client that
  NativeAuthenticator 1.3's ``LoginHandler.post`` still times logins with.
"""

from __future__ import annotations

from jupyterhub.utils import url_path_join
from nativeauthenticator import handlers as native
from tornado import web

ONE_TIME_MESSAGE = ("Your password was given to you by the organizers and works once: "
                    "choose your own now (the current password is the one you logged in with).")


class _NoStatsd:
    """Accepts NativeAuthenticator's ``statsd.timer(...).start()/.stop()`` and sends nothing."""

    def timer(self, name):
        return self

    def start(self):
        return self

    def stop(self, send=True):
        pass


class LoginHandler(native.LoginHandler):
    """NativeAuthenticator's login page on JupyterHub 5 and 6."""

    @property
    def statsd(self):
        # Workaround for NativeAuthenticator 1.3 on JupyterHub 6 (no statsd setting).
        return self.settings.get("statsd") or _NoStatsd()

    def get_next_url(self, user=None, default=None):
        if user is not None and self.authenticator.must_change_password(user.name):
            return url_path_join(self.hub.base_url, "change-password")
        return super().get_next_url(user, default)


class ChangePasswordHandler(native.ChangePasswordHandler):
    """NativeAuthenticator's change-password page; says why for a one-time password."""

    @web.authenticated
    async def get(self):
        user = await self.get_current_user()
        if not self.authenticator.must_change_password(user.name):
            return await super().get()
        html = await self.render_template("change-password.html", user_name=user.name,
                                          result_message=ONE_TIME_MESSAGE, alert="alert-warning")
        self.finish(html)


class SignUpHandler(native.SignUpHandler):
    """NativeAuthenticator's sign-up page; admin names are refused with a message."""

    def get_result_message(self, user, *args, **kwargs):
        name = self.get_body_argument("username", "", strip=False)
        if self.authenticator.is_admin_name(name):
            return "alert-danger", (
                f"The name {name} belongs to an administrator of this hub and cannot "
                "be signed up for. Please choose another name."
            )
        return super().get_result_message(user, *args, **kwargs)


class _NoCrossSiteGet:
    """Refuse a state-changing GET that a browser says came from another site."""

    async def prepare(self):
        site = self.request.headers.get("Sec-Fetch-Site", "same-origin")
        if self.request.method == "GET" and site not in ("same-origin", "none"):
            raise web.HTTPError(
                403, "This link changes accounts: open it from the hub's Authorize Users page."
            )
        await super().prepare()


class ToggleAuthorizationHandler(_NoCrossSiteGet, native.ToggleAuthorizationHandler):
    """Approve or revoke a user (admins), not from another site's link."""


class DiscardHandler(_NoCrossSiteGet, native.DiscardHandler):
    """Discard a pending sign-up (admins), not from another site's link."""
