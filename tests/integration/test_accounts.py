"""Accounts and login, safe by default (hub/auth/), on the real hub and proxy:
the hub makes the admin account, sign-up cannot claim it, password policy and
lockout, NativeAuthenticator's pages in the nav bar, no spawn from a link,
SameSite cookies, OAuth refused without an admin, HTTPS."""

import datetime
import ipaddress
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import PREFIX, REPO, Hub

PASSWORD = "gpuhub-Test-pass-1"  # hubrig's Hub.login default


def sign_up(hub, name, password):
    session = requests.Session()
    session.get(f"{hub.url}/hub/signup", timeout=30)
    fields = {"username": name, "signup_password": password,
              "signup_password_confirmation": password}
    return session, hub.form_post(session, "/hub/signup", fields)


def log_in(hub, name, password, session=None):
    session = session or requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    return hub.form_post(session, "/hub/login", {"username": name, "password": password})


def set_cookies(response) -> list[str]:
    return response.raw.headers.getlist("Set-Cookie")


def test_first_admin_is_made_by_the_hub_and_cannot_be_claimed(start_hub):
    hub = start_hub(FakeNVML.make_gpus(1))
    password_file = hub.workdir / "state" / "admin_passwords" / "admin"

    # An outsider races for the admin name right after the first start.
    for name in ("admin", "Admin"):
        _, response = sign_up(hub, name, "outsider-Pass-2024!")
        assert response.status_code == 200
        assert f"The name {name} belongs to an administrator" in response.text
    assert log_in(hub, "admin", "outsider-Pass-2024!").status_code == 200  # the form again
    assert "Invalid username or password" in log_in(hub, "admin", "outsider-Pass-2024!").text

    # The operator's password: generated, 0600 in a 0700 folder, logged once with its path.
    password = password_file.read_text().strip()
    assert len(password) >= 24 and password_file.stat().st_mode & 0o777 == 0o600
    assert password_file.parent.stat().st_mode & 0o777 == 0o700
    assert hub.log_path.read_text().count(password) == 1
    assert str(password_file) in hub.log_tail(400)
    response = log_in(hub, "admin", password)
    assert response.status_code == 302, response.text
    assert hub.api("GET", "/users/admin").json()["admin"] is True

    # A restart keeps the password and does not print it again.
    written = password_file.stat().st_mtime_ns
    hub.restart()
    assert password_file.read_text().strip() == password
    assert password_file.stat().st_mtime_ns == written
    assert hub.log_path.read_text().count(password) == 1
    assert log_in(hub, "admin", password).status_code == 302


def test_password_policy_and_lockout(start_hub):
    hub = start_hub(FakeNVML.make_gpus(1))
    for weak in ("Short-pass1", "1qaz2wsx3edc"):  # 11 characters; a common password
        _, response = sign_up(hub, "ann", weak)
        assert "has at least 12 characters and is not too common" in response.text
    hub.login("ann")  # signs up with a good password, approved by the admin

    for _ in range(5):
        assert log_in(hub, "ann", "wrong-password-123").status_code == 200
    locked = log_in(hub, "ann", PASSWORD)
    assert locked.status_code == 200, "the 6th try got in although the name is locked"
    assert "Invalid username or password" in locked.text
    # Another name is not locked with it.
    assert log_in(hub, "admin", hub.admin_password).status_code == 302


def test_nav_bar_links_get_spawn_and_cookies(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(2))
    admin = hub.login("admin")
    home = admin.get(f"{hub.url}/hub/home", timeout=30).text
    assert re.search(r'href="/hub/authorize"[^>]*>\s*Authorize Users', home)
    assert re.search(r'href="/hub/change-password"[^>]*>\s*Change Password', home)
    assert 'id="nav-gpu-usage"' in home

    ann = requests.Session()
    ann.get(f"{hub.url}/hub/login", timeout=30)
    hub.login("ann")  # sign-up and approval
    response = hub.form_post(ann, "/hub/login", {"username": "ann", "password": PASSWORD})
    assert response.status_code == 302
    cookies = set_cookies(response)
    assert {c.split("=", 1)[0] for c in cookies} >= {"jupyterhub-hub-login", "jupyterhub-session-id"}
    for cookie in cookies:
        assert "samesite=lax" in cookie.lower(), cookie
    xsrf = set_cookies(requests.get(f"{hub.url}/hub/login", timeout=30))
    assert xsrf and all("samesite=lax" in c.lower() for c in xsrf), xsrf

    home = ann.get(f"{hub.url}/hub/home", timeout=30).text
    assert "Change Password" in home and "/hub/authorize" not in home

    # A link (GET with options) shows the form; it starts nothing.
    page = ann.get(f"{hub.url}/hub/spawn?gpus=1", timeout=30, allow_redirects=False)
    assert page.status_code == 400
    assert "A link cannot start a server" in page.text and 'id="gpuhub-gpus"' in page.text
    assert hub.server("ann") is None
    assert not engine.containers.list(all=True, filters={"name": f"^{PREFIX}-ann$"})
    assert "Spawning server for ann" not in hub.log_path.read_text()


def test_oauth_without_admin_refuses_to_start(engine, tmp_path):
    hub = Hub(workdir=tmp_path, nvml=FakeNVML(tmp_path / "gpus.state"))
    hub.write_config()
    env = hub.environment()
    del env["GPUHUB_ADMIN"]
    env.update(GPUHUB_AUTHENTICATOR="github", OAUTH_CLIENT_ID="id", OAUTH_CLIENT_SECRET="secret",
               OAUTH_CALLBACK_URL=f"{hub.url}/hub/oauth_callback", GPUHUB_ALLOWED_ORGS="my-lab")
    result = subprocess.run(
        [sys.executable, "-m", "jupyterhub", "-f", str(REPO / "config" / "jupyterhub_config.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "GPUHUB_AUTHENTICATOR=github cannot start: GPUHUB_ADMIN is not set" in result.stderr
    assert "Traceback" not in result.stderr


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "hub.crt", folder / "hub.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


@dataclass
class HttpsHub(Hub):
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def environment(self) -> dict:
        env = super().environment()
        env.update(GPUHUB_SSL_CERT=str(self.cert_file), GPUHUB_SSL_KEY=str(self.key_file))
        return env


def test_https_when_cert_and_key_are_set(engine, nvml_library, tmp_path, monkeypatch):
    cert_file, key_file = self_signed_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))  # trust only this cert
    nvml = FakeNVML(tmp_path / "gpus.state")
    nvml.write(FakeNVML.make_gpus(1))
    hub = HttpsHub(workdir=tmp_path, nvml=nvml, cert_file=cert_file, key_file=key_file)
    try:
        hub.start()
        page = requests.get(f"{hub.url}/hub/login", timeout=30)
        assert page.status_code == 200 and 'name="password"' in page.text
        response = log_in(hub, "admin", hub.admin_password)
        assert response.status_code == 302
        assert all("secure" in c.lower() for c in set_cookies(response))
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{hub.port}/hub/login", timeout=10)
    except Exception:
        print(f"----- hub log -----\n{hub.log_tail(200)}")
        raise
    finally:
        hub.stop()


def test_approval_link_from_another_site_is_refused(start_hub):
    hub = start_hub(FakeNVML.make_gpus(1))
    sign_up(hub, "mallory", "mallory-Pass-2024!")
    admin = hub.login("admin")
    # What a browser sends when the admin follows a link on another site.
    response = admin.get(f"{hub.url}/hub/authorize/mallory", timeout=30,
                         headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False)
    assert response.status_code == 403 and "Authorize Users" in response.text
    assert log_in(hub, "mallory", "mallory-Pass-2024!").status_code == 200  # still pending
    # From the hub's own Authorize Users page it works.
    response = admin.get(f"{hub.url}/hub/authorize/mallory", timeout=30,
                         headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False)
    assert response.status_code == 302
    assert log_in(hub, "mallory", "mallory-Pass-2024!").status_code == 302
