#!/usr/bin/env bash
# Private Docker engine for gpuhub tests.
#
#   tests/rig/engine.sh start    start the private dockerd (installs docker.io if root on Debian/Ubuntu)
#   tests/rig/engine.sh stop     stop it (data root is kept, so images stay cached)
#   tests/rig/engine.sh status   say whether it runs; exit 0 if it answers, 3 if not, 4 if no access
#   tests/rig/engine.sh env      print `export DOCKER_HOST=...` (use: eval "$(tests/rig/engine.sh env)")
#
# The engine has its own socket, data root, exec root (and so its own containerd),
# pidfile, log, config file (not /etc/docker/daemon.json) and bridge. dockerd runs
# with --iptables=false/--ip-masq=false/--ip-forward=false, so it never fights a
# system dockerd over its iptables chains or docker0; the only host change besides
# the bridge is one tagged FORWARD ACCEPT rule for 172.31.0.0/16 (see below),
# removed again by `stop`. Containers get no route to the outside world (the tests
# don't need one); host <-> container traffic works on every network.
# It starts with $REPO/tests/fakes/bin first on PATH: the fake
# nvidia-container-runtime-hook there makes dockerd register its "nvidia" device
# driver, so containers asking for GPUs (DeviceRequests driver=nvidia) start and
# get NVIDIA_VISIBLE_DEVICES=<ids> in their environment.
#
# Everything below can be overridden from the environment (GPUHUB_TEST_*).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

RUN_DIR="${GPUHUB_TEST_RUN_DIR:-/run/gpuhub-test}"
DATA_ROOT="${GPUHUB_TEST_DATA_ROOT:-/var/lib/gpuhub-test/docker}"
LOG_FILE="${GPUHUB_TEST_DOCKERD_LOG:-/var/log/gpuhub-test-dockerd.log}"
SOCK="$RUN_DIR/docker.sock"
EXEC_ROOT="$RUN_DIR/exec"
PIDFILE="$RUN_DIR/docker.pid"
CONFIG_FILE="$RUN_DIR/daemon.json"
DOCKER_HOST_URL="unix://$SOCK"
# Own bridge for the default "bridge" network (the system dockerd owns docker0).
BRIDGE="${GPUHUB_TEST_BRIDGE:-gpuhub-test0}"
BRIDGE_CIDR="${GPUHUB_TEST_BRIDGE_CIDR-172.31.240.1/24}"
# All private-engine networks live in this range: the default bridge above,
# networks created without --subnet (the pool, /24 each, away from the system
# dockerd's usual 172.17-172.30 picks), and the tests' 172.31.250.0/24.
TEST_CIDR="${GPUHUB_TEST_CIDR:-172.31.0.0/16}"
ADDR_POOL="base=$TEST_CIDR,size=24"
FWD_RULE=(FORWARD -s "$TEST_CIDR" -d "$TEST_CIDR" -m comment --comment gpuhub-test-engine -j ACCEPT)
# false: leave the host's net.ipv4.ip_forward alone (dockerd would set it to 1).
# Host<->container and container<->container on one network are bridged, not routed,
# so they work without it; the cost is a "WARNING: IPv4 forwarding is disabled" from
# `docker run` on hosts where it is 0, and no routing between networks/to outside.
IP_FORWARD="${GPUHUB_TEST_IP_FORWARD:-false}"
FAKE_BIN="$REPO/tests/fakes/bin"
HOOK="$FAKE_BIN/nvidia-container-runtime-hook"
START_TIMEOUT="${GPUHUB_TEST_START_TIMEOUT:-30}"

log() { echo "engine.sh: $*" >&2; }
die() { echo "engine.sh: ERROR: $*" >&2; exit 1; }

# Run the docker CLI (or fall back to curl) against the private socket only.
engine_answers() {
    [ -S "$SOCK" ] || return 1
    if command -v docker >/dev/null 2>&1; then
        DOCKER_HOST="$DOCKER_HOST_URL" DOCKER_CONTEXT='' timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
    elif command -v curl >/dev/null 2>&1; then
        timeout 5 curl -fsS --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
    else
        return 1
    fi
}

daemon_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    # Make sure the pid really is our dockerd and not a recycled pid.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--pidfile=$PIDFILE" || return 1
    echo "$pid"
}

ensure_dockerd() {
    # Step: make sure dockerd (and the tools it needs) are installed: the same
    # step `make up` uses for the host's own engine.
    "$REPO/config/host/ensure-docker.sh" install
}

ensure_fake_hook() {
    # Step: the fake NVIDIA hook (tests/fakes/bin) must be there for dockerd to
    # register its "nvidia" device driver.
    [ -x "$HOOK" ] || die "$HOOK is missing or not executable (git checkout tests/fakes/bin)"
}

ensure_bridge() {
    # Step: create our own bridge for the default network (the system dockerd owns docker0).
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        log "creating bridge $BRIDGE ($BRIDGE_CIDR)"
        ip link add name "$BRIDGE" type bridge
    fi
    # An empty GPUHUB_TEST_BRIDGE_CIDR makes an engine whose default network reports no
    # gateway (only a Subnet, as Debian's docker.io 20.10 does on some hosts): with no
    # address on the bridge and no saved network state, dockerd picks the subnet itself
    # and records no gateway. tests/images/conftest.py (NoGatewayEngine) uses it.
    if [ -z "$BRIDGE_CIDR" ]; then
        ip -4 addr flush dev "$BRIDGE"  # the address the previous dockerd gave it
        rm -f "$DATA_ROOT/network/files/local-kv.db"  # its saved networks (images are kept)
    elif ! ip -4 addr show dev "$BRIDGE" | grep -q "inet ${BRIDGE_CIDR%%/*}/"; then
        ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
}

ensure_forward_rule() {
    # Step: allow container<->container traffic inside $TEST_CIDR. dockerd runs with
    # --iptables=false, and on hosts where a system dockerd set the FORWARD policy to
    # DROP, br_netfilter would otherwise drop traffic between containers on our bridges.
    # Appended, after the jump to DOCKER-USER: the fence decides first.
    command -v iptables >/dev/null 2>&1 || { log "iptables not found; not adding the FORWARD rule (container<->container traffic may be dropped if FORWARD policy is DROP)"; return 0; }
    iptables -w -C "${FWD_RULE[@]}" 2>/dev/null && return 0
    iptables -w -A "${FWD_RULE[@]}" 2>/dev/null \
        || log "WARNING: could not add iptables rule '${FWD_RULE[*]}'; container<->container traffic may be dropped if FORWARD policy is DROP"
}

clear_stale_containerd() {
    # Step: a dockerd that died hard (e.g. the session that started it ended) can
    # leave its containerd running, or a pid file naming a recycled pid; the new
    # dockerd would then wait for a containerd that never answers.
    local pidfile="$EXEC_ROOT/containerd/containerd.pid" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$EXEC_ROOT"; then
        log "stopping leftover containerd (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do [ -d "/proc/$pid" ] || break; sleep 0.5; done
    fi
    rm -f "$pidfile"
}

hook_gone() {
    # The running dockerd finds the fake hook on the PATH it was started with; a
    # checkout removed since (a deleted git worktree) leaves it none, and every
    # GPU spawn then fails with "nvidia-container-runtime-hook not found".
    local pid dir dirs
    pid="$(daemon_pid)" || return 1
    IFS=: read -ra dirs <<<"$(tr '\0' '\n' <"/proc/$pid/environ" | sed -n 's/^PATH=//p')"
    for dir in "${dirs[@]}"; do
        [ -x "$dir/nvidia-container-runtime-hook" ] && return 1
    done
    return 0
}

cmd_start() {
    if engine_answers && [ "$(id -u)" -eq 0 ] && hook_gone; then
        log "the running dockerd no longer finds its fake NVIDIA hook (started from a removed checkout?): restarting it with $HOOK"
        cmd_stop
    fi
    if engine_answers; then
        # Re-adding the FORWARD rule is idempotent (a firewall reload may have dropped it).
        [ "$(id -u)" -ne 0 ] || ensure_forward_rule
        log "private engine already running at $DOCKER_HOST_URL"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "starting the private dockerd needs root (you are uid $(id -u)); rerun with sudo"
    ensure_dockerd
    export PATH="$PATH:/usr/sbin:/sbin"
    ensure_fake_hook

    if pid="$(daemon_pid)"; then
        # Started but not answering yet (e.g. a concurrent start): just wait below.
        log "dockerd (pid $pid) is starting; waiting for it"
    else
        ensure_bridge
        ensure_forward_rule
        # Step: prepare private directories and an empty config (ignore /etc/docker/daemon.json).
        mkdir -p "$RUN_DIR" "$EXEC_ROOT" "$DATA_ROOT" "$(dirname "$LOG_FILE")"
        [ -f "$CONFIG_FILE" ] || echo '{}' >"$CONFIG_FILE"
        rm -f "$PIDFILE" "$SOCK"
        clear_stale_containerd

        log "starting dockerd on $DOCKER_HOST_URL (data root $DATA_ROOT, log $LOG_FILE)"
        # setsid: own session, so the daemon survives the caller's shell/job control.
        # PATH: fake bin first, so dockerd's nvidia driver finds the fake hook.
        PATH="$FAKE_BIN:$PATH" setsid dockerd \
            --host="$DOCKER_HOST_URL" \
            --data-root="$DATA_ROOT" \
            --exec-root="$EXEC_ROOT" \
            --pidfile="$PIDFILE" \
            --config-file="$CONFIG_FILE" \
            --bridge="$BRIDGE" \
            --iptables=false \
            --ip-masq=false \
            --ip-forward="$IP_FORWARD" \
            --ip6tables=false \
            --ipv6=false \
            --default-address-pool="$ADDR_POOL" \
            --userland-proxy=true \
            --log-driver=json-file \
            --log-opt=max-size=10m \
            </dev/null >>"$LOG_FILE" 2>&1 &
        disown || true
    fi

    # Step: wait (bounded) until the engine answers.
    local i
    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        if engine_answers; then
            log "private engine is up ($(DOCKER_HOST="$DOCKER_HOST_URL" docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null || echo ok))"
            return 0
        fi
        sleep 0.5
    done
    echo "engine.sh: ERROR: private dockerd did not answer on $SOCK within ${START_TIMEOUT}s. Last lines of $LOG_FILE:" >&2
    tail -n 40 "$LOG_FILE" >&2 || true
    exit 1
}

cmd_stop() {
    local pid
    if ! pid="$(daemon_pid)"; then
        log "private engine is not running"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "stopping the private dockerd (pid $pid) needs root (you are uid $(id -u)); rerun with sudo"
    log "stopping dockerd (pid $pid); data in $DATA_ROOT is kept"
    if command -v iptables >/dev/null 2>&1; then
        while iptables -w -D "${FWD_RULE[@]}" 2>/dev/null; do :; done
    fi
    kill -TERM "$pid"
    local i
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || { log "stopped"; return 0; }
        sleep 0.5
    done
    log "dockerd (pid $pid) did not stop within 30s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_status() {
    local pid
    if engine_answers; then
        pid="$(daemon_pid || echo '?')"
        echo "running: pid $pid, $DOCKER_HOST_URL, data root $DATA_ROOT, log $LOG_FILE"
        return 0
    elif pid="$(daemon_pid)"; then
        if [ -S "$SOCK" ] && { [ ! -r "$SOCK" ] || [ ! -w "$SOCK" ]; }; then
            echo "running: pid $pid, but $SOCK is not accessible to uid $(id -u) (use root or the socket's group: $(stat -c %G "$SOCK"))"
            return 4
        fi
        echo "starting or hung: pid $pid does not answer on $DOCKER_HOST_URL (see $LOG_FILE)"
        return 3
    fi
    echo "stopped"
    return 3
}

cmd_env() {
    echo "export DOCKER_HOST=$DOCKER_HOST_URL"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
