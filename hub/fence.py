"""Apply, check and remove the network fence on this host (I/O: iptables, Docker).

The rules themselves come from ``fence_rules.build_fence`` (pure). Here:

- ``apply_fence``: make the kernel's rules equal the built ones, in one
  ``iptables-restore --noflush`` transaction per address family, touching
  only our chains (``GPUHUB-IN/FWD-<network>``) and our tagged hooks; when
  nothing differs it changes nothing. Creates ``DOCKER-USER`` (and its hook
  from FORWARD, tagged ``gpuhub-fence``) where dockerd runs --iptables=false.
- ``fence_problems``: what differs, as sentences (empty: fenced).
- ``remove_fence``: our hooks and chains for one network, nothing else.
- ``verify_fence``: the hub's start-up check (refuse or warn).

Not persistent: rules live until reboot or a firewall reload; run
``gpuhub fence apply`` at boot (``make up`` does, through
config/host/ensure-docker.sh; the Ansible role is to install it as a unit).
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

import docker

from gpuhub.hub.fence_rules import (
    DOCKER_USER_HOOK,
    FenceSettings,
    NetworkFacts,
    build_fence,
    chain_name,
    hooks_of,
    normalize,
    parse_table,
    private_nameservers,
    restore_payload,
    table_problems,
)

RESOLV_CONF_FILES = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf")
LOCK_FILE = "/run/lock/gpuhub-fence.lock"


class FenceUnreadable(RuntimeError):
    """iptables cannot be run or read here (not root, not installed)."""


class NotFenced(SystemExit):
    """The hub refuses to start. A SystemExit so that the config file stops
    the hub with this message instead of a traceback."""


# ---- Docker ---------------------------------------------------------------
def facts_from_attrs(attrs: dict) -> NetworkFacts:
    """NetworkFacts from ``docker network inspect`` output."""
    name, options = attrs["Name"], attrs.get("Options") or {}
    gateways = [
        c["Gateway"] for c in (attrs.get("IPAM") or {}).get("Config") or []
        if c.get("Gateway") and ":" not in c["Gateway"]
    ]
    if attrs.get("Driver") != "bridge" or not gateways:
        raise NotFenced(
            f"gpuhub: Docker network {name!r} is not a bridge network with an IPv4 gateway; "
            f"remove it (docker network rm {name}) and let gpuhub create it."
        )
    return NetworkFacts(
        name=name,
        bridge=options.get("com.docker.network.bridge.name") or f"br-{attrs['Id'][:12]}",
        gateway=gateways[0],
        icc=options.get("com.docker.network.bridge.enable_icc", "true").lower() != "false",
    )


def network_facts(name: str, client: docker.DockerClient | None = None) -> NetworkFacts:
    client = client or docker.from_env()
    try:
        return facts_from_attrs(client.networks.get(name).attrs)
    except docker.errors.NotFound:
        raise NotFenced(
            f"gpuhub: Docker network {name!r} does not exist: `gpuhub fence apply` creates it"
        ) from None


def read_nameservers(files=RESOLV_CONF_FILES) -> tuple[str, ...]:
    texts = [Path(f).read_text(errors="replace") for f in files if Path(f).is_file()]
    return private_nameservers(texts)


# ---- iptables -------------------------------------------------------------
def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as error:
        raise FenceUnreadable(f"{argv[0]} is not installed ({error})") from None


def read_table(binary: str) -> dict[str, list[str]]:
    """The filter table, parsed (``fence_rules.parse_table``)."""
    result = _run([binary, "-w", "-S"])
    if result.returncode != 0:
        raise FenceUnreadable(f"`{binary} -S` failed: {result.stderr.strip() or result.returncode}")
    return parse_table(result.stdout)


def families() -> list[str]:
    """The address families this host can filter (ip6tables is optional)."""
    found = [binary for binary in ("iptables", "ip6tables") if shutil.which(binary)]
    if "iptables" not in found:
        raise FenceUnreadable("iptables is not installed (Debian/Ubuntu: apt-get install iptables)")
    if "ip6tables" in found and _run(["ip6tables", "-w", "-S", "INPUT"]).returncode != 0:
        found.remove("ip6tables")  # IPv6 off in this kernel: nothing to fence
    return found


def fence_problems(settings: FenceSettings, facts: NetworkFacts, nameservers=None) -> list[str]:
    """What keeps the network from being fenced as ``settings`` say; [] when fenced."""
    problems = []
    if facts.icc:
        problems.append(f"network {facts.name} allows traffic between containers (enable_icc is not \"false\")")
    fence = build_fence(settings, facts, read_nameservers() if nameservers is None else nameservers)
    for binary in families():
        problems += [f"{binary}: {p}" for p in table_problems(read_table(binary), facts.name, fence[binary])]
    return problems


@contextlib.contextmanager
def _locked():
    """One fence change at a time on this host (test sessions run side by side)."""
    path = Path(LOCK_FILE if Path(LOCK_FILE).parent.is_dir() else "/tmp/gpuhub-fence.lock")
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def apply_fence(settings: FenceSettings, facts: NetworkFacts, nameservers=None) -> list[str]:
    """Make the fence for ``facts.name`` equal the built one; return what changed."""
    fence = build_fence(settings, facts, read_nameservers() if nameservers is None else nameservers)
    changed = []
    with _locked():
        for binary in families():
            payload = restore_payload(read_table(binary), facts.name, fence[binary])
            if not payload:
                continue
            result = _run([f"{binary}-restore", "-w", "--noflush"], stdin=payload)
            if result.returncode != 0:
                raise FenceUnreadable(f"{binary}-restore refused the fence: {result.stderr.strip()}\n{payload}")
            changed.append(f"{binary}: fence for {facts.name} on {facts.bridge} written")
    return changed


def remove_fence(network: str) -> list[str]:
    """Remove our hooks and chains for ``network`` (and DOCKER-USER if we made it
    and it is now empty). Nobody else's rules are touched."""
    removed = []
    with _locked():
        for binary in families():
            table = read_table(binary)
            for parent in ("INPUT", "DOCKER-USER"):
                for line in hooks_of(network, table.get(parent, [])):
                    _iptables(binary, "-D", parent, *_split(line)[2:])
                    table[parent].remove(line)
                    removed.append(f"{binary}: hook in {parent}")
            for kind in ("IN", "FWD"):
                chain = chain_name(kind, network)
                if chain in table:
                    _iptables(binary, "-F", chain)
                    _iptables(binary, "-X", chain)
                    removed.append(f"{binary}: chain {chain}")
            if table.get("DOCKER-USER") == [] and normalize(DOCKER_USER_HOOK) in table.get("FORWARD", []):
                _iptables(binary, "-D", "FORWARD", *_split(DOCKER_USER_HOOK)[2:])
                _iptables(binary, "-X", "DOCKER-USER")
                removed.append(f"{binary}: DOCKER-USER (made by gpuhub, now empty)")
    return removed


def _iptables(binary: str, *args: str) -> None:
    result = _run([binary, "-w", *args])
    if result.returncode != 0:
        raise FenceUnreadable(f"`{binary} {' '.join(args)}` failed: {result.stderr.strip()}")


def _split(rule: str) -> list[str]:
    # Our rules hold no quoted blanks (tags are one word), so a split is exact.
    return normalize(rule).split()


# ---- the hub's start-up check ---------------------------------------------
def verify_fence(settings: FenceSettings, facts: NetworkFacts, out=sys.stderr) -> None:
    """Refuse to start (or warn, with ``GPUHUB_FENCE_CHECK=warn``) unless fenced."""
    try:
        problems = fence_problems(settings, facts)
        headline = (
            f"the hub's Docker network {facts.name!r} is not fenced: user containers "
            "could reach this host's ports and 169.254.169.254."
        )
    except FenceUnreadable as error:
        problems = [str(error)]
        headline = f"cannot check the fence of the hub's Docker network {facts.name!r}:"
    if not problems:
        return
    message = (
        f"gpuhub: {headline}\n"
        + "".join(f"  - {p}\n" for p in problems)
        + f"Fix: run `{settings.command('apply')}` (as root), then start the hub again.\n"
        "Where the hub cannot read iptables (not root), set GPUHUB_FENCE_CHECK=warn and "
        f"check by hand: `{settings.command('check')}`."
    )
    if settings.check == "warn":
        print(f"WARNING: {message}", file=out)
        return
    raise NotFenced(message)
