"""Where an image may come from: this host, or a registry the admin named. No I/O.

``gpuhub/pytorch-notebook:…`` names Docker Hub's ``gpuhub`` namespace, which
this project does not own: pulling it on a host that lacks the local build
would run whatever that namespace holds. So an image is pulled only when its
registry is listed in ``image_registries``; every other image must already
be on the host (built by ``make up`` / ``gpuhub images build``).
"""

from __future__ import annotations

from collections.abc import Iterable

from .hardening import AdminError

DOCKER_HUB = "docker.io"
BUILD_HINT = "run `make up` or `gpuhub images build` on the hub's host to build it"


class ImageNotAvailable(AdminError):
    """The image is not on the host and may not be pulled: the admin builds it."""


def registry_of(image: str) -> str:
    """The registry an image reference pulls from (Docker's own rule: the first
    path component is a registry when it has a dot, a port or is localhost)."""
    first, slash, _rest = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return DOCKER_HUB


def may_pull(image: str, registries: Iterable[str]) -> bool:
    return registry_of(image) in {r.lower().rstrip("/") for r in registries}


def missing_message(image: str, registries: Iterable[str]) -> str:
    """What the admin reads when ``image`` is not on the host and is not pulled."""
    registry = registry_of(image)
    listed = ", ".join(registries) or "none"
    return (
        f"The image {image} is not on this host, and gpuhub does not pull from "
        f"{registry} (GPUDockerSpawner.image_registries: {listed}). To fix: {BUILD_HINT}, "
        f"or, if {registry} is a registry you trust, add it to c.GPUDockerSpawner.image_registries."
    )


def digest_of(inspected: dict) -> str:
    """``image@sha256:…`` when the engine knows where the image came from, else its ID."""
    repo_digests = inspected.get("RepoDigests") or []
    return repo_digests[0] if repo_digests else inspected.get("Id", "")
