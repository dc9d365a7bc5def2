"""The spawn form: ``templates/options_form.html`` rendered with Jinja2.

Sites restyle it by putting their own ``options_form.html`` into a folder
listed in ``c.GPUDockerSpawner.options_form_template_paths`` (found first).
No I/O beyond reading the templates.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader


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
