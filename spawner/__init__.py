"""gpuhub's spawner: DockerSpawner that hands out free GPUs by UUID."""

from .gpu_docker import GPUDockerSpawner

__all__ = ["GPUDockerSpawner"]
