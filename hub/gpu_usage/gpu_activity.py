"""Long jobs count as active: which servers' GPUs are at work, so that the hub
hears of it. Pure, no I/O; :class:`.activity_reporter.ActivityReporter` reports.

jupyterhub-idle-culler (``GPUHUB_IDLE_TIMEOUT``) judges a server by the hub's
``last_activity`` alone: kernels, terminals, requests through the proxy, SSH
connections. A training job left running in ``tmux`` or under ``nohup`` after
the browser tab or the SSH client went away shows none of those, and would be
stopped mid-run. So a server whose GPU is in use
(:func:`gpuhub.spawner.gpu_status.in_use`, as the sampler saw it) is reported
active, as of the sample that saw it, at most every ``interval`` seconds.

On a GPU that several servers share, the utilization belongs to none of them
in particular: only compute processes attributed to the server's own
container count there, so a neighbour's job does not keep an idle server.
(GPU idle reclaim is not changed by this: it already keeps a server whose
GPU is in use, :func:`.reclaim.decide`; the time reported is never later than
that use, so it does not move reclaim's idle window either.)
"""

from __future__ import annotations

from collections.abc import Mapping

from gpuhub.spawner.gpu_status import in_use

from .tracker import Sample, Server


def gpus_in_use(sample: Sample, server: Server) -> bool:
    """Whether any of ``server``'s GPUs is in use in ``sample``."""
    for uuid in server.gpus:
        device = sample.device(uuid)
        if device is None or not device.gpu.healthy:
            continue  # no reading: nobody can say it is used
        if server.share <= 1:
            if device.active:
                return True
            continue
        own = sum(1 for process in device.processes
                  if process.holder is not None and process.holder.container_id == server.container_id)
        if in_use(None, own):
            return True
    return False


def due(sample: Sample, last_reported: Mapping[str, float], interval: float,
        hub_id: str = "") -> list[Server]:
    """This hub's servers (all labelled ones when ``hub_id`` is "") whose GPUs are
    in use in ``sample`` and whose activity was last reported (by container ID,
    as of a sample's time) at least ``interval`` seconds before it, or never."""
    return [
        server for server in sample.servers
        if server.gpus and (not hub_id or server.hub == hub_id)
        and sample.time - last_reported.get(server.container_id, float("-inf")) >= interval
        and gpus_in_use(sample, server)
    ]
