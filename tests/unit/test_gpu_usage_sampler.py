"""The sampler: the servers from Docker's container list, and logging that
leaves other loggers (the spawner's NVML inventory among them) alone."""

import logging

from gpuhub.hub.gpu_usage.sampler import Sampler, servers_from_containers
from gpuhub.hub.gpu_usage.store import UsageStore
from gpuhub.hub.gpu_usage.tracker import Tracker


def levels() -> dict[str, int]:
    return {name: logger.level for name, logger in logging.Logger.manager.loggerDict.items()
            if isinstance(logger, logging.Logger)}


def test_the_sampler_silences_no_logger(tmp_path):
    before = levels()
    log = logging.getLogger("gpu-usage-test")
    sampler = Sampler(UsageStore(tmp_path / "usage.sqlite"), Tracker(), 5, "", log)
    after = levels()
    changed = {name: level for name, level in after.items() if before.get(name, logging.NOTSET) != level}
    assert changed == {}
    assert sampler.inventory.log is log  # NVML problems go to the service's own log


def test_servers_come_from_labels_and_the_name_prefix():
    containers = [
        {"Id": "a" * 64, "Names": ["/hub1-ann"], "Created": 100,
         "Labels": {"gpuhub.user": "ann", "gpuhub.server": "", "gpuhub.gpus": "GPU-0,GPU-1"}},
        {"Id": "b" * 64, "Names": ["/hub2-bob"], "Created": 200,
         "Labels": {"gpuhub.user": "bob", "gpuhub.gpus": ""}},
        {"Id": "c" * 64, "Names": ["/other"], "Labels": {"app": "x"}},
    ]
    servers = servers_from_containers(containers)
    assert [(s.user, s.gpus, s.created) for s in servers] == [
        ("ann", ("GPU-0", "GPU-1"), 100.0), ("bob", (), 200.0)]
    assert [s.user for s in servers_from_containers(containers, "hub1-")] == ["ann"]
