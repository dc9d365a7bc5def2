"""What a cohort gives a server: its window, team and dataset folders.

A mixin of :class:`~gpuhub.spawner.gpu_docker.GPUDockerSpawner`. The rules
are pure and live beside it (``cohort_window.py``, ``shared_volumes.py``);
this side reads the user's groups at each spawn, creates missing shared
volumes (a new team volume is made the notebook user's by a helper
container, ``helper_container.py``) and mounts them.
"""

from __future__ import annotations

import datetime
import secrets
import shlex
from functools import partial

import docker.errors
from dockerspawner import DockerSpawner
from traitlets import Unicode
from traitlets.config import Configurable

from . import helper_container, shared_volumes
from .cohort_window import CohortClosed, open_until
from .group_properties import BadGroupProperty
from .user_errors import UserMistake

# A new team volume's root is root's: the notebook user gets it (CHOWN) and its mode (FOWNER).
OWNER_CAPABILITIES = ["CHOWN", "FOWNER"]


class CohortSpaces(Configurable):
    datasets_volume = Unicode(
        shared_volumes.DATASETS_VOLUME,
        config=True,
        help="""Docker volume mounted read-only at ``~/datasets`` in every server
        started once it exists; "" mounts none.

        Admins create and fill it with ``gpuhub datasets add PATH``
        (hub/README.md); running servers see later additions at once, servers
        started before the first one see it at their next start. Until then
        nothing is mounted, so a user's own ``~/datasets`` folder stays visible
        (while mounted, the shared one hides it; its files stay in the home
        volume). ``{prefix}`` is the hub's prefix. Default:
        "{prefix}-datasets"::

            c.GPUDockerSpawner.datasets_volume = "course-data"
        """,
    )

    cohort_ends: float | None = None  # epoch seconds this start's cohort ends (labels.ENDS_LABEL)
    _absent_volumes: frozenset = frozenset()  # shared volumes not mounted: the datasets before its first add

    def _check_cohort_window(self) -> None:
        """Refuse (400, with the cohort's dates) a member of cohorts none of which is
        open now; otherwise note when the server must stop (``cohort_ends``)."""
        try:
            self.cohort_ends = open_until(self.user.groups, datetime.datetime.now(datetime.timezone.utc))
        except (CohortClosed, BadGroupProperty) as error:
            raise UserMistake(400, str(error)) from None

    def _shared_volumes(self) -> list[shared_volumes.SharedVolume]:
        """This user's team volumes and the datasets volume, from their groups now."""
        return shared_volumes.shared_volumes(
            groups=self.user.groups, home=self.home, prefix=self.prefix,
            hub=self.hub_id, escape=self.escape,
            datasets_volume=self.datasets_volume.format(prefix=self.prefix),
        )

    @property
    def volume_binds(self):
        binds = super().volume_binds
        for volume in self._shared_volumes():
            if volume.name not in self._absent_volumes:
                binds[volume.name] = volume.bind()
        return binds

    async def _ensure_shared_volumes(self) -> set[str]:
        """Create the missing team volumes (each becomes the notebook user's); a missing
        datasets volume is left out of the mounts. Returns the shared volumes'
        names (the caller labels no user on them)."""
        docker_call = partial(DockerSpawner.docker, self)  # the hub's own calls, not a server's
        volumes, absent = self._shared_volumes(), set()
        for volume in volumes:
            try:
                await docker_call("inspect_volume", volume.name)
                continue
            except docker.errors.NotFound:
                pass
            if volume.read_only:  # the datasets: made by its first `gpuhub datasets add`
                absent.add(volume.name)
                continue
            await docker_call("create_volume", name=volume.name, labels=volume.labels)
            if volume.for_the_user:
                await self._give_to_notebook_user(docker_call, volume.name)
            self.log.info("Created team volume %s for %s", volume.name, self._log_name)
        self._absent_volumes = frozenset(absent)
        return {volume.name for volume in volumes}

    async def _give_to_notebook_user(self, docker_call, volume: str) -> None:
        uid, gid = shared_volumes.owner_of(self.container_user)
        uid = shlex.quote(uid)
        group = shlex.quote(gid) if gid else f"$(id -g {uid} 2>/dev/null || echo {uid})"  # the image's
        try:
            await helper_container.run_once(
                docker_call, image=self.image,
                command=["sh", "-c", f"chown {uid}:{group} /v && chmod 2775 /v"],
                binds=[f"{volume}:/v:rw"], capabilities=OWNER_CAPABILITIES, hub=self.hub_id,
                # two members starting at once may both find the volume new: both give it
                name=f"{volume}-owner-{secrets.token_hex(3)}",
                what=f"giving volume {volume} to user {uid}", timeout=120,
            )
        except BaseException:
            # new and empty: without its owner it would stay root's, so it goes
            # (unless another member's server already mounts it: the engine refuses)
            try:
                await docker_call("remove_volume", volume, force=True)
            except docker.errors.APIError as error:
                self.log.warning("Kept volume %s after its chown failed: %s", volume, error)
            raise
