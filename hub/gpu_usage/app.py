"""The service application: traitlets settings, the sampler, the tornado app.

Started by the hub (``c.JupyterHub.services``) as ``python -m gpuhub.hub.gpu_usage``;
the hub sets JUPYTERHUB_SERVICE_URL/PREFIX, the API token and OAuth settings.
Settings: ``--GpuUsageApp.interval=10`` on the command line, or GPUHUB_USAGE_*
environment variables (the defaults below say which).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from urllib.parse import urlparse

from jinja2 import Environment, PackageLoader, select_autoescape
from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Float, Int, Unicode, default
from traitlets.config import Application

from . import SERVICE_NAME, handlers
from .metrics import UsageCollector, registry_for
from .sampler import Sampler
from .store import UsageStore
from .tracker import Tracker

env = os.environ.get


class GpuUsageApp(Application):
    name = "gpu-usage"
    description = "Who holds which GPU: pages, JSON API and Prometheus metrics for gpuhub."

    interval = Float(
        help="""Seconds between GPU samples (NVML + Docker). Default 5, or GPUHUB_USAGE_INTERVAL.

        c.GpuUsageApp.interval = 10
        """,
    ).tag(config=True)

    @default("interval")
    def _default_interval(self):
        return float(env("GPUHUB_USAGE_INTERVAL", "5"))

    history_seconds = Int(
        3600,
        help="""Seconds of per-GPU history kept in memory (sparklines, API ``window``). Default 3600.

        c.GpuUsageApp.history_seconds = 3600
        """,
    ).tag(config=True)

    idle_flag_seconds = Float(
        help="""A held GPU idle this long is flagged on the all-GPUs page. Default 1800
        (30 min), or GPUHUB_USAGE_IDLE_FLAG.

        c.GpuUsageApp.idle_flag_seconds = 3600
        """,
    ).tag(config=True)

    @default("idle_flag_seconds")
    def _default_idle_flag(self):
        return float(env("GPUHUB_USAGE_IDLE_FLAG", "1800"))

    busy_utilization = Int(
        5,
        help="""A GPU at or above this utilization % (or with a process on it) counts as busy.

        c.GpuUsageApp.busy_utilization = 10
        """,
    ).tag(config=True)

    state_dir = Unicode(
        help="""Where the GPU-hours database (gpu_usage.sqlite) lives: the hub's
        state dir, GPUHUB_STATE_DIR (default /srv/gpuhub).""",
    ).tag(config=True)

    @default("state_dir")
    def _default_state_dir(self):
        return env("GPUHUB_STATE_DIR", "/srv/gpuhub")

    metrics_token_file = Unicode(
        help="""File holding the token Prometheus sends (Authorization: Bearer …).
        Default GPUHUB_USAGE_METRICS_TOKEN_FILE, else <state_dir>/gpu_usage_metrics_token.""",
    ).tag(config=True)

    @default("metrics_token_file")
    def _default_metrics_token_file(self):
        return env("GPUHUB_USAGE_METRICS_TOKEN_FILE") or str(Path(self.state_dir) / "gpu_usage_metrics_token")

    container_prefix = Unicode(
        help="""Only containers whose name starts with this count as hub servers
        (one engine shared by several hubs). Default: all containers with gpuhub labels,
        or GPUHUB_USAGE_CONTAINER_PREFIX.""",
    ).tag(config=True)

    @default("container_prefix")
    def _default_container_prefix(self):
        return env("GPUHUB_USAGE_CONTAINER_PREFIX", "")

    service_name = Unicode(env("JUPYTERHUB_SERVICE_NAME", SERVICE_NAME))
    prefix = Unicode(env("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/"))
    service_url = Unicode(env("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8082"))

    @property
    def hub_prefix(self) -> str:
        return env("JUPYTERHUB_BASE_URL", "/") + "hub/"

    def hub_static(self, path: str) -> str:
        return url_path_join(self.hub_prefix, "static", path)

    def initialize(self, argv=None):
        super().initialize(argv)
        self.metrics_token = Path(self.metrics_token_file).read_text().strip()
        self.store = UsageStore(Path(self.state_dir) / "gpu_usage.sqlite")
        tracker = Tracker(window=self.history_seconds, busy_utilization=self.busy_utilization,
                          max_gap=max(60, 3 * self.interval))
        self.sampler = Sampler(self.store, tracker, self.interval, self.container_prefix, self.log)
        self.known_users: dict[str, tuple[float, bool]] = {}

    def make_app(self) -> web.Application:
        prefix = self.prefix
        route = lambda path: url_path_join(prefix, path)  # noqa: E731
        jinja = Environment(loader=PackageLoader("gpuhub.hub.gpu_usage", "templates"),
                            autoescape=select_autoescape())
        registry = registry_for(UsageCollector(lambda: self.sampler.latest, self.store.hours))
        return web.Application(
            [
                (prefix, handlers.MyGpusPage),
                (route("all"), handlers.AllGpusPage),
                (route("embed"), handlers.EmbedPage),
                (route("oauth_callback"), HubOAuthCallbackHandler),
                (route("api/me"), handlers.MeApi),
                (route("api/users/([^/]+)"), handlers.UserApi),
                (route("api/gpus"), handlers.GpusApi),
                (route("api/gpus/([^/]+)"), handlers.GpuApi),
                (route("api/(.*)"), handlers.NotFoundApi),
                (route("metrics"), handlers.MetricsHandler),
            ],
            usage=self,
            jinja=jinja,
            registry=registry,
            cookie_secret=os.urandom(32),
        )

    async def serve(self):
        url = urlparse(self.service_url)
        self.make_app().listen(url.port or 80, url.hostname or "127.0.0.1", xheaders=True)
        self.log.info("GPU usage at %s (sampling every %ss)", self.service_url, self.interval)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sampling = asyncio.create_task(self.sampler.run())
        await stop.wait()
        sampling.cancel()
        self.store.close()

    def start(self):
        asyncio.run(self.serve())


main = GpuUsageApp.launch_instance
