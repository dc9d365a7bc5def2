"""OAuth login (GitHub, generic OIDC) from environment variables. Pure: no I/O.

An OAuth hub is refused unless it names its admin (``GPUHUB_ADMIN``: a
default ``admin`` would make whoever owns that login at the provider the hub's
admin) and an allow-list (users, GitHub organisations/teams, or identity
provider groups): without one, anybody with an account at the provider
could log in and hold GPUs.
"""

from __future__ import annotations

from collections.abc import Mapping

from traitlets.config import Config

OAUTH_KINDS = ("github", "generic-oauth")

# What each kind needs from the environment, besides GPUHUB_ADMIN and an allow-list.
PROVIDER_SETTINGS = {
    "github": ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_CALLBACK_URL"),
    "generic-oauth": (
        "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_CALLBACK_URL",
        "OAUTH2_AUTHORIZE_URL", "OAUTH2_TOKEN_URL", "OAUTH2_USERDATA_URL",
    ),
}


class OAuthSettingsError(ValueError):
    """An OAuth setting is missing or does not fit the authenticator."""


def _names(environ: Mapping[str, str], variable: str) -> set[str]:
    return {name.strip() for name in environ.get(variable, "").split(",") if name.strip()}


def oauth_config(kind: str, environ: Mapping[str, str]) -> Config:
    """The authenticator's settings for ``kind`` ('github' or 'generic-oauth').

    Raises ``OAuthSettingsError`` naming every missing or misplaced setting.
    """
    problems = [f"{name} is not set" for name in PROVIDER_SETTINGS[kind] if not environ.get(name)]
    admin = environ.get("GPUHUB_ADMIN", "").strip()
    if not admin:
        problems.append(
            "GPUHUB_ADMIN is not set: name the admin's login at the identity provider "
            "(e.g. GPUHUB_ADMIN=octocat); there is no default with OAuth"
        )
    users = _names(environ, "GPUHUB_ALLOWED_USERS")
    orgs = _names(environ, "GPUHUB_ALLOWED_ORGS")
    groups = _names(environ, "GPUHUB_ALLOWED_GROUPS")
    if kind == "github" and groups:
        problems.append("GPUHUB_ALLOWED_GROUPS is for generic-oauth; with GitHub use "
                        "GPUHUB_ALLOWED_ORGS=my-org or my-org:my-team")
    if kind == "generic-oauth" and orgs:
        problems.append("GPUHUB_ALLOWED_ORGS is for github; with generic-oauth use "
                        "GPUHUB_ALLOWED_GROUPS (groups from the identity provider's claim)")
    if not (users or orgs or groups):
        allow = "GPUHUB_ALLOWED_ORGS=my-org" if kind == "github" else "GPUHUB_ALLOWED_GROUPS=gpu-users"
        problems.append(
            "no allow-list: set GPUHUB_ALLOWED_USERS=alice,bob and/or " + allow
            + " (otherwise nobody but the admin may log in)"
        )
    if problems:
        raise OAuthSettingsError(
            f"GPUHUB_AUTHENTICATOR={kind} cannot start: " + "; ".join(problems) + "."
        )

    c = Config()
    c.Authenticator.admin_users = {admin}
    c.Authenticator.allowed_users = users
    if kind == "github":
        c.GitHubOAuthenticator.allowed_organizations = orgs
        if orgs:
            c.GitHubOAuthenticator.scope = ["read:org"]  # to see private memberships
    else:
        if environ.get("GPUHUB_USERNAME_CLAIM"):
            c.GenericOAuthenticator.username_claim = environ["GPUHUB_USERNAME_CLAIM"]
        claim = environ.get("GPUHUB_GROUPS_CLAIM", "")
        if claim or groups:
            # JupyterHub groups follow the provider at each login, and with
            # them group_overrides (GPU quotas) and the instructors group.
            c.GenericOAuthenticator.manage_groups = True
            c.GenericOAuthenticator.auth_state_groups_key = f"oauth_user.{claim or 'groups'}"
            c.GenericOAuthenticator.allowed_groups = groups
    return c
