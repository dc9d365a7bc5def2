"""gpuhub: a JupyterHub deployment for GPU servers.

Installed, this namespace holds ``gpuhub.spawner``, ``gpuhub.hub`` and
``gpuhub.images`` (the wheel maps the repository's top-level folders here, see
pyproject.toml). In a source checkout (``pip install -e``, or ``pythonpath``
set to the checkout) the same names resolve to the top-level folders.
"""

from pathlib import Path

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "spawner" / "__init__.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821 -- a package's own __path__
