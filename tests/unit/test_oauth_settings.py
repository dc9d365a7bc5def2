"""OAuth settings from the environment (hub/auth/oauth.py): refused without an
explicit admin and an allow-list; each missing setting is named."""

import pytest

from gpuhub.hub.auth.oauth import OAuthSettingsError, oauth_config

GITHUB = {"OAUTH_CLIENT_ID": "id", "OAUTH_CLIENT_SECRET": "s", "OAUTH_CALLBACK_URL": "https://h/cb"}
OIDC = {**GITHUB, "OAUTH2_AUTHORIZE_URL": "https://idp/a", "OAUTH2_TOKEN_URL": "https://idp/t",
        "OAUTH2_USERDATA_URL": "https://idp/u"}


def refusal(kind, environ) -> str:
    with pytest.raises(OAuthSettingsError) as error:
        oauth_config(kind, environ)
    return str(error.value)


def test_github_without_admin_names_the_setting():
    message = refusal("github", {**GITHUB, "GPUHUB_ALLOWED_ORGS": "my-org"})
    assert "GPUHUB_ADMIN is not set" in message
    assert "allow-list" not in message


def test_github_without_allow_list_names_the_settings():
    message = refusal("github", {**GITHUB, "GPUHUB_ADMIN": "octocat"})
    assert "no allow-list" in message and "GPUHUB_ALLOWED_ORGS" in message
    assert "GPUHUB_ADMIN" not in message.split("no allow-list")[0]


def test_missing_provider_settings_are_named():
    message = refusal("generic-oauth", {"GPUHUB_ADMIN": "ann", "GPUHUB_ALLOWED_USERS": "bob"})
    for name in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH2_TOKEN_URL", "OAUTH2_USERDATA_URL"):
        assert f"{name} is not set" in message


def test_allow_list_of_the_other_kind_is_refused():
    assert "GPUHUB_ALLOWED_GROUPS is for generic-oauth" in refusal(
        "github", {**GITHUB, "GPUHUB_ADMIN": "o", "GPUHUB_ALLOWED_GROUPS": "g"})
    assert "GPUHUB_ALLOWED_ORGS is for github" in refusal(
        "generic-oauth", {**OIDC, "GPUHUB_ADMIN": "o", "GPUHUB_ALLOWED_ORGS": "org"})


def test_github_settings():
    c = oauth_config("github", {**GITHUB, "GPUHUB_ADMIN": "octocat",
                                "GPUHUB_ALLOWED_ORGS": "lab, lab:gpu-team",
                                "GPUHUB_ALLOWED_USERS": "ann,,bob"})
    assert c.Authenticator.admin_users == {"octocat"}
    assert c.Authenticator.allowed_users == {"ann", "bob"}
    assert c.GitHubOAuthenticator.allowed_organizations == {"lab", "lab:gpu-team"}
    assert c.GitHubOAuthenticator.scope == ["read:org"]


def test_oidc_groups_follow_the_identity_provider():
    c = oauth_config("generic-oauth", {**OIDC, "GPUHUB_ADMIN": "ann@lab.org",
                                       "GPUHUB_ALLOWED_GROUPS": "gpu-users",
                                       "GPUHUB_GROUPS_CLAIM": "roles",
                                       "GPUHUB_USERNAME_CLAIM": "email"})
    assert c.GenericOAuthenticator.manage_groups is True
    assert c.GenericOAuthenticator.auth_state_groups_key == "oauth_user.roles"
    assert c.GenericOAuthenticator.allowed_groups == {"gpu-users"}
    assert c.GenericOAuthenticator.username_claim == "email"


def test_oidc_with_users_only_leaves_groups_alone():
    c = oauth_config("generic-oauth", {**OIDC, "GPUHUB_ADMIN": "ann", "GPUHUB_ALLOWED_USERS": "bob"})
    assert "manage_groups" not in c.GenericOAuthenticator
    assert c.Authenticator.allowed_users == {"bob"}
