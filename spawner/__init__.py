"""gpuhub's spawner: DockerSpawner that hands out free GPUs by UUID.

``GPUDockerSpawner`` is imported on first use, so the neutral GPU modules
(``inventory``, ``labels``, …) load without DockerSpawner or tornado.
"""

__all__ = ["GPUDockerSpawner"]


def __getattr__(name):
    if name == "GPUDockerSpawner":
        from .gpu_docker import GPUDockerSpawner

        return GPUDockerSpawner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
