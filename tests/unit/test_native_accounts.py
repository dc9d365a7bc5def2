"""NativeAccounts (hub/auth/native.py) without a hub: its safe defaults, and
admin names refused before any database work. The hub-level behaviour is in
tests/integration/test_accounts.py."""

import pytest
from traitlets.config import Config

from gpuhub.hub.auth.native import NativeAccounts, _file_name


def accounts(**settings):
    config = Config()
    for name, value in settings.items():
        setattr(config.NativeAccounts, name, value)
    return NativeAccounts(add_new_table=False, config=config)


def test_safe_defaults():
    auth = accounts()
    assert auth.minimum_password_length == 12
    assert auth.check_common_password is True
    assert (auth.allowed_failed_logins, auth.seconds_before_next_try) == (5, 600)
    assert auth.open_signup is False
    assert not auth.is_password_strong("1qaz2wsx3edc")  # in the common list
    assert not auth.is_password_strong("Short-pass1")
    assert auth.is_password_strong("gpuhub-Test-pass-1")


def test_sign_up_never_creates_an_admin_account():
    auth = accounts(admin_users={"boss"})
    for name in ("boss", "BOSS", "Boss"):
        assert auth.is_admin_name(name)
        assert auth.create_user(name, "a-Good-password-2024") is None  # before any database use
    assert not auth.is_admin_name("bossy")


@pytest.mark.parametrize("name", ["../admin", "a/b", ".hidden", ""])
def test_admin_password_file_stays_in_its_folder(name):
    with pytest.raises(ValueError, match="cannot be a file name"):
        _file_name(name)
