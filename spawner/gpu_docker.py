"""GPUDockerSpawner: DockerSpawner that hands each server free GPUs, by UUID.

Lifecycle only; the pieces live beside it:
``inventory.py`` reads NVML, ``allocator.py`` keeps the claim table,
``container_spec.py`` builds the Docker settings, ``options.py`` checks what
users ask for, ``templates/options_form.html`` is the spawn form.
"""

from __future__ import annotations

import asyncio
import copy
import inspect

from dockerspawner import DockerSpawner
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader
from jupyterhub.traitlets import ByteSpecification
from tornado import web
from traitlets import Int, List, TraitError, Unicode, default, validate

from . import container_spec, labels
from .allocator import GPUAllocator, NotEnoughGPUs
from .inventory import NvmlInventory
from .options import InvalidOptions, form_to_options, parse_request

# Docker states in which a container holds its GPUs. A "created" container
# is one whose spawn is under way; one found at hub start-up is a leftover
# of a spawn that died with the hub, and holds nothing.
LIVE_STATES = {"created", "running", "restarting", "paused"}
RUNNING_STATES = LIVE_STATES - {"created"}


class _SharedPool:
    """State every spawner in this hub process shares."""

    def __init__(self, log):
        self.inventory = NvmlInventory(log)
        self.allocator = GPUAllocator()
        self.lock = asyncio.Lock()
        self.loaded: asyncio.Task | None = None


class GPUDockerSpawner(DockerSpawner):
    """A DockerSpawner that assigns free GPUs exclusively, by UUID.

    Users choose how many GPUs (0 up to their quota) in the spawn form or
    with ``{"gpus": N}`` in the REST API. The assignment is written on the
    container as a label and in the spawner state, and rebuilt from Docker
    when the hub restarts.
    """

    _pool: _SharedPool | None = None

    # ---- configuration -----------------------------------------------
    gpu_quota = Int(
        1,
        min=0,
        config=True,
        help="""Most GPUs one server may ask for.

        Default: 1. Set per group with JupyterHub's ``group_overrides``::

            c.GPUDockerSpawner.gpu_quota = 1
            c.GPUDockerSpawner.group_overrides = {
                "10-researchers": {"groups": ["researchers"],
                                   "spawner_override": {"gpu_quota": 4, "mem_limit": "64G"}},
            }
        """,
    )

    default_gpus = Int(
        1,
        min=0,
        config=True,
        help="""GPUs a server gets when the request does not say.

        Capped by the user's ``gpu_quota`` and by the healthy GPUs on the host,
        so on a host without GPUs servers start CPU-only. Default: 1::

            c.GPUDockerSpawner.default_gpus = 0
        """,
    )

    busy_memory_threshold = ByteSpecification(
        "1G",
        config=True,
        help="""A GPU with at least this much memory in use is not free.

        Catches jobs NVML cannot attribute to a process (other PID namespaces,
        zombie contexts). Default: 1G::

            c.GPUDockerSpawner.busy_memory_threshold = "512M"
        """,
    )

    shm_size = ByteSpecification(
        "8G",
        config=True,
        help="""Size of /dev/shm in the container.

        PyTorch DataLoader workers pass batches through shared memory; Docker's
        64 MiB default breaks them. Counts against ``mem_limit``. Default: 8G::

            c.GPUDockerSpawner.shm_size = "16G"
        """,
    )

    pids_limit = Int(
        4096,
        min=64,
        config=True,
        help="""Most processes/threads one container may run (fork-bomb guard).

        Default: 4096::

            c.GPUDockerSpawner.pids_limit = 8192
        """,
    )

    container_user = Unicode(
        "1000",
        config=True,
        help="""User (uid or uid:gid) the notebook runs as; never root.

        Must own the home directory in the image. Default: "1000" (jovyan)::

            c.GPUDockerSpawner.container_user = "1000:100"
        """,
    )

    options_form_template_paths = List(
        Unicode(),
        config=True,
        help="""Folders searched for ``options_form.html`` before the built-in one.

        Default: []. To restyle the spawn form, copy
        ``spawner/templates/options_form.html`` into a folder and list it::

            c.GPUDockerSpawner.options_form_template_paths = ["/etc/gpuhub/templates"]
        """,
    )

    # ---- DockerSpawner defaults that suit a GPU hub --------------------
    @default("prefix")
    def _default_prefix(self):
        return "gpuhub"

    @default("remove")
    def _default_remove(self):
        # Each start creates a new container, so each start picks GPUs afresh;
        # files live on the user's volume, not in the container.
        return True

    @default("network_name")
    def _default_network_name(self):
        return "gpuhub"

    @default("volumes")
    def _default_volumes(self):
        return {"gpuhub-user-{username}": "/home/jovyan"}

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
        if proposal.value == "*":
            raise TraitError(
                "GPUDockerSpawner.allowed_images cannot be '*': users must never run "
                "arbitrary images. List the images, e.g. ['gpuhub/pytorch-notebook:2.6']."
            )
        return super()._validate_allowed_images(proposal)

    @validate("volumes", "read_only_volumes")
    def _validate_no_docker_socket(self, proposal):
        if container_spec.mounts_docker_socket(list(proposal.value)):
            raise TraitError(
                f"{proposal.trait.name} must not mount the Docker socket: "
                "it would give every user root on the host."
            )
        return proposal.value

    @validate("container_user")
    def _validate_container_user(self, proposal):
        uid = proposal.value.split(":", 1)[0]
        if uid in ("", "0", "root"):
            raise TraitError(
                f"container_user must be a non-root uid such as '1000', got {proposal.value!r}."
            )
        return proposal.value

    # ---- state ---------------------------------------------------------
    gpu_uuids = List(Unicode(), help="UUIDs of the devices this server holds (state).")
    gpu_request = Int(0, help="How many GPUs the current start asked for.")
    _starting = False
    _values_before_overrides: dict = {}

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

    # ---- shared pool -----------------------------------------------------
    @property
    def pool(self) -> _SharedPool:
        cls = GPUDockerSpawner
        if cls._pool is None:
            cls._pool = _SharedPool(self.log)
        return cls._pool

    async def _ensure_claims_loaded(self):
        """Rebuild the claim table from Docker once per hub process."""
        pool = self.pool
        if pool.loaded is None:
            pool.loaded = asyncio.ensure_future(self._load_claims())
        try:
            await asyncio.shield(pool.loaded)
        except Exception:
            pool.loaded = None  # Docker was down: try again next time
            raise

    async def _gpu_containers(self) -> list[dict]:
        """Every container on this engine that carries a GPU claim label."""
        return await self.docker("containers", all=True, filters={"label": labels.GPU_LABEL})

    async def _load_claims(self):
        restored = 0
        for container in await self._gpu_containers():
            uuids = labels.gpus_from_labels(container.get("Labels"))
            if container.get("State") in RUNNING_STATES and uuids:
                self.pool.allocator.restore(_container_name(container), uuids)
                restored += 1
        self.log.info("GPU claims rebuilt from Docker: %i server(s) hold GPUs", restored)

    async def _forget_dead_claims(self):
        """Give back GPUs of containers that died without the hub noticing yet."""
        allocator = self.pool.allocator
        since = allocator.mark()
        live = {
            _container_name(c)
            for c in await self._gpu_containers()
            if c.get("State") in LIVE_STATES
        }
        for holder in allocator.forget_missing(live, since):
            self.log.info("GPUs of %s released: its container is gone", holder)

    # ---- user options and group settings --------------------------------
    async def apply_group_overrides(self):
        """Apply ``group_overrides`` afresh: a user who left a group loses its settings.

        JupyterHub sets overrides on the spawner object, which lives as long
        as the hub; without a reset a quota raised for a group would stick.
        """
        for name, value in self._values_before_overrides.items():
            setattr(self, name, value)
        overrides = self.group_overrides
        if callable(overrides):
            overrides = overrides(self)
            if inspect.isawaitable(overrides):
                overrides = await overrides
        names = {name for o in overrides.values() for name in o.get("spawner_override", {})}
        self._values_before_overrides = {n: copy.deepcopy(getattr(self, n)) for n in names}
        await super().apply_group_overrides()

    def _allowed_image_names(self) -> list[str]:
        return list(self._get_allowed_images() or {})

    def _default_gpu_count(self, inventory) -> int:
        """``default_gpus``, capped by the quota and the healthy GPUs on the host."""
        return min(self.default_gpus, self.gpu_quota, len(inventory.healthy))

    @staticmethod
    async def apply_gpu_options(spawner: GPUDockerSpawner, user_options: dict):
        """Check user options against the quota; answer bad input with HTTP 400."""
        inventory = await spawner.pool.inventory.snapshot()
        try:
            request = parse_request(
                user_options or {},
                spawner.gpu_quota,
                spawner._default_gpu_count(inventory),
                spawner._allowed_image_names(),
            )
        except InvalidOptions as error:
            raise web.HTTPError(400, str(error)) from None
        spawner.gpu_request = request.gpus

    def options_from_query(self, query_data):
        # JupyterHub starts a server from GET /hub/spawn?gpus=4 query arguments:
        # a link on any site would make a logged-in user hold GPUs. GET shows the form.
        raise web.HTTPError(
            400, "A link cannot start a server: choose the options below and press Start."
        )

    async def render_options_form(self) -> str:
        await self.apply_group_overrides()
        inventory = await self.pool.inventory.snapshot()
        free = self.pool.allocator.free_gpus(inventory, self.busy_memory_threshold)
        names = sorted({gpu.name for gpu in inventory.healthy if gpu.name})
        return _templates(tuple(self.options_form_template_paths)).get_template(
            "options_form.html"
        ).render(
            quota=self.gpu_quota,
            offered=min(self.gpu_quota, len(inventory.healthy)),
            default_gpus=self._default_gpu_count(inventory),
            free=len(free),
            total=len(inventory.healthy),
            nvml_available=inventory.nvml_available,
            unavailable_reason=inventory.unavailable_reason,
            gpu_names=", ".join(names),
            images=self._allowed_image_names(),
            image=self.image,
        )

    # ---- lifecycle -------------------------------------------------------
    async def _claim_gpus(self) -> tuple[str, ...]:
        pool = self.pool
        inventory = await pool.inventory.snapshot()
        async with pool.lock:
            try:
                return self._claim(inventory)
            except NotEnoughGPUs:
                # Before refusing, look again: containers that died without the
                # hub noticing yet, jobs outside the hub that have ended.
                await self._forget_dead_claims()
                inventory = await pool.inventory.snapshot(max_age=0)
            try:
                return self._claim(inventory)
            except NotEnoughGPUs as error:
                self._log_unavailable(inventory)
                raise web.HTTPError(409, str(error)) from None

    def _claim(self, inventory) -> tuple[str, ...]:
        return self.pool.allocator.claim(
            self.object_name, self.gpu_request, inventory, self.busy_memory_threshold
        )

    def _log_unavailable(self, inventory):
        allocator = self.pool.allocator
        for gpu in inventory.gpus:
            reason = allocator.why_not_free(gpu, self.busy_memory_threshold)
            if reason:
                self.log.info("GPU %s (%s) not assigned: %s", gpu.index, gpu.uuid or "?", reason)

    def _release_gpus(self):
        uuids = self.pool.allocator.release(self.object_name)
        if uuids:
            self.log.info("Released GPU(s) %s of %s", ",".join(uuids), self._log_name)
        self.gpu_uuids = []

    async def start(self):
        await self._ensure_claims_loaded()
        self._starting = True
        try:
            self.gpu_uuids = list(await self._claim_gpus())
            if self.gpu_uuids:
                self.log.info(
                    "Assigned GPU(s) %s to %s", ",".join(self.gpu_uuids), self._log_name
                )
            return await super().start()
        except BaseException:
            if not self.object_id:
                # No container was made: nothing can be using the GPUs. Otherwise
                # the hub's clean-up calls stop(), which frees them once the
                # container is gone, never while it may still run.
                self._release_gpus()
            raise
        finally:
            self._starting = False

    async def create_object(self):
        configured_create, configured_host = self.extra_create_kwargs, self.extra_host_config
        self.extra_create_kwargs = await self._with_required_create_kwargs(configured_create)
        self.extra_host_config = container_spec.required_host_config(
            self.gpu_uuids, self.shm_size, self.pids_limit, await self._evaluate(configured_host)
        )
        try:
            created = await super().create_object()
        finally:
            self.extra_create_kwargs, self.extra_host_config = configured_create, configured_host
        self.pool.allocator.confirm(self.object_name)
        return created

    async def _evaluate(self, value) -> dict:
        value = self._eval_if_callable(value)
        if inspect.isawaitable(value):
            value = await value
        return dict(value or {})

    async def _with_required_create_kwargs(self, configured) -> dict:
        create_kwargs = await self._evaluate(configured)
        create_kwargs["user"] = self.container_user
        create_kwargs["labels"] = {
            **(create_kwargs.get("labels") or {}),
            **labels.labels(self.prefix, self.user.name, self.name, self.gpu_uuids),
        }
        return create_kwargs

    def get_env(self):
        env = super().get_env()
        env.update(container_spec.gpu_environment(self.gpu_uuids))
        return env

    async def poll(self):
        await self._ensure_claims_loaded()
        status = await super().poll()
        if status is not None and not self._starting:
            self._release_gpus()
        return status

    async def stop(self, now=False):
        await super().stop(now=now)
        self._release_gpus()


def _container_name(container: dict) -> str:
    return container["Names"][0].lstrip("/")


_environments: dict[tuple[str, ...], Environment] = {}


def _templates(extra_paths: tuple[str, ...]) -> Environment:
    if extra_paths not in _environments:
        _environments[extra_paths] = Environment(
            loader=ChoiceLoader(
                [FileSystemLoader(list(extra_paths)), PackageLoader("gpuhub.spawner", "templates")]
            ),
            autoescape=True,
        )
    return _environments[extra_paths]
