#!/usr/bin/env bash
# Make sure this host has a running Docker Engine, for `make up`.
#
#   config/host/ensure-docker.sh          install if missing, start if not running, fence the hub's network
#   config/host/ensure-docker.sh install  install only (also used by tests/rig/engine.sh)
#   config/host/ensure-docker.sh fence    fence the hub's network only (gpuhub fence apply)
#
# Installs Debian/Ubuntu's docker.io when run as root there; anywhere else it
# says exactly what is missing. Warns when GPUs exist but Docker cannot pass
# them to containers (NVIDIA Container Toolkit missing).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { echo "ensure-docker: $*" >&2; }
die() { echo "ensure-docker: ERROR: $*" >&2; exit 1; }

is_debian_like() {
    [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release
}

install_engine() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(dockerd)
    command -v docker >/dev/null 2>&1 || missing+=(docker)
    command -v ip >/dev/null 2>&1 || missing+=(ip)
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && is_debian_like && command -v apt-get >/dev/null 2>&1; then
        log "installing docker.io and iproute2 from the distribution (missing: ${missing[*]})"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io iproute2 >/dev/null
        hash -r
        command -v dockerd >/dev/null 2>&1 || die "apt-get installed docker.io but dockerd is not on PATH"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "missing: ${missing[*]}. Install Docker Engine (Debian/Ubuntu: sudo apt-get install docker.io iproute2), or rerun as root."
    die "missing: ${missing[*]}, and this is not Debian/Ubuntu with apt-get: install Docker Engine (dockerd, docker CLI, containerd, runc) and iproute2."
}

start_engine() {
    docker info >/dev/null 2>&1 && return 0
    [ "$(id -u)" -eq 0 ] || die "Docker Engine is installed but not answering; start it (sudo systemctl start docker) or rerun as root."
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        log "starting docker.service"
        systemctl start docker
    else
        log "no systemd: starting dockerd in the background (log: /var/log/dockerd.log)"
        nohup dockerd >/var/log/dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 30); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "dockerd did not answer within 30 s; see /var/log/dockerd.log or journalctl -u docker"
}

warn_about_gpus() {
    if command -v nvidia-smi >/dev/null 2>&1 && ! command -v nvidia-container-runtime-hook >/dev/null 2>&1; then
        log "WARNING: this host has NVIDIA GPUs but no NVIDIA Container Toolkit: servers asking for"
        log "GPUs will fail to start until it is installed (nvidia-container-toolkit) and dockerd restarted."
    fi
}

ensure_fence() {
    # Step: fence the hub's network (hub/README.md, "The network fence"): user
    # containers reach the hub API, not this host's other ports nor 169.254.169.254.
    # Same settings as the hub (GPUHUB_NETWORK, GPUHUB_HUB_PORT, GPUHUB_FENCE_*).
    # iptables rules do not survive a reboot: `make up` applies them every time;
    # a host without `make up` needs it at boot (the Ansible role's job).
    local gpuhub="${GPUHUB_CLI:-$REPO/.venv/bin/gpuhub}"
    if [ ! -x "$gpuhub" ]; then
        log "WARNING: $gpuhub not found (make .venv/.installed): the hub's network is not fenced and the hub will refuse to start"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "WARNING: not root: not fencing the hub's network. Run: sudo $gpuhub fence apply"
        log "(the hub refuses to start without it, unless GPUHUB_FENCE_CHECK=warn)"
        return 0
    fi
    "$gpuhub" fence apply
}

case "${1:-}" in
    install) install_engine ;;
    fence) ensure_fence ;;
    "") install_engine; start_engine; warn_about_gpus; log "Docker Engine is running"; ensure_fence ;;
    *) die "usage: $0 [install|fence]" ;;
esac
