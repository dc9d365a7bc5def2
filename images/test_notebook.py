"""The integration tests' single-user image: `gpuhub images build-test` (`make test-images`).

images/test-notebook/Dockerfile on the local line's Debian base (with the image line's
apt tools; [test_notebook] and [local] in versions.toml),
with jupyterhub at the hub's version and the listed packages from a host-filled
wheelhouse, tagged <repository>:<jupyterhub version> and :latest; skipped when that tag
carries the same recipe. Then checked: jupyterhub-singleuser's version and the user id.
"""

from __future__ import annotations

from . import wheelhouse
from .docker_cli import Docker
from .recipe import (
    IMAGES, RECIPE_LABEL, BuildError, build_image, ensure_tools_base, fill, hub_version, image_id, log, mb, recipe_hash,
)
from .versions import Catalog

SOURCE = IMAGES / "test-notebook"
USER_ID = "1000"


def build_test_notebook(catalog: Catalog, docker: Docker | None = None, fresh: bool = False) -> str:
    """Build (or reuse) the test image; returns its versioned tag."""
    docker = docker or Docker()
    docker.check()
    hub = hub_version()
    spec = catalog.test_notebook
    base = ensure_tools_base(catalog, fresh)
    wheels = fill(wheelhouse.fill, [f"jupyterhub=={hub}", *spec.packages], wheelhouse.Target(spec.python, spec.glibc))
    args = {"BASE_IMAGE": base, "HUB_VERSION": hub}
    recipe = recipe_hash(SOURCE, wheels, args, image_id(docker, base))
    tag, latest = f"{spec.repository}:{hub}", f"{spec.repository}:latest"
    if docker.labels(tag).get(RECIPE_LABEL) == recipe and not fresh:
        log(f"{tag} is up to date (recipe {recipe}); not rebuilt")
        docker.tag(tag, latest)
        return tag
    log(f"building {tag} on {base} (recipe {recipe})")
    seconds = build_image(docker, SOURCE, wheels, [tag, latest], args, recipe, fresh)
    check(docker, tag, hub)
    log(f"built {tag} (+ :latest): {mb(docker.inspect_image(tag)['Size'])}, in {seconds:.0f}s")
    return tag


def check(docker: Docker, tag: str, hub: str) -> None:
    version = docker.in_image(tag, ["jupyterhub-singleuser", "--version"]).strip()
    if version != hub:
        raise BuildError(f"{tag}: jupyterhub-singleuser --version says {version!r}, the hub runs {hub}.\n"
                         "What to do: rebuild with --no-cache; the wheelhouse may hold another jupyterhub.")
    user = docker.in_image(tag, ["id", "-u"]).strip()
    if user != USER_ID:
        raise BuildError(f"{tag} runs as uid {user}, expected {USER_ID}.\nWhat to do: check USER in {SOURCE}/Dockerfile.")
