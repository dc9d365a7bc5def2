"""The service application: traitlets settings, the sampler, the tornado app.

Started by the hub (``c.JupyterHub.services``, see :mod:`.wiring`) as
``python -m gpuhub.hub.gpu_usage``; the hub sets JUPYTERHUB_SERVICE_URL/PREFIX,
the API token and OAuth settings. Settings: ``--GpuUsageApp.interval=10`` on
the command line, or the environment variables in :data:`ENVIRONMENT` (used
only when set; each trait's default is the one default).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlparse

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, PrefixLoader, select_autoescape
from jupyterhub._data import DATA_FILES_PATH
from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Dict, Float, Int, List, Unicode, default, observe
from traitlets.config import Application, Config

from gpuhub.hub.environment import settings_from_environment
from gpuhub.spawner.gpu_status import DEFAULT_BUSY_MEMORY, DEFAULT_IN_USE_UTILIZATION

from . import HUB_TEMPLATES, SERVICE_NAME, cohort_handlers, handlers, lifecycle
from .cache import TTLCache
from .hub_groups import HubGroups
from .metrics import UsageCollector, registry_for
from .read_model import ReadModel
from .reclaim_log import ReclaimLog
from .activity_reporter import ActivityReporter
from .reclaimer import HubServers, Reclaimer
from .records import PeakRecord, QueueWaits
from .report import Figures
from .report_settings import ByteSize, ReportSettings
from .sampler import Sampler
from .storage import HomeSizes
from .store import UsageStore
from .tracker import Tracker

env = os.environ.get
STOCK_TEMPLATES = os.path.join(DATA_FILES_PATH, "templates")  # JupyterHub's own page.html


class GpuUsageApp(ReportSettings, Application):
    name = "gpu-usage"
    description = "Who holds which GPU: pages, JSON API and Prometheus metrics for gpuhub."

    interval = Float(
        5.0,
        help="""Seconds between GPU samples (NVML + Docker). Default 5 (GPUHUB_USAGE_INTERVAL).

        c.GpuUsageApp.interval = 10
        """,
    ).tag(config=True)

    history_seconds = Int(
        3600,
        help="""Seconds of per-GPU history kept in memory (sparklines, API ``window``). Default 3600.

        c.GpuUsageApp.history_seconds = 3600
        """,
    ).tag(config=True)

    idle_flag_seconds = Float(
        1800.0,
        help="""A held GPU idle this long is flagged on the all-GPUs page. Default 1800
        (30 min; GPUHUB_USAGE_IDLE_FLAG).

        c.GpuUsageApp.idle_flag_seconds = 3600
        """,
    ).tag(config=True)

    active_utilization = Int(
        DEFAULT_IN_USE_UTILIZATION,
        help="""A GPU at or above this utilization % (or with a process on it) is active
        (``gpu_status.in_use``); otherwise it is idle, and its idle time counts, for
        the pages and for GPU idle reclaim. Default 5.

        c.GpuUsageApp.active_utilization = 10
        """,
    ).tag(config=True)

    reclaim_interval = Float(
        30.0,
        help="""Seconds between GPU reclaim checks: servers whose GPUs were idle for
        their ``gpu_idle_timeout``, or whose ``gpu_lease`` ended, are stopped (files
        kept); idle means below ``active_utilization`` with no kernel or terminal
        activity. Each server's terms are its container's labels, from the spawner.
        Default 30 (GPUHUB_RECLAIM_INTERVAL).

        c.GpuUsageApp.reclaim_interval = 60
        """,
    ).tag(config=True)

    activity_interval = Float(
        300.0,
        help="""Seconds between reports to the hub that a server's GPU is in use, per
        server: a long job (in tmux, after the SSH client left) counts as activity,
        so jupyterhub-idle-culler does not stop it. ``configure_gpu_usage`` passes a
        quarter of the culler's GPUHUB_IDLE_TIMEOUT, at most 300. Default 300.

        c.GpuUsageApp.activity_interval = 120
        """,
    ).tag(config=True)

    lease_warning_seconds = Float(
        900.0,
        help="""Warn a user this many seconds before their server's GPU lease ends
        (on the hub's home page and My GPUs), at most a quarter of the lease.
        Default 900 (15 min; GPUHUB_LEASE_WARNING).

        c.GpuUsageApp.lease_warning_seconds = 1800
        """,
    ).tag(config=True)

    busy_utilization = Int(
        help="Deprecated name of active_utilization (\"busy\" now means what gpu_status says).",
    ).tag(config=True)

    @observe("busy_utilization")
    def _busy_utilization_renamed(self, change):
        self.log.warning("GpuUsageApp.busy_utilization is now GpuUsageApp.active_utilization")
        self.active_utilization = change.new

    busy_memory_threshold = ByteSize(
        DEFAULT_BUSY_MEMORY,
        help="""A GPU nobody holds with this much memory in use is *busy*, not free:
        the same rule as the spawner's. Default 1G (gpu_status.DEFAULT_BUSY_MEMORY).
        Sites that change ``c.GPUDockerSpawner.busy_memory_threshold`` get the same
        value here through ``configure_gpu_usage`` (GPUHUB_USAGE_BUSY_MEMORY).

        c.GpuUsageApp.busy_memory_threshold = "512M"
        """,
    ).tag(config=True)

    state_dir = Unicode(
        help="""The hub's state dir: the GPU-hours database (gpu_usage.sqlite), the
        metrics token and the service's pid file live there (GPUHUB_STATE_DIR). Required.

        c.GpuUsageApp.state_dir = "/srv/gpuhub"
        """,
    ).tag(config=True)

    metrics_token_file = Unicode(
        help="""File holding the token Prometheus sends (Authorization: Bearer …).
        Default <state_dir>/gpu_usage_metrics_token (GPUHUB_USAGE_METRICS_TOKEN_FILE).

        c.GpuUsageApp.metrics_token_file = "/srv/gpuhub/gpu_usage_metrics_token"
        """,
    ).tag(config=True)

    @default("metrics_token_file")
    def _default_metrics_token_file(self):
        return str(Path(self.state_dir) / "gpu_usage_metrics_token")

    pid_file = Unicode(
        help="""Where the running service writes its PID. A starting service stops the
        older copy named there first (after a hub crash). Default <state_dir>/gpu_usage.pid.

        c.GpuUsageApp.pid_file = "/run/gpuhub/gpu_usage.pid"
        """,
    ).tag(config=True)

    @default("pid_file")
    def _default_pid_file(self):
        return str(Path(self.state_dir) / "gpu_usage.pid")

    container_prefix = Unicode(
        "",
        help="""Only containers whose name starts with this count as hub servers
        (one engine shared by several hubs). Default "": every container with gpuhub
        labels (GPUHUB_USAGE_CONTAINER_PREFIX).

        c.GpuUsageApp.container_prefix = "gpuhub-"
        """,
    ).tag(config=True)

    hub_id = Unicode(
        "",
        help="""The hub's ``c.GPUDockerSpawner.hub_id`` (the ``gpuhub.hub`` label): GPU
        reclaim stops only this hub's servers, never those of another hub on the
        same Docker engine. ``configure_gpu_usage`` passes the hub's. Default "":
        every labelled server (one hub per engine).

        c.GpuUsageApp.hub_id = "gpuhub-3f2a9c01b2d4"
        """,
    ).tag(config=True)

    hub_template_paths = List(
        Unicode(),
        [HUB_TEMPLATES],
        help="""The hub's ``c.JupyterHub.template_paths``: the pages render inside the
        hub's page.html found there (JupyterHub's own is searched last), so they have
        the hub's top bar. ``configure_gpu_usage`` passes the hub's list.

        c.GpuUsageApp.hub_template_paths = ["/etc/gpuhub/templates", "…/gpuhub/hub/templates"]
        """,
    ).tag(config=True)

    hub_template_vars = Dict(
        Unicode(),
        help="""The hub's ``c.JupyterHub.template_vars`` (text values): its page.html may
        read them (gpuhub's extends NativeAuthenticator's page through one).
        ``configure_gpu_usage`` passes the hub's.

        c.GpuUsageApp.hub_template_vars = {"gpuhub_parent_page": "nativeauthenticator/templates/page.html"}
        """,
    ).tag(config=True)

    # Set by the hub for its managed services.
    service_name = Unicode()
    prefix = Unicode()
    service_url = Unicode()  # where to listen
    base_url = Unicode()

    @default("service_name")
    def _default_service_name(self):
        return env("JUPYTERHUB_SERVICE_NAME", SERVICE_NAME)

    @default("prefix")
    def _default_prefix(self):
        return env("JUPYTERHUB_SERVICE_PREFIX", f"/services/{self.service_name}/")

    @default("service_url")
    def _default_service_url(self):
        return env("JUPYTERHUB_SERVICE_URL", "")

    @default("base_url")
    def _default_base_url(self):
        return env("JUPYTERHUB_BASE_URL", "/")

    def initialize(self, argv=None):
        # Environment first, so the command line (the hub's wiring) wins.
        environment = Config()
        try:
            settings_from_environment(environment, ENVIRONMENT, os.environ)
        except ValueError as error:
            self.exit_with(str(error))
        self.update_config(environment)
        super().initialize(argv)
        if not self.state_dir:
            self.exit_with("state_dir is not set: pass --GpuUsageApp.state_dir=DIR or set GPUHUB_STATE_DIR")
        if not self.service_url:
            self.exit_with("JUPYTERHUB_SERVICE_URL is not set: the hub starts this service "
                           "(config/jupyterhub_config.py, configure_gpu_usage)")
        self.metrics_token = Path(self.metrics_token_file).read_text().strip()
        self.store = UsageStore(Path(self.state_dir) / "gpu_usage.sqlite")
        self.tracker = Tracker(window=self.history_seconds, active_utilization=self.active_utilization,
                               max_gap=max(60, 3 * self.interval),
                               busy_memory=self.busy_memory_threshold)
        database = Path(self.state_dir) / "gpu_usage.sqlite"
        self.groups = HubGroups(env("JUPYTERHUB_API_URL", ""), env("JUPYTERHUB_API_TOKEN", ""),
                                self.groups_interval, self.log)
        self.peaks = PeakRecord(database, lambda: self.groups.members)
        self.queue_waits = QueueWaits(database)
        self.homes = HomeSizes(database, self.storage_interval, self.log)
        self.sampler = Sampler(self.store, self.tracker, self.interval, self.container_prefix, self.log,
                               home_path=self.home_path, recorders=(self.peaks, self.queue_waits, self.homes))
        self.reclaim_log = ReclaimLog(database)
        hub_servers = HubServers(env("JUPYTERHUB_API_URL", ""), env("JUPYTERHUB_API_TOKEN", ""))
        self.reclaimer = Reclaimer(
            lambda: self.tracker.latest, hub_servers,
            self.reclaim_log, self.reclaim_interval, self.lease_warning_seconds,
            max_sample_age=max(60, 3 * self.interval), hub_id=self.hub_id, log=self.log,
        )
        self.activity = ActivityReporter(
            lambda: self.tracker.latest, hub_servers, self.activity_interval, period=self.interval,
            max_sample_age=max(60, 3 * self.interval), hub_id=self.hub_id, log=self.log,
        )

    def exit_with(self, message: str):
        self.log.critical("gpu-usage: %s", message)
        sys.exit(2)

    def figures(self) -> Figures:
        """Everything the cohort report reads, now."""
        return Figures(hours=self.store.total_hours(), user_peaks=self.peaks.peaks("user"),
                       group_peaks=self.peaks.peaks("group"), waits=self.queue_waits.totals(),
                       reclaims=self.reclaim_log.counts(), home_bytes=self.homes.by_user(),
                       soft_limit=self.home_soft_limit or 0)

    def read_model(self) -> ReadModel:
        hub_prefix = url_path_join(self.base_url, "hub/")
        return ReadModel(
            latest=lambda: self.tracker.latest,
            history=self.tracker.history,
            store=self.store,
            reclaims=self.reclaim_log,
            lease_warnings=lambda: self.reclaimer.warnings,
            known_users=TTLCache(maxsize=4096, ttl=60),
            idle_flag_seconds=self.idle_flag_seconds,
            interval=self.interval,
            service_name=self.service_name,
            prefix=self.prefix,
            base_url=self.base_url,
            hub_prefix=hub_prefix,
            hub_static=lambda path, include_version=True: url_path_join(hub_prefix, "static", path),
            metrics_token=self.metrics_token,
            cohorts=self.groups,
            figures=self.figures,
            home_size=self.homes.size_of,
            soft_limit=self.home_soft_limit or 0,
        )

    def jinja_environment(self) -> Environment:
        """The service's pages, then the hub's page.html (site and gpuhub overrides
        first, JupyterHub's own last, also as ``templates/…`` as the hub has it)."""
        loader = ChoiceLoader([
            PackageLoader("gpuhub.hub.gpu_usage", "templates"),
            PrefixLoader({"templates": FileSystemLoader([STOCK_TEMPLATES])}, "/"),
            FileSystemLoader([*self.hub_template_paths, STOCK_TEMPLATES]),
        ])
        environment = Environment(loader=loader, autoescape=select_autoescape())
        environment.globals.update(self.hub_template_vars)  # as the hub does with template_vars
        return environment

    def make_app(self) -> web.Application:
        prefix = self.prefix
        route = lambda path: url_path_join(prefix, path)  # noqa: E731
        registry = registry_for(UsageCollector(lambda: self.tracker.latest, self.store.total_hours))
        return web.Application(
            [
                (prefix, handlers.MyGpusPage),
                (route("all"), handlers.AllGpusPage),
                (route("embed"), handlers.EmbedPage),
                (route("oauth_callback"), HubOAuthCallbackHandler),
                (route("cohorts"), cohort_handlers.CohortsPage),
                (route("cohorts/([^/]+)"), cohort_handlers.CohortPage),
                (route("api/cohorts/([^/]+)/report"), cohort_handlers.CohortReportApi),
                (route(r"api/cohorts/([^/]+)/report\.csv"), cohort_handlers.CohortReportCsv),
                (route("api/me"), handlers.MeApi),
                (route("api/users/([^/]+)"), handlers.UserApi),
                (route("api/gpus"), handlers.GpusApi),
                (route("api/gpus/([^/]+)"), handlers.GpuApi),
                (route("api/(.*)"), handlers.NotFoundApi),
                (route("metrics"), handlers.MetricsHandler),
            ],
            usage=self.read_model(),
            jinja=self.jinja_environment(),
            registry=registry,
            cookie_secret=os.urandom(32),
        )

    async def serve(self):
        parent = os.getppid()  # the hub; read first, before it can be gone
        pid_file = Path(self.pid_file)
        lifecycle.take_over(pid_file, self.log)
        url = urlparse(self.service_url)
        server = self.make_app().listen(url.port or 80, url.hostname or "127.0.0.1", xheaders=True)
        self.log.info("GPU usage at %s (sampling every %ss)", self.service_url, self.interval)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tasks = [asyncio.create_task(self.sampler.run()),
                 asyncio.create_task(self.reclaimer.run()),
                 asyncio.create_task(self.activity.run()),
                 asyncio.create_task(self.groups.run()),
                 asyncio.create_task(self.homes.run()),
                 asyncio.create_task(lifecycle.watch_parent(parent, stop, self.log))]
        try:
            await stop.wait()
        finally:
            server.stop()
            for task in tasks:
                task.cancel()
            self.store.close()
            self.reclaim_log.close()
            for record in (self.peaks, self.queue_waits, self.homes):
                record.close()
            lifecycle.release(pid_file)

    def start(self):
        asyncio.run(self.serve())


# Environment variables the service reads, each only when set (README: hub/README.md).
ENVIRONMENT = {
    "GPUHUB_USAGE_INTERVAL": (GpuUsageApp, "interval"),
    "GPUHUB_USAGE_IDLE_FLAG": (GpuUsageApp, "idle_flag_seconds"),
    "GPUHUB_USAGE_CONTAINER_PREFIX": (GpuUsageApp, "container_prefix"),
    "GPUHUB_USAGE_BUSY_MEMORY": (GpuUsageApp, "busy_memory_threshold"),
    "GPUHUB_USAGE_METRICS_TOKEN_FILE": (GpuUsageApp, "metrics_token_file"),
    "GPUHUB_RECLAIM_INTERVAL": (GpuUsageApp, "reclaim_interval"),
    "GPUHUB_LEASE_WARNING": (GpuUsageApp, "lease_warning_seconds"),
    "GPUHUB_STATE_DIR": (GpuUsageApp, "state_dir"),
    "GPUHUB_USAGE_GROUPS_INTERVAL": (GpuUsageApp, "groups_interval"),
    "GPUHUB_USAGE_STORAGE_INTERVAL": (GpuUsageApp, "storage_interval"),
    "GPUHUB_HOME_SOFT_LIMIT": (GpuUsageApp, "home_soft_limit"),
}

main = GpuUsageApp.launch_instance
