#!/usr/bin/env bash
# Build gpuhub/test-notebook:<HUB_VERSION> (+ :latest) for the integration tests, offline:
#   1. fill ./wheelhouse on the host (pip download, cached per jupyterhub version),
#   2. make sure the base image exists (images/base/build.sh, cached),
#   3. docker build with the legacy builder (no buildx needed, no network in the build),
#      skipped when the tag exists with the same recipe hash label.
#
# Environment: PYTHON (default python3; its jupyterhub version is the default HUB_VERSION),
# HUB_VERSION, JUPYTERLAB_SPEC (default "jupyterlab"), BASE_IMAGE
# (default gpuhub/debian-base:bookworm), IMAGE (default gpuhub/test-notebook),
# CONTAINER_PYTHON / CONTAINER_GLIBC_MINOR (default 3.11 / 36, bookworm's), FORCE=1 (rebuild), DOCKER_HOST (target engine).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
IMAGE="${IMAGE:-gpuhub/test-notebook}"
DEFAULT_BASE=gpuhub/debian-base:bookworm
BASE_IMAGE="${BASE_IMAGE:-$DEFAULT_BASE}"
JUPYTERLAB_SPEC="${JUPYTERLAB_SPEC:-jupyterlab}"
CONTAINER_PYTHON="${CONTAINER_PYTHON:-3.11}"
# The base's glibc is 2.36 (bookworm): any manylinux wheel up to that fits. pip does
# not expand manylinux_2_36 to the older tags itself, so list them all.
ARCH="$(uname -m)"
CONTAINER_GLIBC_MINOR="${CONTAINER_GLIBC_MINOR:-36}"
WHEEL_PLATFORM="manylinux_2_${CONTAINER_GLIBC_MINOR}_$ARCH"
PLATFORM_ARGS=()
for ((m = CONTAINER_GLIBC_MINOR; m >= 5; m--)); do PLATFORM_ARGS+=(--platform "manylinux_2_${m}_$ARCH"); done
PLATFORM_ARGS+=(--platform "manylinux2014_$ARCH" --platform "manylinux2010_$ARCH" --platform "manylinux1_$ARCH")
WHEELHOUSE="$HERE/wheelhouse"

log() { echo "test-notebook/build.sh: $*" >&2; }
die() { echo "test-notebook/build.sh: ERROR: $*" >&2; exit 1; }
START=$(date +%s)

# Step: resolve HUB_VERSION from the Python that runs the hub.
command -v "$PYTHON" >/dev/null 2>&1 || die "python not found: '$PYTHON' (set PYTHON=/path/to/python)"
if [ -z "${HUB_VERSION:-}" ]; then
    HUB_VERSION="$("$PYTHON" -c 'import jupyterhub; print(jupyterhub.__version__)' 2>/dev/null)" \
        || die "$PYTHON cannot import jupyterhub; set PYTHON to the hub's python (e.g. PYTHON=.venv/bin/python) or set HUB_VERSION"
fi
log "HUB_VERSION=$HUB_VERSION, JUPYTERLAB_SPEC=$JUPYTERLAB_SPEC"

# Step: fill the wheelhouse on the host (skipped when it already holds this jupyterhub version).
STAMP="$WHEELHOUSE/.complete-jupyterhub-$HUB_VERSION-$(printf '%s' "$JUPYTERLAB_SPEC $CONTAINER_PYTHON $WHEEL_PLATFORM" | sha256sum | cut -c1-12)"
if [ -f "$STAMP" ] && compgen -G "$WHEELHOUSE/jupyterhub-$HUB_VERSION-*.whl" >/dev/null; then
    log "wheelhouse already holds jupyterhub $HUB_VERSION ($(find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' | wc -l) wheels)"
else
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip; install pip into it (or set PYTHON to a python with pip)"
    log "downloading wheels for cp${CONTAINER_PYTHON/./} manylinux (glibc <= 2.$CONTAINER_GLIBC_MINOR) into $WHEELHOUSE"
    T0=$(date +%s)
    rm -rf "$WHEELHOUSE"
    mkdir -p "$WHEELHOUSE.tmp"
    # Wheels only, for the container's python/platform (not the host's), so the
    # in-build `pip install --no-index` never needs a compiler or the network.
    "$PYTHON" -m pip download --quiet --dest "$WHEELHOUSE.tmp" \
        --only-binary=:all: --implementation cp --python-version "$CONTAINER_PYTHON" \
        "${PLATFORM_ARGS[@]}" \
        "jupyterhub==$HUB_VERSION" "$JUPYTERLAB_SPEC" \
        || { rm -rf "$WHEELHOUSE.tmp"; die "pip download failed (see above); PyPI (or your pip index) must be reachable from the host"; }
    mv "$WHEELHOUSE.tmp" "$WHEELHOUSE"
    touch "$STAMP"
    log "wheelhouse: $(find "$WHEELHOUSE" -maxdepth 1 -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1), in $(( $(date +%s) - T0 ))s"
fi

# Step: check the engine and make sure the base image exists.
command -v docker >/dev/null 2>&1 || die "docker CLI not found; run tests/rig/engine.sh start (installs docker.io) or install the docker CLI"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "no Docker engine answers at ${DOCKER_HOST:-the default socket}; start the test engine with: tests/rig/engine.sh start && eval \"\$(tests/rig/engine.sh env)\""
log "target engine: ${DOCKER_HOST:-default docker socket}"
if [ "$BASE_IMAGE" = "$DEFAULT_BASE" ]; then
    "$REPO/images/base/build.sh"
fi
BASE_ID="$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null)" \
    || die "base image $BASE_IMAGE not found in the engine; build it first (images/base/build.sh builds $DEFAULT_BASE)"

# Step: skip the build when the tag exists with the same recipe (Dockerfile, versions, base, wheels).
RECIPE_HASH="$( { cat "$HERE/Dockerfile" "$HERE/.dockerignore"; echo "$HUB_VERSION|$JUPYTERLAB_SPEC|$BASE_IMAGE|$BASE_ID"; (cd "$WHEELHOUSE" && ls -1 -- *.whl); } | sha256sum | cut -c1-16)"
TAG="$IMAGE:$HUB_VERSION"
have="$(docker image inspect --format '{{ index .Config.Labels "org.gpuhub.recipe-hash" }}' "$TAG" 2>/dev/null || true)"
if [ -z "${FORCE:-}" ] && [ "$have" = "$RECIPE_HASH" ]; then
    docker tag "$TAG" "$IMAGE:latest"
    log "$TAG is up to date (recipe $RECIPE_HASH); nothing to build"
    exit 0
fi

# Step: docker build with the legacy builder (the docker CLI may lack buildx; the build needs no BuildKit features).
log "building $TAG from $BASE_IMAGE (recipe $RECIPE_HASH)"
T0=$(date +%s)
BUILD_LOG="$REPO/.cache/test-notebook-build.log"
mkdir -p "$(dirname "$BUILD_LOG")"
DOCKER_BUILDKIT=0 docker build \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --build-arg "HUB_VERSION=$HUB_VERSION" \
    --build-arg "JUPYTERLAB_SPEC=$JUPYTERLAB_SPEC" \
    --label "org.gpuhub.recipe-hash=$RECIPE_HASH" \
    --tag "$TAG" --tag "$IMAGE:latest" \
    "$HERE" >"$BUILD_LOG" 2>&1 \
    || { tail -n 40 "$BUILD_LOG" >&2; die "docker build failed; full log: $BUILD_LOG"; }
log "docker build took $(( $(date +%s) - T0 ))s (log: $BUILD_LOG)"

# Step: smoke-check the image.
got="$(docker run --rm --network none "$TAG" jupyterhub-singleuser --version)"
[ "$got" = "$HUB_VERSION" ] || die "image's jupyterhub-singleuser --version says '$got', expected $HUB_VERSION"
uid="$(docker run --rm --network none "$TAG" id -u)"
[ "$uid" = 1000 ] || die "image runs as uid $uid, expected 1000"
SIZE="$(docker image inspect --format '{{.Size}}' "$TAG")"
log "built $TAG (+ :latest): $(( SIZE / 1000000 )) MB, in $(( $(date +%s) - START ))s"
