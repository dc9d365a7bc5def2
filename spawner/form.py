"""The spawn form: ``templates/options_form.html`` rendered with Jinja2.

Sites restyle it by putting their own ``options_form.html`` into a folder
listed in ``c.GPUDockerSpawner.options_form_template_paths`` (found first).
No I/O beyond reading the templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader

from .gpu_status import format_bytes
from .inventory import GPU
from .options import GPUModels


@lru_cache(maxsize=8)
def _environment(extra_paths: tuple[str, ...]) -> Environment:
    return Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(list(extra_paths)), PackageLoader("gpuhub.spawner", "templates")]
        ),
        autoescape=True,
    )


def render_form(extra_paths, **context) -> str:
    """The form's HTML; ``context``: the variables listed at the template's top."""
    return _environment(tuple(extra_paths)).get_template("options_form.html").render(**context)


def form_context(models: GPUModels, free: Sequence[GPU], share: int, mem_limit: int | None) -> dict:
    """The form's GPU variables: ``free`` are the devices a start of this user
    could get now (with ``share``: a shared GPU with a place counts)."""
    free_names = [gpu.name for gpu in free]
    return {
        "free": len(free),
        "total": models.count(),
        "gpu_names": ", ".join(models.usable),
        # (name, free, total) per model, offered when there is a choice
        "models": [
            (name, free_names.count(name), models.devices.count(name)) for name in models.usable
        ] if len(models.usable) > 1 else [],
        "share": share,
        "mem_limit": format_bytes(mem_limit) if mem_limit else "",
    }
