"""The hub's short-lived helper containers: a copy, a chown, a listing on a volume.

Each runs one command as root with only the capabilities it needs (all
others dropped), no new privileges, no network, and is removed afterwards,
whatever happened. ``docker_call(method, *args, **kwargs)`` is an awaitable
docker-py ``APIClient`` call: the spawner's Docker threads, or a thread of
a command-line tool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from . import labels

Docker = Callable[..., Awaitable]


class HelperFailed(RuntimeError):
    """The helper exited non-zero; the message has its last lines of output."""


def host_config(binds: Sequence[str], capabilities: Sequence[str]) -> dict:
    return {
        "Binds": list(binds),
        "NetworkMode": "none",
        "CapDrop": ["ALL"],
        "CapAdd": list(capabilities),
        "SecurityOpt": ["no-new-privileges:true"],
    }


async def run_once(
    docker_call: Docker, *, image: str, command: Sequence[str], binds: Sequence[str],
    capabilities: Sequence[str], hub: str, name: str, what: str, timeout: float = 600,
) -> str:
    """Run ``command`` in a new container named ``name``; its output, or
    :class:`HelperFailed` saying ``what`` failed. The container is always removed."""
    helper = await docker_call(
        "create_container", image=image, command=list(command), user="0", name=name,
        labels={labels.HUB_LABEL: hub}, host_config=host_config(binds, capabilities),
        network_disabled=True,
    )
    try:
        await docker_call("start", helper["Id"])
        result = await docker_call("wait", helper["Id"], timeout=timeout)
        output = (await docker_call("logs", helper["Id"])).decode(errors="replace")
        if result.get("StatusCode") != 0:
            tail = "\n".join(output.strip().splitlines()[-5:])
            raise HelperFailed(f"{what} failed (exit {result.get('StatusCode')}): {tail}")
        return output
    finally:
        await docker_call("remove_container", helper["Id"], force=True)
