#!/usr/bin/env bash
# Build gpuhub/debian-base:bookworm without any container registry:
# debootstrap a minimal Debian rootfs from the host's Debian mirror, strip it,
# and `docker import` it into the engine DOCKER_HOST points at.
#
#   images/base/build.sh            build (skips if the image with this recipe exists)
#   FORCE=1 images/base/build.sh    re-import even if the image exists (rootfs cache is still used)
#   NO_CACHE=1 ...                  also ignore the cached rootfs tarball
#
# Environment: IMAGE (default gpuhub/debian-base:bookworm), SUITE (bookworm),
# DEBIAN_MIRROR (default: read from /etc/apt/sources.list*), BASE_PACKAGES
# (extra packages, space separated), BASE_CACHE_DIR (rootfs tarball cache, default
# .cache/base; give another image with other packages its own, as only the current
# tarball is kept there), DOCKER_HOST (target engine).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUITE="${SUITE:-bookworm}"
IMAGE="${IMAGE:-gpuhub/debian-base:$SUITE}"
ARCH="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
# What a notebook image needs, and nothing else:
#   python3 python3-venv  the interpreter + venv/ensurepip (pip lives in the venv, not in apt)
#   tini                  PID 1 that reaps zombies and forwards signals
#   ca-certificates       TLS to the hub / PyPI from derived images
#   tzdata                timezones (python zoneinfo, TZ=...)
#   locales is skipped: the image sets LANG=C.UTF-8, which glibc has built in.
PACKAGES="python3 python3-venv tini ca-certificates tzdata ${BASE_PACKAGES:-}"
# Bump when the rootfs recipe below changes, to invalidate caches and images.
RECIPE_REV=1
CACHE_DIR="${BASE_CACHE_DIR:-$REPO/.cache/base}"

log() { echo "base/build.sh: $*" >&2; }
die() { echo "base/build.sh: ERROR: $*" >&2; exit 1; }

START=$(date +%s)
# shellcheck disable=SC2086  # split the list on purpose
PACKAGES="$(printf '%s\n' $PACKAGES | sort -u | tr '\n' ' ' | sed 's/ $//')"
KEY="$(printf '%s\n' "$SUITE" "$ARCH" "$PACKAGES" "$RECIPE_REV" | sha256sum | cut -c1-16)"
TARBALL="$CACHE_DIR/debian-$SUITE-$ARCH-$KEY.tar"

# Step: check the docker CLI and the target engine.
command -v docker >/dev/null 2>&1 || die "docker CLI not found; run tests/rig/engine.sh start (installs docker.io) or install the docker CLI"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "no Docker engine answers at ${DOCKER_HOST:-the default socket}; start the test engine with: tests/rig/engine.sh start && eval \"\$(tests/rig/engine.sh env)\""
log "target engine: ${DOCKER_HOST:-default docker socket}"

# Step: skip everything if the image already exists with this recipe.
if [ -z "${FORCE:-}" ] && [ -z "${NO_CACHE:-}" ]; then
    have="$(docker image inspect --format '{{ index .Config.Labels "org.gpuhub.rootfs-key" }}' "$IMAGE" 2>/dev/null || true)"
    if [ "$have" = "$KEY" ]; then
        log "$IMAGE already exists (rootfs key $KEY); nothing to do"
        exit 0
    elif [ -n "$have" ]; then
        log "$IMAGE exists with another recipe ($have != $KEY); rebuilding"
    fi
fi

find_mirror() {
    # Print the first Debian mirror URI in the host's apt sources that serves $SUITE.
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v s="$SUITE" '$1=="deb" { i=2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1)==s) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        # deb822: paragraphs separated by blank lines; want Types: deb and Suites containing $SUITE.
        awk -v s="$SUITE" 'BEGIN { RS=""; FS="\n" }
            { types=""; uris=""; suites="";
              for (i=1;i<=NF;i++) { if ($i ~ /^Types:/) types=$i; if ($i ~ /^URIs:/) uris=$i; if ($i ~ /^Suites:/) suites=$i }
              if (types ~ /[: ]deb( |$)/ && (" " suites " ") ~ (" " s " ")) { sub(/^URIs:[ \t]*/, "", uris); split(uris, u, /[ \t]+/); print u[1]; exit } }' "$f"
    done
}

if [ ! -f "$TARBALL" ] || [ -n "${NO_CACHE:-}" ]; then
    # Step: make sure debootstrap is installed (apt-get install it when root on Debian/Ubuntu).
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root (you are uid $(id -u)); rerun with sudo, or put a rootfs tarball at $TARBALL"
    export PATH="$PATH:/usr/sbin:/sbin"
    if ! command -v debootstrap >/dev/null 2>&1; then
        if grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
            log "installing debootstrap + debian-archive-keyring with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap debian-archive-keyring >/dev/null
        else
            die "debootstrap is missing and this is not Debian/Ubuntu with apt-get; install debootstrap and debian-archive-keyring"
        fi
    fi
    KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$KEYRING" ] || die "$KEYRING missing; install debian-archive-keyring"

    # Step: find the Debian mirror from the host's apt sources.
    MIRROR="${DEBIAN_MIRROR:-$(find_mirror | head -n1)}"
    if [ -z "$MIRROR" ]; then
        MIRROR=http://deb.debian.org/debian
        log "no '$SUITE' source in /etc/apt/sources.list*; falling back to $MIRROR (set DEBIAN_MIRROR to override)"
    fi

    mkdir -p "$CACHE_DIR"
    WORK="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    cleanup() {
        # Unmount anything debootstrap left mounted (on failure) before deleting.
        # (|| true: with set -e and pipefail, grep finding no mount would make the script exit 1.)
        grep -o " $WORK/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m" || true; done || true
        rm -rf --one-file-system "$WORK"
    }
    trap cleanup EXIT
    ROOTFS="$WORK/rootfs"

    # Step: debootstrap the minimal rootfs.
    log "debootstrap --variant=minbase $SUITE from $MIRROR with: $PACKAGES"
    T0=$(date +%s)
    debootstrap --variant=minbase --arch="$ARCH" --keyring="$KEYRING" \
        --include="$(echo "$PACKAGES" | tr ' ' ',')" \
        "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2; die "debootstrap failed (see above)"; }
    log "debootstrap took $(( $(date +%s) - T0 ))s"

    # Step: configure apt/dpkg like the official slim images and strip docs, caches and host leftovers.
    cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -f "$ROOTFS/etc/apt/sources.list"
    cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/gpuhub-excludes" <<'EOF'
# Keep images small: no docs, man pages or translations (copyright files stay).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    cat >"$ROOTFS/etc/apt/apt.conf.d/90gpuhub" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$ROOTFS"/usr/share/{man,info,groff,lintian,linda}/* "$ROOTFS"/usr/share/locale/*
    rm -rf "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/archives/partial/* \
        "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/var/lib/dpkg/*-old \
        "$ROOTFS"/var/log/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/* "$ROOTFS"/debootstrap
    mkdir -p "$ROOTFS/var/lib/apt/lists/partial"
    # Host leftovers: docker provides these at run time.
    : >"$ROOTFS/etc/resolv.conf"
    echo localhost >"$ROOTFS/etc/hostname"
    : >"$ROOTFS/etc/machine-id"

    # Step: pack the rootfs into the cache.
    tar -C "$ROOTFS" --numeric-owner -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    # Keep only the current tarball.
    find "$CACHE_DIR" -maxdepth 1 -name "debian-$SUITE-$ARCH-*.tar" ! -name "$(basename "$TARBALL")" -delete
    log "rootfs cached at $TARBALL ($(du -h "$TARBALL" | cut -f1))"
else
    log "using cached rootfs $TARBALL"
fi

# Step: import the rootfs as $IMAGE.
log "docker import -> $IMAGE"
docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL org.gpuhub.rootfs-key=$KEY" \
    --change "LABEL org.opencontainers.image.description=\"Minimal Debian $SUITE ($PACKAGES) built by images/base/build.sh\"" \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE ($PACKAGES)" \
    "$TARBALL" "$IMAGE" >/dev/null

SIZE="$(docker image inspect --format '{{.Size}}' "$IMAGE")"
log "built $IMAGE: $(( SIZE / 1000000 )) MB, in $(( $(date +%s) - START ))s"
