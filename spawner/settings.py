"""GPUDockerSpawner's own settings: the traits it adds to DockerSpawner's. No I/O.

A mixin, so the settings read as one list and ``gpu_docker.py`` holds only
the lifecycle. Configure them as ``c.GPUDockerSpawner.<name>``; the help
strings are the reference (``GPUDockerSpawner.class_print_help()``).
"""

from __future__ import annotations

import os

from jupyterhub.traitlets import ByteSpecification
from traitlets import CaselessStrEnum, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from .gpu_status import DEFAULT_BUSY_MEMORY


class GPUSettings(Configurable):
    gpu_quota = Int(
        1,
        min=0,
        config=True,
        help="""Most GPUs a user may hold over all their servers (named servers
        too), and so the most one server may ask for. A start that would pass it
        is refused (HTTP 409) naming the servers that hold them.

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
        DEFAULT_BUSY_MEMORY,
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

    home_directory = Unicode(
        "/home/jovyan",
        config=True,
        help="""The notebook user's home in the container: where the default
        ``volumes`` mount the user's volume. Team and dataset folders and
        "Reset my environment" (``.local``, ``.jupyter``, … moved aside) go by
        where ``volumes`` mounts the user's volume: this, unless ``volumes``
        is set otherwise.

        Default: "/home/jovyan" (the Jupyter images' user)::

            c.GPUDockerSpawner.home_directory = "/home/student"
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

    hub_id = Unicode(
        config=True,
        help="""This hub's identity on the Docker engine: the ``gpuhub.hub`` label on
        its containers and volumes.

        Several hubs may share one engine: each needs its own ``prefix`` and
        ``hub_id``. GPUs named on any hub's live containers are never handed
        out twice; containers of this hub that no server of it accounts for
        are stopped by the reconcile. ``config/jupyterhub_config.py`` sets it
        from an id kept in the hub's state dir. Default: the ``prefix``::

            c.GPUDockerSpawner.hub_id = "physics-hub"
        """,
    )

    @default("hub_id")
    def _default_hub_id(self):
        return self.prefix

    reconcile_interval = Float(
        30.0,
        min=0.0,
        config=True,
        help="""Seconds between checks of the claim table against the engine.

        Each check drops claims of containers that are gone, expires claims of
        spawns that never made a container, and stops containers of this hub
        that no server of the hub accounts for (seen so twice in a row). 0
        turns the periodic check off (a refused spawn still checks). Default 30::

            c.GPUDockerSpawner.reconcile_interval = 60
        """,
    )

    prefix = Unicode(
        "gpuhub",
        config=True,
        help="""Prefix of this hub's container and volume names (``{prefix}-{username}``).

        Hubs sharing one Docker engine need different prefixes; a hub refuses
        to start when another hub's containers or volumes use its prefix.
        Default: "gpuhub"::

            c.GPUDockerSpawner.prefix = "physics"
        """,
    )

    docker_threads = Int(
        4,
        min=1,
        config=True,
        help="""Threads for Docker calls, shared by every server of the hub.

        DockerSpawner makes every Docker call on one thread, so one slow call
        (a large image pull) holds up every other spawn and stop. Default 4::

            c.GPUDockerSpawner.docker_threads = 8
        """,
    )


    image_registries = List(
        Unicode(),
        config=True,
        help="""Registries images may be pulled from; every other image must be on the host.

        The default image names Docker Hub's ``gpuhub`` namespace, which this
        project does not own: pulling it would run a stranger's image. So by
        default nothing is pulled, and a missing image is a spawn error saying
        how to build it (``make up`` / ``gpuhub images build``). Images of a
        listed registry are pulled as ``pull_policy`` says. "docker.io" allows
        Docker Hub. Default: []::

            c.GPUDockerSpawner.image_registries = ["registry.example.org"]
        """,
    )

    @validate("image_registries")
    def _validate_image_registries(self, proposal):
        for registry in proposal.value:
            if not registry or "/" in registry or registry != registry.strip():
                raise TraitError(
                    f"image_registries lists registry hosts such as 'registry.example.org' or "
                    f"'127.0.0.1:5000' (no scheme, no path), got {registry!r}."
                )
        return proposal.value

    deleted_user_volumes = CaselessStrEnum(
        ["archive", "remove"],
        default_value="archive",
        config=True,
        help="""What happens to a user's volumes when the user is deleted in the hub.

        Volumes are named after the user: kept as they are, a new user of the
        same name would inherit the files. "archive" copies each into a volume
        named ``{prefix}-archive-{username}-{UTC time}`` (labelled with the hub
        and the former user) and removes the original; "remove" deletes them.
        Default: "archive"::

            c.GPUDockerSpawner.deleted_user_volumes = "remove"
        """,
    )

    # ---- fair access (issue 10): the queue, sharing, models, reclaim ----
    gpu_share = Int(
        1,
        min=1,
        config=True,
        help="""Servers that may share one GPU (time-slicing); 1 means exclusive.

        Only servers with the same ``gpu_share`` share a GPU: an exclusive
        server never lands on a shared GPU, nor a shared one on an exclusive
        GPU. Memory is not partitioned between sharers: their servers get
        ``GPUHUB_GPU_MEMORY_FRACTION`` = 1/N, advisory. MIG devices are shared
        like whole GPUs. Per group with the group property ``gpu_share`` or
        ``group_overrides``. Default: 1 (``GPUHUB_GPU_SHARE``)::

            c.GPUDockerSpawner.gpu_share = 4
        """,
    )

    gpu_models = List(
        Unicode(),
        config=True,
        help="""GPU models users may ask for (``{"gpu_model": "A100"}``); [] allows every model.

        A model matches a GPU whose NVML name contains it, ignoring case
        ("A100" matches "NVIDIA A100-SXM4-80GB"). Per group with the group
        property ``gpu_models``. Default: []::

            c.GPUDockerSpawner.gpu_models = ["A100"]
        """,
    )

    gpu_lease = Float(
        0.0,
        min=0.0,
        config=True,
        help="""Seconds a server holding GPUs may run before it is stopped (files kept); 0: no lease.

        The user is warned in the hub before it ends. Per group with the
        group property ``gpu_lease`` or ``group_overrides``. Default: 0
        (``GPUHUB_GPU_LEASE``)::

            c.GPUDockerSpawner.gpu_lease = 8 * 3600
        """,
    )

    gpu_idle_timeout = Float(
        1800.0,
        min=0.0,
        config=True,
        help="""Seconds a server may hold GPUs it does not use before they are reclaimed; 0: never.

        Idle means: every GPU of the server below the utilization threshold
        through the whole window, and no kernel or terminal activity. The
        server is stopped with its files kept. Default: 1800
        (``GPUHUB_GPU_IDLE_TIMEOUT``)::

            c.GPUDockerSpawner.gpu_idle_timeout = 3600
        """,
    )

    queue_timeout = Float(
        1800.0,
        min=0.0,
        config=True,
        help="""Seconds a start may wait in line for GPUs; 0 refuses at once (HTTP 409).

        ``start_timeout`` is sized from it (``queue_timeout`` +
        ``START_ALLOWANCE``), so nobody's wait ends by surprise: a start
        that may wait in line gets the time to start after the wait too.
        Default: 1800 (``GPUHUB_QUEUE_TIMEOUT``)::

            c.GPUDockerSpawner.queue_timeout = 600
        """,
    )

    queue_priority = Int(
        0,
        config=True,
        help="""Place in the GPU queue: a start with a higher priority goes before
        those of lower priority that are waiting; equal priorities are first come,
        first served. Per group with the group property ``queue_priority``.
        Default: 0::

            c.GPUDockerSpawner.queue_priority = 10
        """,
    )

    start_concurrency = Int(
        min((os.cpu_count() or 1) + 1, 8),
        min=1,
        config=True,
        help="""Servers that may be coming up at once (container made, Jupyter not answering yet).

        Admission control: a burst of starts comes up a few at a time, each
        quickly, instead of all late together past ``http_timeout``. The
        others wait their turn and see their place. Default: the host's CPU
        count + 1 (one more start fills the moments a start waits on Docker or
        the network), at most 8::

            c.GPUDockerSpawner.start_concurrency = 4
        """,
    )

    queue_file = Unicode(
        "",
        config=True,
        help="""File where the hub keeps who waits in the GPU queue, so that after a
        restart each of them is told their place was lost; "" keeps no file.

        ``config/jupyterhub_config.py`` puts it in the hub's state dir::

            c.GPUDockerSpawner.queue_file = "/srv/gpuhub/gpu-queue.json"
        """,
    )

