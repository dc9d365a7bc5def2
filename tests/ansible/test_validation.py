"""The first play refuses bad settings, naming the variable, before anything
changes on the host: the target is the bare base image, and `docker diff`
shows the same before and after each refused run."""

import pytest

from tests.ansible.target import Target, ansible_playbook

GOOD = {"gpuhub_admin": "ann", "gpuhub_notebook_image_build": False}

BAD = {
    "negative GPU quota": ({"gpuhub_gpu_quota": -1}, "gpuhub_gpu_quota=-1"),
    "negative group GPU quota": (
        {"gpuhub_groups": {"researchers": {"gpu_quota": -2}}}, "gpuhub_groups.researchers.gpu_quota=-2"),
    "unknown authenticator": ({"gpuhub_authenticator": "ldap"}, "gpuhub_authenticator=ldap"),
    "OAuth without client secret": (
        {"gpuhub_authenticator": "github", "gpuhub_oauth_client_id": "id",
         "gpuhub_oauth_callback_url": "https://hub.example.org/hub/oauth_callback",
         "gpuhub_allowed_orgs": ["lab"]},
        "gpuhub_oauth_client_secret is empty"),
    "OAuth without admin": (
        {"gpuhub_authenticator": "generic-oauth", "gpuhub_admin": "", "gpuhub_oauth_client_id": "id",
         "gpuhub_oauth_client_secret": "s", "gpuhub_oauth_callback_url": "https://h/hub/oauth_callback",
         "gpuhub_oauth_authorize_url": "https://i/a", "gpuhub_oauth_token_url": "https://i/t",
         "gpuhub_oauth_userdata_url": "https://i/u", "gpuhub_allowed_groups": ["gpu"]},
        "gpuhub_admin is empty"),
    "image not allowed": (
        {"gpuhub_notebook_image": "evil/miner:latest", "gpuhub_allowed_images": ["gpuhub/pytorch-notebook:2.6-cuda12.4"]},
        "gpuhub_notebook_image=evil/miner:latest is not in gpuhub_allowed_images"),
    "unknown TLS mode": ({"tls_proxy_mode": "plain"}, "tls_proxy_mode=plain"),
    "short admin password": ({"gpuhub_admin_password": "short"}, "gpuhub_admin_password is shorter than 12"),
    "SSH port the hub cannot open": ({"gpuhub_ssh_port": 22}, "gpuhub_ssh_port=22: use a TCP port from 1024"),
    "SSH port not a number": ({"gpuhub_ssh_port": "ssh"}, "gpuhub_ssh_port=ssh: use a TCP port"),
    "SSH port the hub uses": ({"gpuhub_ssh_port": 8082}, "gpuhub_ssh_port=8082 is taken by the hub itself"),
    "unknown firewall mode": ({"host_firewall_mode": "iptables"}, "host_firewall_mode=iptables: use auto"),
}


@pytest.fixture(scope="module")
def bare_target(engine):
    target = Target("validate")
    target.start()
    yield target
    target.remove()


@pytest.mark.parametrize("case", list(BAD))
def test_validation_refuses_bad_value_and_changes_nothing(case, bare_target, tmp_path):
    settings, message = BAD[case]
    before = bare_target.changes()
    result = ansible_playbook(bare_target.inventory(tmp_path / "inventory.json", {**GOOD, **settings}))
    assert result.returncode != 0, result.output
    assert message in result.output, result.output[-3000:]
    assert "PLAY [Deploy the GPU hub]" not in result.output
    assert bare_target.changes() == before


def test_validation_lets_good_values_through(bare_target, tmp_path):
    """Good values pass the first play (`--tags validate` runs only that one)."""
    before = bare_target.changes()
    result = ansible_playbook(bare_target.inventory(tmp_path / "inventory.json", GOOD), "--tags", "validate")
    assert result.returncode == 0, result.output[-3000:]
    assert "Refuse an unknown authenticator" in result.output
    assert "Ensure Docker Engine is installed" not in result.output
    assert bare_target.changes() == before
