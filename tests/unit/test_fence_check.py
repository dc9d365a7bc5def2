"""The hub's start-up check where iptables cannot be read: refuse, or warn."""

import io

import pytest

from gpuhub.hub.fence import NotFenced, verify_fence
from gpuhub.hub.fence_rules import FenceSettings, NetworkFacts

FACTS = NetworkFacts(name="lab", bridge="br-0123456789ab", gateway="172.18.0.1", icc=False)


@pytest.fixture
def no_iptables(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a host without iptables on PATH


def test_refuses_with_the_command_to_run(no_iptables):
    with pytest.raises(NotFenced) as refused:
        verify_fence(FenceSettings(network="lab", internet=False), FACTS)
    assert str(refused.value) == (
        "gpuhub: cannot check the fence of the hub's Docker network 'lab':\n"
        "  - iptables is not installed (Debian/Ubuntu: apt-get install iptables)\n"
        "Fix: run `sudo gpuhub fence apply --network lab --hub-ports 8081 --internet deny` "
        "(as root), then start the hub again.\n"
        "Where the hub cannot read iptables (not root), set GPUHUB_FENCE_CHECK=warn and check "
        "by hand: `sudo gpuhub fence check --network lab --hub-ports 8081 --internet deny`."
    )


def test_warn_mode_says_so_and_lets_the_hub_start(no_iptables):
    out = io.StringIO()
    verify_fence(FenceSettings(network="lab", check="warn"), FACTS, out=out)
    assert out.getvalue().startswith(
        "WARNING: gpuhub: cannot check the fence of the hub's Docker network 'lab':\n"
        "  - iptables is not installed"
    )
