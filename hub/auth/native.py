"""``NativeAccounts``: local accounts (NativeAuthenticator), safe by default.

- The hub creates each admin account (``admin_users``) at its first start,
  with a generated password written once to ``<admin_passwords_dir>/<name>``
  (0600, never overwritten) and logged once. No sign-up race for the admin.
- Sign-up never creates an account with an admin name.
- Password policy: at least 12 characters, not a common password; after 5
  failed logins a name is locked for 10 minutes (even the right password is
  refused). The counts live in the hub's memory: a restart clears them.
- Accounts made for an organizer (``create_accounts``, used by ``gpuhub cohort
  import``) are approved and get a generated one-time password: the login
  with it leads to the change-password page until the user chose their own.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import bcrypt
import nativeauthenticator
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode, default

from gpuhub.hub.auth import one_time
from gpuhub.hub.auth.handlers import (
    ChangePasswordHandler,
    DiscardHandler,
    LoginHandler,
    SignUpHandler,
    ToggleAuthorizationHandler,
)
from gpuhub.hub.bootstrap import ensure_private_dir, ensure_secret_file

PASSWORD_BYTES = 12  # 24 hex characters, 96 random bits

# NativeAuthenticator's page.html adds "Change password" and "Authorize users"
# to the nav bar, but ours (hub/templates/page.html) is found first under that
# name: ours extends it by this path, through NATIVE_TEMPLATE_ROOT in
# c.JupyterHub.template_paths (the folder that holds the nativeauthenticator package).
NATIVE_TEMPLATE_ROOT = str(Path(nativeauthenticator.__file__).parent.parent)
NATIVE_PAGE = "nativeauthenticator/templates/page.html"


class NativeAccounts(NativeAuthenticator):
    """NativeAuthenticator whose admin accounts are made by the hub, not by sign-up."""

    admin_passwords_dir = Unicode(
        "",
        config=True,
        help="""Folder (mode 0700) where the hub writes the generated password of
        each admin account it creates, one file per name (mode 0600, written once,
        never overwritten). Empty: admin accounts are not created (and sign-up
        still cannot claim an admin name).

            c.NativeAccounts.admin_passwords_dir = "/srv/gpuhub/admin_passwords"
        """,
    )

    @default("allow_all")
    def _default_allow_all(self):
        return True  # an admin's approval (or the hub, for admins) is the gate

    @default("minimum_password_length")
    def _default_minimum_password_length(self):
        return 12

    @default("check_common_password")
    def _default_check_common_password(self):
        return True

    @default("allowed_failed_logins")
    def _default_allowed_failed_logins(self):
        return 5

    @default("seconds_before_next_try")
    def _default_seconds_before_next_try(self):
        return 600

    def __init__(self, *args, add_new_table=True, **kwargs):
        super().__init__(*args, add_new_table=add_new_table, **kwargs)
        if add_new_table:  # as NativeAuthenticator does for its own table
            one_time.ensure_table(self.db)
        if self.admin_passwords_dir:
            self.ensure_admin_accounts()

    def is_admin_name(self, name: str) -> bool:
        return self.normalize_username(name) in {
            self.normalize_username(admin) for admin in self.admin_users
        }

    def create_user(self, username, password, **kwargs):
        """Sign-up: never for an admin name (admin accounts come from the hub)."""
        if self.is_admin_name(username):
            self.log.warning("Sign-up as admin name %r refused", username)
            return None
        return super().create_user(username, password, **kwargs)

    async def create_accounts(self, names: list[str]) -> dict[str, str]:
        """Approved accounts for ``names`` with generated one-time passwords
        (an existing account's password is replaced). Returns name -> password."""
        passwords = {name: secrets.token_urlsafe(PASSWORD_BYTES) for name in names}
        # bcrypt takes ~0.2 s a hash: off the hub's event loop
        hashes = await asyncio.to_thread(
            lambda: {n: bcrypt.hashpw(p.encode(), bcrypt.gensalt()) for n, p in passwords.items()}
        )
        for name, hashed in hashes.items():
            account = self.get_user(name)
            if account is None:
                self.db.add(UserInfo(username=name, password=hashed, is_authorized=True))
            else:
                account.password, account.is_authorized = hashed, True
        self.db.commit()
        one_time.mark(self.db, names)
        return passwords

    def must_change_password(self, name: str) -> bool:
        return one_time.is_marked(self.db, self.normalize_username(name))

    def change_password(self, username, new_password):
        """A password the user chose (or an admin set) is no longer one-time."""
        changed = super().change_password(username, new_password)
        if changed:
            one_time.clear(self.db, self.normalize_username(username))
        return changed

    def delete_user(self, user):
        one_time.clear(self.db, user.name)
        return super().delete_user(user)

    def ensure_admin_accounts(self):
        """Create the account of every admin name that has none, approved."""
        folder = ensure_private_dir(self.admin_passwords_dir)
        for name in sorted({self.normalize_username(admin) for admin in self.admin_users}):
            password_file = folder / _file_name(name)
            if self.get_user(name) is not None:
                if not password_file.exists():
                    self.log.warning(
                        "Admin account %r exists but was not created by the hub (no %s): "
                        "if you did not sign it up yourself, delete it "
                        "(hub admin page) and restart the hub to get a generated password.",
                        name, password_file,
                    )
                continue
            generated = not password_file.exists()
            password = ensure_secret_file(password_file, PASSWORD_BYTES)
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
            self.db.add(UserInfo(username=name, password=hashed, is_authorized=True))
            self.db.commit()
            if generated:
                self.log.warning(
                    "Created admin account %r with password %s (also in %s, mode 0600). "
                    "Log in and change it at /hub/change-password.",
                    name, password, password_file,
                )
            else:
                self.log.warning(
                    "Created admin account %r with the password kept in %s.", name, password_file
                )

    def get_handlers(self, app):
        ours = {
            "/login": LoginHandler,
            "/signup": SignUpHandler,
            "/authorize/([^/]*)": ToggleAuthorizationHandler,
            "/discard/([^/]*)": DiscardHandler,
            "/change-password": ChangePasswordHandler,
        }
        return [(path, ours.get(path, handler)) for path, handler in super().get_handlers(app)]


def _file_name(name: str) -> str:
    """The admin name as a file name; refuses names that would leave the folder."""
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(
            f"Admin name {name!r} cannot be a file name in admin_passwords_dir: "
            "use letters, digits, '-', '_' or '@' (e.g. GPUHUB_ADMIN=admin)."
        )
    return name
