"""``gpuhub datasets add PATH [--name NAME]`` and ``gpuhub datasets list``: fill
and show the shared datasets volume, which every server sees read-only at
``~/datasets`` (``c.GPUDockerSpawner.datasets_volume``).

Talks to the Docker engine directly (``DOCKER_HOST``), with the hub's own
settings: ``GPUHUB_PREFIX``, ``GPUHUB_DATASETS_VOLUME``, ``GPUHUB_IMAGE``,
``GPUHUB_STATE_DIR`` (the hub's id labels a volume it creates). A one-shot
helper container (``spawner/helper_container.py``: root with only
DAC_OVERRIDE, to read the admin's files; no network, no new privileges)
copies the host path, bind-mounted read-only, into the volume and makes it
readable by every user (``a+rX``). Nothing is copied over an existing name
unless ``--replace`` says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shlex
import sys
from pathlib import Path

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
LIST_SCRIPT = (  # one line per entry: KiB, files, name
    'cd /d && for e in * .[!.]*; do [ -e "$e" ] || continue; '
    'printf "%s\\t%s\\t%s\\n" "$(du -sk "$e" | cut -f1)" "$(find "$e" -type f | wc -l)" "$e"; done'
)


class DatasetsError(Exception):
    """Something the admin can fix; the message says what."""


def parser() -> argparse.ArgumentParser:
    from gpuhub.spawner.settings import GPUSettings
    from gpuhub.spawner.shared_volumes import DATASETS_VOLUME

    prefix = os.environ.get("GPUHUB_PREFIX") or GPUSettings.prefix.default_value
    volume = os.environ.get("GPUHUB_DATASETS_VOLUME") or DATASETS_VOLUME
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--prefix", default=prefix, help=f"the hub's name prefix (default: $GPUHUB_PREFIX "
                        f"or {GPUSettings.prefix.default_value!r}; now {prefix!r})")
    common.add_argument("--volume", default=volume, help="the datasets volume; {prefix} is the prefix "
                        f"(default: $GPUHUB_DATASETS_VOLUME or {DATASETS_VOLUME!r})")
    common.add_argument("--image", default=os.environ.get("GPUHUB_IMAGE"),
                        help="an image on the engine with sh, cp and find: the hub's notebook image "
                        "(default: $GPUHUB_IMAGE)")
    common.add_argument("--hub-id", help="the hub's id, to label a volume this command creates "
                        "(default: <$GPUHUB_STATE_DIR>/hub_id, or the id on the hub's volumes)")
    top = argparse.ArgumentParser(prog="gpuhub datasets", description=__doc__.split("\n\n")[0])
    actions = top.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", parents=[common], help="copy a host file or folder into ~/datasets")
    add.add_argument("path", help="a file or folder on this host")
    add.add_argument("--name", help="its name in ~/datasets (default: the path's last part)")
    add.add_argument("--replace", action="store_true", help="replace an entry of that name")
    actions.add_parser("list", parents=[common], help="what ~/datasets holds")
    return top


def _docker():
    """An awaitable docker-py APIClient call, on a thread (``helper_container.Docker``)."""
    import docker

    api = docker.from_env().api  # honours DOCKER_HOST

    async def call(method, *args, **kwargs):
        return await asyncio.to_thread(getattr(api, method), *args, **kwargs)

    return call


def hub_id_for(args, docker_call_sync) -> str:
    """The id that labels the hub's volumes: --hub-id, the state dir's, or the engine's."""
    if args.hub_id:
        return args.hub_id
    state_dir = os.environ.get("GPUHUB_STATE_DIR")
    if state_dir and (Path(state_dir) / "hub_id").is_file():
        return (Path(state_dir) / "hub_id").read_text().strip()
    from gpuhub.hub.identity import others_using_prefix

    ids = list(others_using_prefix(docker_call_sync(), args.prefix, hub_id=""))
    if len(ids) == 1:
        return ids[0]
    raise DatasetsError(
        f"cannot tell which hub owns the prefix {args.prefix!r}: set GPUHUB_STATE_DIR to the "
        "hub's state dir (its hub_id file) or pass --hub-id")


async def volume_hub(docker_call, args, volume: str, create: bool) -> str | None:
    """The hub id on the datasets volume (helpers carry it too: a container named
    with the hub's prefix but another id would stop the hub from starting).
    A missing volume is created when ``create``; None otherwise."""
    import docker
    import docker.errors

    from gpuhub.spawner.labels import HUB_LABEL
    from gpuhub.spawner.shared_volumes import datasets_labels

    try:
        found = await docker_call("inspect_volume", volume)
        return (found.get("Labels") or {}).get(HUB_LABEL) or hub_id_for(args, docker.from_env)
    except docker.errors.NotFound:
        if not create:
            return None
    hub = hub_id_for(args, docker.from_env)
    await docker_call("create_volume", name=volume, labels=datasets_labels(hub))
    print(f"created the datasets volume {volume} (hub {hub})")
    return hub


async def entries(docker_call, args, volume: str, hub: str) -> list[tuple[int, int, str]]:
    """(KiB, files, name) of each top-level entry of the volume."""
    from gpuhub.spawner.helper_container import run_once

    output = await run_once(
        docker_call, image=args.image, command=["sh", "-c", LIST_SCRIPT], binds=[f"{volume}:/d:ro"],
        capabilities=[], hub=hub, name=f"{volume}-list-{secrets.token_hex(3)}",
        what=f"listing volume {volume}", timeout=600,
    )
    found = []
    for line in output.splitlines():
        size, files, name = line.split("\t", 2)
        found.append((int(size), int(files), name))
    return found


def checked_source(path: str, name: str | None) -> tuple[Path, str]:
    """The host path to copy and its name in ~/datasets, or DatasetsError saying why not."""
    source = Path(path).resolve()
    if not source.exists():
        raise DatasetsError(f"{path}: no such file or folder on this host")
    if ":" in str(source) or "," in str(source):
        raise DatasetsError(f"{source}: Docker cannot mount a path with ':' or ',': "
                            "copy or link it to a path without them first")
    name = name or source.name
    if not NAME.match(name):
        raise DatasetsError(f"--name {name!r}: a name is letters, digits and . _ + -, "
                            "not starting with . or -, e.g. --name cifar-10")
    return source, name


async def add(docker_call, args, volume: str) -> None:
    from gpuhub.spawner.helper_container import run_once

    source, name = checked_source(args.path, args.name)
    hub = await volume_hub(docker_call, args, volume, create=True)
    there = {entry for _, _, entry in await entries(docker_call, args, volume, hub)}
    if name in there and not args.replace:
        raise DatasetsError(f"{name!r} is already in ~/datasets (volume {volume}): pass --replace "
                            "to replace it, or choose another --name")
    target = shlex.quote(f"/to/{name}")
    script = (f"set -e; rm -rf {target}; cp -R {shlex.quote(f'/from/{name}')} {target}; "
              f"chmod -R a+rX,go-w {target}; find {target} -type f | wc -l; du -sk {target} | cut -f1")
    output = await run_once(
        docker_call, image=args.image, command=["sh", "-c", script],
        binds=[f"{source}:/from/{name}:ro", f"{volume}:/to:rw"], capabilities=["DAC_OVERRIDE"],
        hub=hub, name=f"{volume}-add-{secrets.token_hex(3)}",
        what=f"copying {source} into volume {volume}", timeout=24 * 3600,
    )
    files, kib = (int(n) for n in output.split()[-2:])
    print(f"copied {source} into ~/datasets/{name} (volume {volume}): {files} file(s), "
          f"{kib / 1024:.1f} MiB, readable by every user, read-only in their servers")


async def run(args) -> None:
    if not args.image:
        raise DatasetsError("name an image on the engine to run the copy in: --image or GPUHUB_IMAGE "
                            "(the hub's notebook image)")
    if args.action == "add":
        checked_source(args.path, args.name)  # before any Docker call
    volume = args.volume.format(prefix=args.prefix)
    docker_call = _docker()
    if args.action == "add":
        await add(docker_call, args, volume)
        return
    hub = await volume_hub(docker_call, args, volume, create=False)
    found = await entries(docker_call, args, volume, hub) if hub else []
    if not found:
        print(f"~/datasets is empty (volume {volume}{'' if hub else ': not created yet'})")
    for kib, files, name in found:
        print(f"{name}\t{files} file(s)\t{kib / 1024:.1f} MiB")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    import docker.errors

    try:
        asyncio.run(run(args))
    except DatasetsError as error:
        print(f"gpuhub datasets: {error}", file=sys.stderr)
        return 2
    except docker.errors.DockerException as error:
        where = os.environ.get("DOCKER_HOST", "unset")
        print(f"gpuhub datasets: Docker refused: {error} (DOCKER_HOST={where})", file=sys.stderr)
        return 1
    except RuntimeError as error:  # a helper that failed: its own words
        print(f"gpuhub datasets: {error}", file=sys.stderr)
        return 1
    return 0
