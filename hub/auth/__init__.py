"""Who may log in, and how the first admin gets in.

- ``native.py``: ``NativeAccounts``, NativeAuthenticator safe by default (the
  hub creates the admin accounts; sign-up never claims an admin name;
  password policy and lockout on).
- ``handlers.py``: its sign-up and login pages (a clear refusal for admin
  names; the login page also works on JupyterHub 6).
- ``oauth.py``: GitHub / generic OIDC settings from the environment, refused
  without an explicit admin and an allow-list.
"""
