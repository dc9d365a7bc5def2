"""The hub's short-lived helper containers: a copy, a chown, a listing on a volume.

Each runs one command as root with only the capabilities it needs (all
others dropped), no new privileges, no network, and is removed afterwards,
whatever happened. ``docker_call(method, *args, **kwargs)`` is an awaitable
docker-py ``APIClient`` call: the spawner's Docker threads, or a thread of
a command-line tool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from . import labels

Docker = Callable[..., Awaitable]


class HelperFailed(RuntimeError):
    """The helper exited non-zero; the message has its last lines of output."""

    def __init__(self, message: str, output: str = ""):
        self.output = output  # all it printed
        super().__init__(message)


def create_kwargs(
    *, image: str, command: Sequence[str], binds: Sequence[str], capabilities: Sequence[str],
    hub: str, name: str, user: str = "0", entrypoint: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None, working_dir: str | None = None,
) -> dict:
    """docker-py's ``create_container`` keyword arguments of a helper (no I/O).
    ``entrypoint`` replaces the image's (e.g. start.sh): nothing but the command runs."""
    request = {
        "image": image, "command": list(command), "user": user, "name": name,
        "labels": {labels.HUB_LABEL: hub}, "network_disabled": True,
        "host_config": {
            "Binds": list(binds),
            "NetworkMode": "none",
            "CapDrop": ["ALL"],
            "CapAdd": list(capabilities),
            "SecurityOpt": ["no-new-privileges:true"],
        },
    }
    optional = {"entrypoint": entrypoint and list(entrypoint), "environment": environment and dict(environment),
                "working_dir": working_dir}
    return {**request, **{key: value for key, value in optional.items() if value}}


async def run(docker_call: Docker, request: dict, *, what: str, timeout: float = 600) -> str:
    """Run the helper ``request`` (:func:`create_kwargs`); its output, or
    :class:`HelperFailed` saying ``what`` failed. The container is always removed."""
    helper = await docker_call("create_container", **request)
    try:
        await docker_call("start", helper["Id"])
        result = await docker_call("wait", helper["Id"], timeout=timeout)
        output = (await docker_call("logs", helper["Id"])).decode(errors="replace")
        if result.get("StatusCode") != 0:
            tail = "\n".join(output.strip().splitlines()[-5:])
            raise HelperFailed(f"{what} failed (exit {result.get('StatusCode')}): {tail}", output)
        return output
    finally:
        await docker_call("remove_container", helper["Id"], force=True)


async def run_once(docker_call: Docker, *, what: str, timeout: float = 600, **settings) -> str:
    """:func:`run` of :func:`create_kwargs` (``settings``): a root helper by default."""
    return await run(docker_call, create_kwargs(**settings), what=what, timeout=timeout)
