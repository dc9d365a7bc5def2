"""GPUDockerSpawner: DockerSpawner that hands each server free GPUs, by UUID.

Traits and lifecycle only; the pieces live beside it: ``pool.py`` owns the
GPUs (inventory, claim table, engine record, reconcile), ``container_spec.py``
builds the Docker settings, ``labels.py`` is the label contract,
``options.py`` checks what users ask for, ``templates/options_form.html`` is
the spawn form, ``hardening.py`` checks the final create request,
``image_source.py`` says which images may be pulled, ``user_volumes.py``
archives a deleted user's volumes, ``reset_on_start.py`` moves a user's
environment folders aside (Reset my environment), ``group_properties.py`` reads settings
from JupyterHub group properties, ``cohort_spaces.py`` adds a cohort's
window and its team and dataset folders.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import docker
import docker.errors
import docker.tls
from docker.utils import kwargs_from_env
from dockerspawner import DockerSpawner
from jupyterhub.utils import exponential_backoff
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Int, List, TraitError, Unicode, default, validate

from . import container_spec, hardening, image_source, labels, progress, shared_volumes, user_volumes
from .options import form_to_options
from .pool import ClaimConflict
from .cohort_spaces import CohortSpaces
from .gpu_claims import START_ALLOWANCE, GPUClaims
from .reset_on_start import ResetOnStart
from .settings import GPUSettings
from .user_choices import UserChoices

_thread_clients = threading.local()  # one Docker API client per thread (see client)

# How often a start may lose a GPU to another hub on the same engine (both
# chose it at the same moment) and choose again before giving up.
CLAIM_ATTEMPTS = 3


class GPUDockerSpawner(GPUSettings, GPUClaims, CohortSpaces, ResetOnStart, UserChoices, DockerSpawner):
    """A DockerSpawner that assigns free GPUs exclusively, by UUID.

    Users choose how many GPUs (0 up to their quota) in the spawn form or
    with ``{"gpus": N}`` in the REST API. The assignment is written on the
    container as a label and in the spawner state, and rebuilt from Docker
    when the hub restarts.
    """

    @property
    def executor(self):
        # workaround for DockerSpawner.executor: one thread for the whole hub
        cls = GPUDockerSpawner
        if cls._docker_executor is None:
            cls._docker_executor = ThreadPoolExecutor(self.docker_threads, thread_name_prefix="gpuhub-docker")
        return cls._docker_executor

    _docker_executor: ThreadPoolExecutor | None = None

    @property
    def client(self):
        # workaround for DockerSpawner.client, one client for the whole hub: docker-py's
        # APIClient is not safe to share between threads (hubs crashed with SIGSEGV
        # when the Docker threads shared one), so each thread has its own.
        client = getattr(_thread_clients, "client", None)
        if client is None:
            client = _thread_clients.client = self._new_client()
        return client

    def _new_client(self) -> docker.APIClient:
        """A Docker API client as DockerSpawner makes it (environment, TLS, client_kwargs)."""
        kwargs = {"version": "auto"}
        if self.tls_config:
            kwargs["tls"] = docker.tls.TLSConfig(**self.tls_config)
        kwargs.update(kwargs_from_env())
        kwargs.update(self.client_kwargs)
        return docker.APIClient(**kwargs)

    # ---- DockerSpawner defaults that suit a GPU hub --------------------
    @default("remove")
    def _default_remove(self):
        # Each start creates a new container, so each start picks GPUs afresh;
        # files live on the user's volume, not in the container.
        return True

    @default("start_timeout")
    def _default_start_timeout(self):
        return int(self.queue_timeout) + START_ALLOWANCE

    @default("network_name")
    def _default_network_name(self):
        return "gpuhub"

    @default("volumes")
    def _default_volumes(self):
        return {"{prefix}-user-{username}": self.home_directory}

    @property
    def home(self) -> str:
        """The notebook user's home: where ``volumes`` mounts the user's volume
        (``home_directory`` when it names none). Team and dataset folders and
        Reset my environment go by it."""
        return shared_volumes.home_of(self.volumes, self.home_directory)

    @default("allowed_images")
    def _default_allowed_images(self):
        return {self.image: self.image}

    @default("options_form")
    def _default_options_form(self):
        return GPUDockerSpawner.render_options_form

    @default("options_from_form")
    def _default_options_from_form(self):
        return form_to_options

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return GPUDockerSpawner.apply_gpu_options

    @validate("allowed_images")
    def _validate_allowed_images(self, proposal):
        # dockerspawner passes a plain dict when allowed_images is a callable
        if proposal["value"] == "*":
            raise TraitError(
                "GPUDockerSpawner.allowed_images cannot be '*': users must never run "
                "arbitrary images. List the images, e.g. ['gpuhub/pytorch-notebook:2.6']."
            )
        return super()._validate_allowed_images(proposal)

    @validate("volumes", "read_only_volumes")
    def _validate_no_docker_socket(self, proposal):
        if any(hardening.exposes_docker_socket(source) for source in proposal.value):
            raise TraitError(
                f"{proposal.trait.name} must not mount the Docker socket: "
                "it would give every user root on the host (the socket, or a folder "
                "above it such as /var/run, /run or /)."
            )
        return proposal.value

    @validate("container_user")
    def _validate_container_user(self, proposal):
        if hardening.is_root_user(proposal.value):
            raise TraitError(
                f"container_user must be a non-root uid such as '1000', got {proposal.value!r}."
            )
        return proposal.value

    # ---- state ---------------------------------------------------------
    gpu_uuids = List(Unicode(), help="UUIDs of the devices this server holds (state).")
    gpu_request = Int(0, help="How many GPUs the current start asked for.")
    image_digest = Unicode("", help="The image the current start runs: repo digest or image ID.")
    _starting = False

    def load_state(self, state):
        super().load_state(state)
        self.gpu_uuids = list(state.get("gpus", []))

    def get_state(self):
        state = super().get_state()
        if self.gpu_uuids:
            state["gpus"] = list(self.gpu_uuids)
        return state

    def clear_state(self):
        super().clear_state()
        self.gpu_uuids = []

    # ---- lifecycle -------------------------------------------------------
    async def start(self):
        began = time.monotonic()
        self.queue_wait = 0.0
        self._starting = True
        self._progress = progress.ProgressLog()
        try:
            kept = None if self.remove else await self.get_object()
            kept_gpus = labels.gpus_from_labels(kept["Config"]["Labels"]) if kept else ()
            self.gpu_uuids = list(
                await self._claim_gpus(prefer=kept_gpus, wait=self._queue_allowance(began))
            )
            free, inventory = await self.pool.free_count(self.busy_memory_threshold)
            self._report(
                progress.assigned(self.pool.describe(self.gpu_uuids), free, len(inventory.healthy)), 30
            )
            if kept and (self.reset_requested or not await self._may_reuse(kept, kept_gpus)):
                await self.remove_object()
            async with self.pool.starts.slot(
                self.server_key, lambda place: self._report(progress.waiting_to_start(place), 40)
            ):
                self._report("Starting container", 50)
                address = await super().start()
                self._report("Waiting for Jupyter", 70)
                await self._wait_for_jupyter(address)
            return address
        except BaseException:
            if not self.object_id:
                # No container was made: nothing can be using the GPUs. Otherwise
                # the hub's clean-up calls stop(), which frees them once the
                # container is gone, never while it may still run.
                self._release_gpus()
            raise
        finally:
            self._starting = False

    async def _wait_for_jupyter(self, address) -> None:
        """Hold the start's turn at the gate until Jupyter answers (or ``http_timeout``:
        JupyterHub then waits and reports as it always does).

        Polls often (every 0.1 s to 0.5 s): JupyterHub's own check backs off to
        5 s between tries, which would leave the gate's slot idle that long.
        """
        if self.internal_ssl:
            return  # JupyterHub's own check has the certificates
        ip, port = address
        url = f"http://{ip}:{port}{self.server.base_url}"
        try:
            await exponential_backoff(
                partial(_answers, url), f"{self._log_name} did not answer within "
                f"{self.http_timeout}s of starting", start_wait=0.1, max_wait=0.5,
                timeout=self.http_timeout,
            )
        except asyncio.TimeoutError as error:
            self.log.warning("%s", error)

    async def _may_reuse(self, kept: dict, kept_gpus: tuple[str, ...]) -> bool:
        """A kept container (``remove = False``) starts again only with the GPUs
        just claimed and an image the user may run now; otherwise it is replaced."""
        chosen = self.user_options.get("image")
        image = await self.check_allowed(chosen) if chosen else self.image
        if sorted(kept_gpus) != sorted(self.gpu_uuids) or kept["Config"]["Image"] != image:
            self.log.info(
                "Replacing %s's kept container: it names GPU(s) %s and image %s, "
                "this start has %s and %s", self._log_name, ",".join(kept_gpus) or "none",
                kept["Config"]["Image"], ",".join(self.gpu_uuids) or "none", image,
            )
            return False
        return True

    async def create_object(self):
        await self._reset_if_requested()
        for _attempt in range(CLAIM_ATTEMPTS):
            created = await self._create_container()
            self.pool.confirm(self.server_key, created["Id"])
            try:
                await self.pool.verify(self.server_key, created["Id"])
                return created
            except ClaimConflict as conflict:
                self.log.warning("%s: choosing again", conflict)
                await self.pool.remove_container(created["Id"])
                self.gpu_uuids = list(await self._claim_gpus())
        raise web.HTTPError(
            503, "Other hubs on this Docker engine took the free GPUs while your server "
            "was starting. Try again in a moment.",
        )

    async def _create_container(self) -> dict:
        # workaround for DockerSpawner.create_object, which reads these traits
        # and has no parameter for the GPU- and hardening pieces
        configured_host = self.extra_host_config
        self.extra_host_config = container_spec.required_host_config(
            self.gpu_uuids, self.shm_size, self.pids_limit, await self._evaluate(configured_host)
        )
        try:
            self._check_cohort_window()  # again: a wait in the GPU queue may have outlasted it
            await self._ensure_labelled_volumes(shared=await self._ensure_shared_volumes())
            return await super().create_object()
        finally:
            self.extra_host_config = configured_host

    def docker(self, method, *args, **kwargs):
        if method == "create_container":
            # workaround for DockerSpawner.create_object, which has no hook between
            # rendering its templates and sending the request
            kwargs = self._final_create_kwargs(kwargs)
        return super().docker(method, *args, **kwargs)

    def _final_create_kwargs(self, create_kwargs: dict) -> dict:
        """The create request with gpuhub's user and labels, checked whole.

        Labels and user go on after DockerSpawner's ``str.format`` rendering:
        names are data, a user named ``{raw_servername}alice`` is not a template.
        """
        create_kwargs = dict(create_kwargs)
        create_kwargs["user"] = self.container_user
        create_kwargs["labels"] = {
            **(create_kwargs.get("labels") or {}),
            **labels.labels(
                self.hub_id, self.user.name, self.name, self.gpu_uuids, share=self.gpu_share,
                lease=self.gpu_lease if self.gpu_uuids else 0,
                idle_timeout=self.gpu_idle_timeout if self.gpu_uuids else 0,
            ),
            labels.IMAGE_LABEL: self.image_digest,
            labels.QUEUE_WAIT_LABEL: f"{self.queue_wait:.1f}",
            **({labels.ENDS_LABEL: f"{self.cohort_ends:.0f}"} if self.cohort_ends else {}),
        }
        hardening.enforce(
            create_kwargs, hardening.sockets_for(os.environ.get("DOCKER_HOST")), self.log,
            self._log_name, overridden=set(self._values_before_overrides) - {"image"},
        )
        return create_kwargs

    async def _ensure_labelled_volumes(self, shared=frozenset()):
        """Create this server's named volumes with the hub's labels (the engine
        keeps an existing volume as it is); ``shared`` ones are not the user's."""
        for source in self.volume_binds:
            if "/" not in source and source not in shared:
                await self.docker(
                    "create_volume",
                    name=source,
                    labels={labels.HUB_LABEL: self.hub_id, labels.USER_LABEL: self.user.name},
                )

    async def _evaluate(self, value) -> dict:
        value = self._eval_if_callable(value)
        if inspect.isawaitable(value):
            value = await value
        return dict(value or {})

    async def pull_image(self, image):
        """Pull only from ``image_registries``; any other image must be on the host.
        Records and logs the image (digest) this start runs."""
        if image_source.may_pull(image, self.image_registries):
            await super().pull_image(image)
        try:
            inspected = await self.docker("inspect_image", image)
        except docker.errors.NotFound:
            message = image_source.missing_message(image, self.image_registries)
            self.log.error("Not starting %s: %s", self._log_name, message)
            raise image_source.ImageNotAvailable(message) from None
        self.image_digest = image_source.digest_of(inspected)
        self.log.info("%s runs image %s: %s", self._log_name, image, self.image_digest)

    async def delete_forever(self):
        """The user is deleted: archive or remove the volumes named after them
        (``deleted_user_volumes``), so a new user of the same name starts empty.

        Runs for the default server only, which JupyterHub keeps for every user
        and deletes with the user: the volumes are the user's, shared by their
        named servers, and must outlive a deleted named server.
        """
        if self.name:
            return
        if await self.get_object():
            await self.remove_object()  # a kept container (remove = False) pins the volume
        templates = user_volumes.per_user_templates({**self.volumes, **self.read_only_volumes})
        # the archive copy is the hub's own short-lived container, not a server:
        # it skips the server's labels and checks (it runs as root, see user_volumes)
        await user_volumes.dispose(
            partial(DockerSpawner.docker, self), [self.format_volume_name(t, self) for t in templates],
            archive=self.deleted_user_volumes == "archive", prefix=self.prefix,
            hub=self.hub_id, user=self.user.name, escaped_user=self.escaped_name,
            image=self.image, log=self.log,
        )

    def get_env(self):
        # sharing hints and the activity interval first: the admin's ``environment`` wins
        env = {
            **container_spec.sharing_environment(self.gpu_uuids, self.gpu_share),
            **container_spec.activity_environment(self.gpu_idle_timeout if self.gpu_uuids else 0),
            **super().get_env(),
        }
        env.update(container_spec.gpu_environment(self.gpu_uuids))
        return env

    async def poll(self):
        status = await super().poll()
        if status is None:
            self.pool.track(self.server_key)
        elif not self._starting:
            self._release_gpus()
        return status

    async def stop(self, now=False):
        await super().stop(now=now)
        self._release_gpus()
        self.pool.save_queue()  # a start cancelled while it waited in line is forgotten


async def _answers(url: str) -> bool:
    """Any answer below 500 means the server is up (as JupyterHub's own check)."""
    try:
        await AsyncHTTPClient().fetch(url, follow_redirects=False, request_timeout=5)
        return True
    except HTTPClientError as error:
        return error.code < 500
    except OSError:
        return False
