"""The fence's rules, built from settings: whole rule lists compared (no I/O)."""

import pytest

from gpuhub.hub.fence import NotFenced, facts_from_attrs
from gpuhub.hub.fence_rules import (
    FamilyRules,
    FenceSettingError,
    FenceSettings,
    NetworkFacts,
    Opening,
    build_fence,
    chain_name,
    normalize,
    parse_table,
    private_nameservers,
    restore_payload,
    table_problems,
)

FACTS = NetworkFacts(name="gpuhub", bridge="br-0123456789ab", gateway="172.18.0.1", icc=False)
C = '-m comment --comment "gpuhub-fence:gpuhub"'
REJECT = "REJECT --reject-with icmp-port-unreachable"
REJECT6 = "REJECT --reject-with icmp6-port-unreachable"
HOOKS = [
    ("INPUT", f"-A INPUT -i br-0123456789ab {C} -j GPUHUB-IN-gpuhub"),
    ("DOCKER-USER", f"-A DOCKER-USER -i br-0123456789ab {C} -j GPUHUB-FWD-gpuhub"),
]
IPV6 = FamilyRules(
    {
        "GPUHUB-IN-gpuhub": [
            f"-A GPUHUB-IN-gpuhub -m conntrack --ctstate RELATED,ESTABLISHED {C} -j ACCEPT",
            f"-A GPUHUB-IN-gpuhub {C} -j {REJECT6}",
        ],
        "GPUHUB-FWD-gpuhub": [f"-A GPUHUB-FWD-gpuhub {C} -j {REJECT6}"],
    },
    HOOKS,
)


def test_default_fence_hub_port_only_internet_without_private_ranges():
    fence = build_fence(FenceSettings(), FACTS, nameservers=("10.0.0.2",))
    assert fence == {
        "iptables": FamilyRules(
            {
                "GPUHUB-IN-gpuhub": [
                    f"-A GPUHUB-IN-gpuhub -m conntrack --ctstate RELATED,ESTABLISHED {C} -j ACCEPT",
                    f"-A GPUHUB-IN-gpuhub -d 172.18.0.1/32 -p tcp -m tcp --dport 8081 {C} -j ACCEPT",
                    f"-A GPUHUB-IN-gpuhub {C} -j {REJECT}",
                ],
                "GPUHUB-FWD-gpuhub": [
                    f"-A GPUHUB-FWD-gpuhub -d 169.254.0.0/16 {C} -j {REJECT}",
                    f"-A GPUHUB-FWD-gpuhub -o br-0123456789ab {C} -j {REJECT}",
                    f"-A GPUHUB-FWD-gpuhub -d 10.0.0.2/32 -p udp -m udp --dport 53 {C} -j RETURN",
                    f"-A GPUHUB-FWD-gpuhub -d 10.0.0.2/32 -p tcp -m tcp --dport 53 {C} -j RETURN",
                    f"-A GPUHUB-FWD-gpuhub -d 10.0.0.0/8 {C} -j {REJECT}",
                    f"-A GPUHUB-FWD-gpuhub -d 172.16.0.0/12 {C} -j {REJECT}",
                    f"-A GPUHUB-FWD-gpuhub -d 192.168.0.0/16 {C} -j {REJECT}",
                    f"-A GPUHUB-FWD-gpuhub -d 100.64.0.0/10 {C} -j {REJECT}",
                ],
            },
            HOOKS,
        ),
        "ip6tables": IPV6,
    }


def test_no_internet_with_a_proxy_a_mirror_on_the_host_and_a_port_range():
    settings = FenceSettings(
        hub_port=40000,
        hub_ports=(32768, 60999),
        internet=False,
        openings=(Opening.parse("10.0.0.5:3128"), Opening.parse("host:3142"), Opening.parse("10.1.0.0/16")),
    )
    fence = build_fence(settings, FACTS, nameservers=("10.0.0.2",))  # no DNS: no internet
    assert fence["iptables"] == FamilyRules(
        {
            "GPUHUB-IN-gpuhub": [
                f"-A GPUHUB-IN-gpuhub -m conntrack --ctstate RELATED,ESTABLISHED {C} -j ACCEPT",
                f"-A GPUHUB-IN-gpuhub -d 172.18.0.1/32 -p tcp -m tcp --dport 32768:60999 {C} -j ACCEPT",
                f"-A GPUHUB-IN-gpuhub -d 172.18.0.1/32 -p tcp -m tcp --dport 3142 {C} -j ACCEPT",
                f"-A GPUHUB-IN-gpuhub {C} -j {REJECT}",
            ],
            "GPUHUB-FWD-gpuhub": [
                f"-A GPUHUB-FWD-gpuhub -d 169.254.0.0/16 {C} -j {REJECT}",
                f"-A GPUHUB-FWD-gpuhub -o br-0123456789ab {C} -j {REJECT}",
                f"-A GPUHUB-FWD-gpuhub -d 10.0.0.5/32 -p tcp -m tcp --dport 3128 {C} -j RETURN",
                f"-A GPUHUB-FWD-gpuhub -d 10.1.0.0/16 {C} -j RETURN",
                f"-A GPUHUB-FWD-gpuhub {C} -j {REJECT}",
            ],
        },
        HOOKS,
    )
    assert fence["ip6tables"] == IPV6


def test_settings_from_environment_and_back_to_the_command():
    settings = FenceSettings.from_environ({
        "GPUHUB_NETWORK": "lab", "GPUHUB_HUB_PORT": "9000", "GPUHUB_FENCE_INTERNET": "deny",
        "GPUHUB_FENCE_ALLOW": "10.0.0.5:3128, 10.0.0.53:53/udp", "GPUHUB_FENCE_CHECK": "warn",
    })
    assert settings == FenceSettings(
        network="lab", hub_port=9000, internet=False, check="warn",
        openings=(Opening("10.0.0.5/32", 3128, "tcp"), Opening("10.0.0.53/32", 53, "udp")),
    )
    assert settings.command() == (
        "sudo gpuhub fence apply --network lab --hub-ports 9000 --internet deny "
        "--allow 10.0.0.5/32:3128 --allow 10.0.0.53/32:53/udp"
    )
    assert FenceSettings.from_environ({}) == FenceSettings()


@pytest.mark.parametrize("text, fragment", [
    ("169.254.169.254:80", "overlaps 169.254.0.0/16"),
    ("169.0.0.0/8", "overlaps 169.254.0.0/16"),
    ("host", "host needs a port"),
    ("10.0.0.5:99999", "not 1-65535"),
    ("proxy.example:3128", "use ADDRESS[/PREFIX][:PORT[/tcp|udp]]"),
    ("10.0.0.5:3128/sctp", "use ADDRESS"),
])
def test_bad_openings_say_what_is_allowed(text, fragment):
    with pytest.raises(FenceSettingError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        Opening.parse(text)


@pytest.mark.parametrize("env, fragment", [
    ({"GPUHUB_FENCE_INTERNET": "maybe"}, "use 'allow' \\(default\\) or 'deny'"),
    ({"GPUHUB_FENCE_CHECK": "ignore"}, "use 'refuse' \\(default\\) or 'warn'"),
    ({"GPUHUB_HUB_PORT": "80a"}, "use a port number"),
    ({"GPUHUB_FENCE_HUB_PORTS": "9000:8000"}, "one port \\(8081\\) or a range"),
    ({"GPUHUB_FENCE_HUB_PORTS": "9000:9100"}, "hub port 8081 is outside the fence's hub ports 9000:9100"),
    ({"GPUHUB_NETWORK": "my net"}, "letters, digits"),
])
def test_bad_settings_say_what_is_allowed(env, fragment):
    with pytest.raises(FenceSettingError, match=fragment):
        FenceSettings.from_environ(env)


def test_long_network_names_give_unique_short_chain_names():
    long_a, long_b = "a-very-long-network-name-one", "a-very-long-network-name-two"
    names = {chain_name(kind, n) for kind in ("IN", "FWD") for n in (long_a, long_b)}
    assert len(names) == 4 and all(len(n) <= 28 for n in names)
    assert chain_name("FWD", "gpuhub-test") == "GPUHUB-FWD-gpuhub-test"


def test_only_private_ipv4_nameservers_need_an_opening():
    texts = ["nameserver 127.0.0.53\nnameserver 192.168.1.1\n# nameserver 10.9.9.9\n",
             "nameserver 8.8.8.8\nnameserver fd00::1\nnameserver 192.168.1.1\nsearch lan"]
    assert private_nameservers(texts) == ("192.168.1.1",)


def _table_with(fence: FamilyRules, extra: str = "") -> dict:
    lines = ["-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-N DOCKER-USER", *[f"-N {c}" for c in fence.chains]]
    lines += ["-A FORWARD -j DOCKER-USER", *[hook for _, hook in fence.hooks]]
    lines += [rule for rules in fence.chains.values() for rule in rules]
    return parse_table("\n".join(lines + [extra]))


def test_restore_payload_from_nothing_then_nothing_to_do():
    fence = build_fence(FenceSettings(), FACTS)["ip6tables"]
    empty = parse_table("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-A INPUT -i lo -j ACCEPT\n")
    assert restore_payload(empty, "gpuhub", fence).splitlines() == [
        "*filter",
        ":DOCKER-USER - [0:0]",
        "-I FORWARD 1 -m comment --comment gpuhub-fence -j DOCKER-USER",
        ":GPUHUB-IN-gpuhub - [0:0]",
        *fence.chains["GPUHUB-IN-gpuhub"],
        ":GPUHUB-FWD-gpuhub - [0:0]",
        *fence.chains["GPUHUB-FWD-gpuhub"],
        f"-I INPUT 1 -i br-0123456789ab {C} -j GPUHUB-IN-gpuhub",
        f"-I DOCKER-USER 1 -i br-0123456789ab {C} -j GPUHUB-FWD-gpuhub",
        "COMMIT",
    ]
    assert table_problems(empty, "gpuhub", fence) == [
        "chain GPUHUB-IN-gpuhub is missing",
        "chain GPUHUB-FWD-gpuhub is missing",
        "INPUT does not send the network's bridge to the fence (hook missing or stale)",
        "chain DOCKER-USER is missing",
        "FORWARD does not jump to DOCKER-USER",
    ]
    in_place = _table_with(fence, "-A DOCKER-USER -i br-other -m comment --comment gpuhub-fence:gpuhub-test -j X")
    assert restore_payload(in_place, "gpuhub", fence) == ""
    assert table_problems(in_place, "gpuhub", fence) == []


def test_a_rule_ahead_of_the_fence_is_named_and_the_fence_moves_first():
    fence = build_fence(FenceSettings(), FACTS)["iptables"]
    in_place = _table_with(fence)
    permissive = "-A FORWARD -s 172.18.0.0/16 -d 172.18.0.0/16 -j ACCEPT"
    ours = "-A FORWARD -m comment --comment gpuhub-fence -j DOCKER-USER"
    # Docker's own jump, pushed down by a rule inserted above it: ours goes on top.
    pushed = {**in_place, "FORWARD": [permissive, *in_place["FORWARD"]]}
    assert table_problems(pushed, "gpuhub", fence) == [
        f"FORWARD: `{permissive}` comes before the jump to DOCKER-USER (what it accepts is never fenced)"
    ]
    assert restore_payload(pushed, "gpuhub", fence).splitlines() == [
        "*filter", ours.replace("-A FORWARD", "-I FORWARD 1"), "COMMIT"
    ]
    # Our own jump pushed down: moved, not doubled.
    ours_pushed = {**in_place, "FORWARD": [permissive, ours]}
    assert restore_payload(ours_pushed, "gpuhub", fence).splitlines() == [
        "*filter", ours.replace("-A FORWARD", "-D FORWARD"), ours.replace("-A FORWARD", "-I FORWARD 1"), "COMMIT"
    ]
    # An INPUT rule above our hook; other networks' fence hooks above it are fine.
    hook = normalize(dict(fence.hooks)["INPUT"])
    other = "-A INPUT -i br-other -m comment --comment gpuhub-fence:other -j GPUHUB-IN-other"
    assert table_problems({**in_place, "INPUT": [other, hook]}, "gpuhub", fence) == []
    accept = "-A INPUT -i br-0123456789ab -j ACCEPT"
    shadowed = {**in_place, "INPUT": [accept, hook]}
    assert table_problems(shadowed, "gpuhub", fence) == [
        f"INPUT: `{accept}` comes before the fence's hook (what it accepts is never fenced)"
    ]
    assert restore_payload(shadowed, "gpuhub", fence).splitlines() == [
        "*filter", hook.replace("-A INPUT", "-D INPUT"), dict(fence.hooks)["INPUT"].replace("-A INPUT", "-I INPUT 1"),
        "COMMIT",
    ]



def test_rules_above_the_fence_that_cannot_let_traffic_through_are_left_alone():
    """fail2ban inserts its jump at the top of INPUT after the fence: its chain only
    rejects and RETURNs, so the fence still decides; a chain that accepts does not."""
    fence = build_fence(FenceSettings(), FACTS)["iptables"]
    in_place = _table_with(fence)
    hook = normalize(dict(fence.hooks)["INPUT"])
    fail2ban = {
        **in_place,
        "INPUT": ["-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd", "-A INPUT -j LOG", hook],
        "f2b-sshd": ["-A f2b-sshd -s 192.0.2.7/32 -j REJECT --reject-with icmp-port-unreachable",
                     "-A f2b-sshd -j RETURN"],
        "FORWARD": ["-A FORWARD -m conntrack --ctstate INVALID -j DROP", *in_place["FORWARD"]],
    }
    assert table_problems(fail2ban, "gpuhub", fence) == []
    assert restore_payload(fail2ban, "gpuhub", fence) == ""
    allows = {**fail2ban, "f2b-sshd": ["-A f2b-sshd -s 192.0.2.8/32 -j ACCEPT", "-A f2b-sshd -j RETURN"]}
    assert table_problems(allows, "gpuhub", fence) == [
        "INPUT: `-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd` comes before the fence's hook "
        "(what it accepts is never fenced)"
    ]
    returns = {**in_place, "FORWARD": ["-A FORWARD -i br-0123456789ab -j RETURN", *in_place["FORWARD"]]}
    assert table_problems(returns, "gpuhub", fence) == [  # RETURN from FORWARD: its policy, ACCEPT
        "FORWARD: `-A FORWARD -i br-0123456789ab -j RETURN` comes before the jump to DOCKER-USER "
        "(what it accepts is never fenced)"
    ]


def test_a_recreated_network_replaces_the_stale_hook_and_keeps_others():
    old = build_fence(FenceSettings(), FACTS)["iptables"]
    new_facts = NetworkFacts(name="gpuhub", bridge="br-fedcba987654", gateway="172.18.0.1", icc=False)
    new = build_fence(FenceSettings(), new_facts)["iptables"]
    payload = restore_payload(_table_with(old), "gpuhub", new).splitlines()
    assert payload[0] == "*filter" and payload[-1] == "COMMIT"
    assert [line for line in payload if line.startswith(("-D", "-I"))] == [
        f"-D INPUT -i br-0123456789ab {C.replace(chr(34), '')} -j GPUHUB-IN-gpuhub",
        f"-I INPUT 1 -i br-fedcba987654 {C} -j GPUHUB-IN-gpuhub",
        f"-D DOCKER-USER -i br-0123456789ab {C.replace(chr(34), '')} -j GPUHUB-FWD-gpuhub",
        f"-I DOCKER-USER 1 -i br-fedcba987654 {C} -j GPUHUB-FWD-gpuhub",
    ]
    assert ":DOCKER-USER - [0:0]" not in payload  # Docker's own chain is never declared (emptied)


def test_network_facts_from_docker_inspect():
    attrs = {
        "Name": "gpuhub", "Id": "0123456789abcdef", "Driver": "bridge",
        "Options": {"com.docker.network.bridge.enable_icc": "false"},
        "IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"},
                            {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
    }
    assert facts_from_attrs(attrs) == FACTS
    assert facts_from_attrs({**attrs, "Options": {}}).icc is True  # Docker's default: ICC on
    named = {**attrs, "Options": {"com.docker.network.bridge.name": "gpuhub0"}}
    assert facts_from_attrs(named).bridge == "gpuhub0"
    with pytest.raises(NotFenced, match="not a bridge network"):
        facts_from_attrs({**attrs, "Driver": "overlay"})
