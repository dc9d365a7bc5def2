"""The network fence as data: settings in, iptables rules out (no I/O).

User containers sit on the hub's Docker bridge network. Packets they send to
any address of this host (the gateway, the LAN address, 127.x via the bridge)
go through the host's INPUT chain; packets they send elsewhere go through
FORWARD, where Docker calls ``DOCKER-USER`` first. The fence is one chain of
ours per direction, per network, per address family, hooked at the top of
INPUT and ``DOCKER-USER`` for packets arriving on the network's bridge:

- ``GPUHUB-IN-<network>``: replies to connections the host opened, the hub
  API (gateway, hub port), the ``host:PORT`` openings; everything else is
  rejected (sshd, exporters, a TCP dockerd, … on 0.0.0.0 or the gateway).
- ``GPUHUB-FWD-<network>``: 169.254.0.0/16 (cloud metadata) always rejected,
  container to container rejected (even where dockerd runs --iptables=false
  and cannot enforce ``enable_icc=false`` itself), then the admin's openings,
  DNS to the host's own resolvers, then either the private ranges rejected
  and the rest of the internet allowed, or everything rejected.

IPv6: the hub's network is IPv4-only, so the IPv6 chains reject everything
but replies (a container's link-local address must not reach the host's
``::``-bound services either).

Every rule carries the comment ``gpuhub-fence:<network>``, so a fence can be
found, compared, replaced and removed without touching anyone else's rules.
Rules are written the way ``iptables -S`` prints them, so a fence read back
from the kernel compares equal to the one built here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Mapping

TAG_PREFIX = "gpuhub-fence"
CHECK_MODES = ("refuse", "warn")
# Always rejected, even when listed as an opening: link-local, where clouds
# serve instance metadata and credentials (169.254.169.254).
LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
# Rejected when the internet is allowed: the host's LAN and its neighbours.
PRIVATE_RANGES = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
DEFAULT_HUB_PORT = 8081
# Docker: [a-zA-Z0-9][a-zA-Z0-9_.-]*; also what is safe in a comment and a chain name.
_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CHAIN_MAX = 28  # iptables' limit on chain names
# Our hook from FORWARD to DOCKER-USER, where dockerd (--iptables=false) made none.
DOCKER_USER_HOOK = f"-A FORWARD -m comment --comment {TAG_PREFIX} -j DOCKER-USER"


class FenceSettingError(ValueError):
    """A fence setting that cannot be used; the message says what is allowed."""


@dataclass(frozen=True)
class Opening:
    """One destination user containers may reach: ``host:3128``, ``10.0.0.5:3128``,
    ``10.1.0.0/16``, ``10.0.0.53:53/udp``. ``host`` means this host (its
    gateway address on the hub's network)."""

    destination: str  # "host" or a CIDR
    port: int | None = None
    protocol: str = "tcp"

    @classmethod
    def parse(cls, text: str) -> "Opening":
        raw = text.strip()
        hint = (
            f"opening {raw!r} not understood: use ADDRESS[/PREFIX][:PORT[/tcp|udp]] or "
            "host:PORT, e.g. 10.0.0.5:3128, 10.1.0.0/16, 10.0.0.53:53/udp, host:3128"
        )
        match = re.fullmatch(r"([^:]+?)(?::(\d+)(?:/(tcp|udp))?)?", raw)
        if not match:
            raise FenceSettingError(hint)
        address, port, protocol = match.groups()
        port = int(port) if port else None
        if port is not None and not 1 <= port <= 65535:
            raise FenceSettingError(f"{hint} (port {port} is not 1-65535)")
        if address == "host":
            if port is None:
                raise FenceSettingError(f"{hint} (host needs a port: the fence opens one port, never all)")
            return cls("host", port, protocol or "tcp")
        try:
            network = ipaddress.IPv4Network(address, strict=False)
        except ValueError:
            raise FenceSettingError(hint) from None
        if network.overlaps(LINK_LOCAL):
            raise FenceSettingError(
                f"opening {raw!r} overlaps {LINK_LOCAL} (link-local, cloud metadata): "
                "the fence never opens it"
            )
        return cls(str(network), port, protocol or "tcp")

    def match(self) -> str:
        """The destination/port part of a rule, in ``iptables -S`` order."""
        parts = [] if self.destination == "host" else [f"-d {self.destination}"]
        if self.port is not None:
            parts.append(f"-p {self.protocol} -m {self.protocol} --dport {self.port}")
        return " ".join(parts)


def parse_port_range(text: str) -> tuple[int, int]:
    """``"8081"`` or ``"32768:60999"`` (also ``-``) -> (low, high)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[:-]\s*(\d+)\s*)?", str(text))
    low, high = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (0, 0)
    if not (match and 1 <= low <= high <= 65535):
        raise FenceSettingError(
            f"hub ports {text!r} not understood: use one port (8081) or a range LOW:HIGH (32768:60999)"
        )
    return low, high


@dataclass(frozen=True)
class FenceSettings:
    """What the admin chooses; read by the hub at start and by ``gpuhub fence``."""

    network: str = "gpuhub"
    hub_port: int = DEFAULT_HUB_PORT
    hub_ports: tuple[int, int] | None = None  # None: just hub_port
    internet: bool = True
    openings: tuple[Opening, ...] = ()
    check: str = "refuse"

    def __post_init__(self):
        if not _NETWORK_NAME.match(self.network):
            raise FenceSettingError(
                f"network name {self.network!r}: use letters, digits, '_', '.', '-' (Docker's rule)"
            )
        if self.check not in CHECK_MODES:
            raise FenceSettingError(
                f"GPUHUB_FENCE_CHECK={self.check!r}: use 'refuse' (default) or 'warn'"
            )
        low, high = self.open_hub_ports
        if not low <= self.hub_port <= high:
            raise FenceSettingError(
                f"hub port {self.hub_port} is outside the fence's hub ports {low}:{high} "
                "(GPUHUB_FENCE_HUB_PORTS): containers could not reach the hub"
            )

    @property
    def open_hub_ports(self) -> tuple[int, int]:
        return self.hub_ports or (self.hub_port, self.hub_port)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> "FenceSettings":
        """The settings from environment variables (config/README.md lists them)."""
        internet = env.get("GPUHUB_FENCE_INTERNET", "allow").strip().lower()
        if internet not in ("allow", "deny"):
            raise FenceSettingError(
                f"GPUHUB_FENCE_INTERNET={internet!r}: use 'allow' (default) or 'deny'"
            )
        port_text = env.get("GPUHUB_HUB_PORT", str(DEFAULT_HUB_PORT))
        if not port_text.strip().isdigit():
            raise FenceSettingError(f"GPUHUB_HUB_PORT={port_text!r}: use a port number (8081)")
        ports = env.get("GPUHUB_FENCE_HUB_PORTS", "").strip()
        return cls(
            network=env.get("GPUHUB_NETWORK", "gpuhub"),
            hub_port=int(port_text),
            hub_ports=parse_port_range(ports) if ports else None,
            internet=internet == "allow",
            openings=tuple(
                Opening.parse(item) for item in env.get("GPUHUB_FENCE_ALLOW", "").split(",") if item.strip()
            ),
            check=env.get("GPUHUB_FENCE_CHECK", "refuse").strip().lower(),
        )

    def command(self, action: str = "apply") -> str:
        """The ``gpuhub fence`` command line that applies (or checks) these settings."""
        low, high = self.open_hub_ports
        parts = ["sudo gpuhub fence", action, "--network", self.network]
        parts += ["--hub-ports", f"{low}" if low == high else f"{low}:{high}"]
        if not self.internet:
            parts += ["--internet", "deny"]
        for opening in self.openings:
            parts += ["--allow", render_opening(opening)]
        return " ".join(parts)


def render_opening(opening: Opening) -> str:
    text = opening.destination
    if opening.port is not None:
        text += f":{opening.port}" + ("" if opening.protocol == "tcp" else f"/{opening.protocol}")
    return text


@dataclass(frozen=True)
class NetworkFacts:
    """What the fence needs to know about the Docker network."""

    name: str
    bridge: str  # the host-side interface, e.g. br-0123456789ab
    gateway: str  # IPv4 address of the host on the network
    icc: bool  # inter-container traffic allowed (com.docker.network.bridge.enable_icc)


@dataclass(frozen=True)
class FamilyRules:
    """One address family's fence: our chains and the hooks into others'.

    ``chains`` maps each of our chains to its rules as ``iptables -S CHAIN``
    prints them (without the ``-N`` line); ``hooks`` are (parent chain,
    rule) pairs, the rule as ``iptables -S PARENT`` prints it, each inserted
    at the top of its parent.
    """

    chains: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[tuple[str, str]] = field(default_factory=list)


def tag(network: str) -> str:
    return f"{TAG_PREFIX}:{network}"


def comment(network: str) -> str:
    return f'-m comment --comment "{tag(network)}"'


def chain_name(kind: str, network: str) -> str:
    """``GPUHUB-IN-<network>``; long names are cut and made unique by a hash."""
    name = f"GPUHUB-{kind}-{network}"
    if len(name) <= _CHAIN_MAX:
        return name
    digest = hashlib.sha256(network.encode()).hexdigest()[:8]
    keep = _CHAIN_MAX - len(f"GPUHUB-{kind}--") - len(digest)
    return f"GPUHUB-{kind}-{network[:keep]}-{digest}"


def build_fence(
    settings: FenceSettings, facts: NetworkFacts, nameservers: tuple[str, ...] = ()
) -> dict[str, FamilyRules]:
    """The whole fence for one network: ``{"iptables": …, "ip6tables": …}``.

    ``nameservers``: the host's own resolvers (dockerd's embedded DNS sends
    the containers' queries to them from the container's address, so a
    resolver on the LAN must be let through when the internet is allowed).
    """
    net, bridge, note = facts.name, facts.bridge, comment(facts.name)
    inbound, forward = chain_name("IN", net), chain_name("FWD", net)

    def rule(chain: str, match: str, target: str) -> str:
        return " ".join(part for part in (f"-A {chain}", match, note, f"-j {target}") if part)

    replies = "-m conntrack --ctstate RELATED,ESTABLISHED"
    reject4, reject6 = "REJECT --reject-with icmp-port-unreachable", "REJECT --reject-with icmp6-port-unreachable"

    low, high = settings.open_hub_ports
    hub_ports = f"{low}" if low == high else f"{low}:{high}"
    gateway = f"-d {facts.gateway}/32"
    in4 = [
        rule(inbound, replies, "ACCEPT"),
        rule(inbound, f"{gateway} -p tcp -m tcp --dport {hub_ports}", "ACCEPT"),
    ]
    in4 += [
        rule(inbound, f"{gateway} {opening.match()}", "ACCEPT")
        for opening in settings.openings
        if opening.destination == "host"
    ]
    in4.append(rule(inbound, "", reject4))

    fwd4 = [
        rule(forward, f"-d {LINK_LOCAL}", reject4),
        rule(forward, f"-o {bridge}", reject4),  # container to container
    ]
    fwd4 += [
        rule(forward, opening.match(), "RETURN")
        for opening in settings.openings
        if opening.destination != "host"
    ]
    if settings.internet:
        for server in nameservers:
            for protocol in ("udp", "tcp"):
                fwd4.append(rule(forward, f"-d {server}/32 -p {protocol} -m {protocol} --dport 53", "RETURN"))
        fwd4 += [rule(forward, f"-d {cidr}", reject4) for cidr in PRIVATE_RANGES]
    else:
        fwd4.append(rule(forward, "", reject4))

    def hooks() -> list[tuple[str, str]]:
        return [
            ("INPUT", f"-A INPUT -i {bridge} {note} -j {inbound}"),
            ("DOCKER-USER", f"-A DOCKER-USER -i {bridge} {note} -j {forward}"),
        ]

    return {
        "iptables": FamilyRules({inbound: in4, forward: fwd4}, hooks()),
        "ip6tables": FamilyRules(
            {
                inbound: [rule(inbound, replies, "ACCEPT"), rule(inbound, "", reject6)],
                forward: [rule(forward, "", reject6)],
            },
            hooks(),
        ),
    }


def private_nameservers(resolv_conf_texts: list[str]) -> tuple[str, ...]:
    """IPv4 resolvers from resolv.conf texts that the private-range rules would
    block (public ones pass anyway; loopback ones are asked from the host)."""
    found: list[str] = []
    for text in resolv_conf_texts:
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                try:
                    address = ipaddress.IPv4Address(words[1])
                except ValueError:
                    continue
                private = any(address in cidr for cidr in PRIVATE_RANGES)
                if private and str(address) not in found:
                    found.append(str(address))
    return tuple(found)


def normalize(rule: str) -> str:
    """A rule as compared: quotes and repeated blanks do not matter (legacy and
    nft backends quote comments differently)."""
    return " ".join(rule.replace('"', "").split())


# ---- comparing with the kernel's table --------------------------------------
Table = dict  # {chain: [its rules, normalized]}, as parse_table returns


def parse_table(text: str) -> Table:
    """``iptables -S`` output as ``{chain: [rules]}`` (every chain, even empty).

    The whole table at once: iptables-nft 1.8 answers ``-S CHAIN`` for a
    missing chain with "incompatible", not "no such chain".
    """
    table: Table = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("-P", "-N"):
            table.setdefault(words[1], [])
        elif len(words) >= 2 and words[0] == "-A":
            table.setdefault(words[1], []).append(normalize(line))
    return table


def hooks_of(network: str, lines: list[str]) -> list[str]:
    """The rules among ``lines`` tagged for ``network``."""
    return [line for line in lines if f"--comment {tag(network)} " in normalize(line) + " "]


# Targets that never let a packet through: a rule with one of them (or none, a
# counter) above the fence cannot take traffic past it.
_STOPS_OR_GOES_ON = ("DROP", "REJECT", "LOG", "NFLOG", "")


def _target(rule: str) -> str:
    words = rule.split()
    for flag in ("-j", "-g"):
        if flag in words[:-1]:
            return words[words.index(flag) + 1]
    return ""


def _may_accept(rule: str, table: Table) -> bool:
    """Whether traffic ``rule`` matches may be let through by it before the fence:
    not when it drops, rejects, logs or only counts; not when it jumps to a chain
    that does only that and RETURNs (fail2ban's and sshguard's); not one of the
    fence's own hooks (other networks' bridges). Anything else may (ACCEPT, RETURN
    to the policy, a chain that accepts, a goto, a queue to a program)."""
    if f"--comment {TAG_PREFIX}" in rule:
        return False
    target = _target(rule)
    if target in _STOPS_OR_GOES_ON:
        return False
    if "-j" in rule.split() and target in table:
        return any(_target(inner) not in (*_STOPS_OR_GOES_ON, "RETURN") for inner in table[target])
    return True


def _ahead_of(lines: list[str], position: int, table: Table) -> str | None:
    """The first rule above ``position`` that may let traffic past the fence."""
    return next((line for line in lines[:position] if _may_accept(line, table)), None)


def _hook_unfenced(table: Table, network: str, parent: str, hook: str) -> str | None:
    """Why ``parent`` does not send the network's bridge to the fence first (its
    hook missing, stale, or below a rule that may accept); None when it does."""
    present = hooks_of(network, table.get(parent, []))
    if present != [normalize(hook)]:
        return f"{parent} does not send the network's bridge to the fence (hook missing or stale)"
    if ahead := _ahead_of(table[parent], table[parent].index(present[0]), table):
        return f"{parent}: `{ahead}` comes before the fence's hook (what it accepts is never fenced)"
    return None


def _forward_unfenced(table: Table) -> str | None:
    """Why FORWARD may let traffic past DOCKER-USER (where the fence is): no jump
    to it, or a rule above the first that may accept; None when it cannot."""
    forward = table.get("FORWARD", [])
    jumps = [i for i, line in enumerate(forward) if line.endswith("-j DOCKER-USER")]
    if not jumps:
        return "FORWARD does not jump to DOCKER-USER"
    if ahead := _ahead_of(forward, jumps[0], table):
        return f"FORWARD: `{ahead}` comes before the jump to DOCKER-USER (what it accepts is never fenced)"
    return None


def table_problems(table: Table, network: str, wanted: FamilyRules) -> list[str]:
    """What in ``table`` differs from the fence ``wanted``, as sentences."""
    problems = []
    for chain, rules in wanted.chains.items():
        if chain not in table:
            problems.append(f"chain {chain} is missing")
        elif table[chain] != [normalize(rule) for rule in rules]:
            problems.append(f"chain {chain} differs from the fence for these settings")
    for parent, hook in wanted.hooks:
        if parent not in table:
            problems.append(f"chain {parent} is missing")
        elif unfenced := _hook_unfenced(table, network, parent, hook):
            problems.append(unfenced)
    if unfenced := _forward_unfenced(table):
        problems.append(unfenced)
    return problems


def restore_payload(table: Table, network: str, wanted: FamilyRules) -> str:
    """The ``iptables-restore --noflush`` transaction that turns ``table`` into
    one holding the fence ``wanted``; "" when it already does (so applying
    twice changes nothing). Only our chains are declared (which empties
    them); others' chains only get our tagged hooks inserted or deleted."""
    lines = []
    if "DOCKER-USER" not in table:
        lines.append(":DOCKER-USER - [0:0]")
    if _forward_unfenced(table):
        if normalize(DOCKER_USER_HOOK) in table.get("FORWARD", []):
            lines.append(DOCKER_USER_HOOK.replace("-A FORWARD", "-D FORWARD", 1))
        lines.append(DOCKER_USER_HOOK.replace("-A FORWARD", "-I FORWARD 1", 1))
    for chain, rules in wanted.chains.items():
        if table.get(chain) != [normalize(rule) for rule in rules]:
            lines.append(f":{chain} - [0:0]")
            lines += rules
    for parent, hook in wanted.hooks:
        if _hook_unfenced(table, network, parent, hook):
            present = hooks_of(network, table.get(parent, []))
            lines += [line.replace(f"-A {parent}", f"-D {parent}", 1) for line in present]
            lines.append(hook.replace(f"-A {parent}", f"-I {parent} 1", 1))
    return "\n".join(["*filter", *lines, "COMMIT", ""]) if lines else ""
