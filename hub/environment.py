"""Settings from environment variables, applied only when a variable is set.

A trait's default stays its one default: the config names which variable
sets which trait, and a variable that is not set changes nothing. Values are
parsed and checked by the trait itself (as on a command line, plus its
bounds: ``Int(min=1)`` refuses "0"), so "16G", "4" or "2" mean what they
mean in ``c.X.y = …``, and a bad value stops the hub at start-up rather than
failing each spawn later. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from traitlets import TraitError
from traitlets.config import Config, Configurable

from gpuhub.spawner.trait_values import trait_value


def settings_from_environment(
    config: Config,
    table: Mapping[str, tuple[type[Configurable], str]],
    environ: Mapping[str, str],
) -> dict[str, str]:
    """Set ``config[Class][trait]`` for each ``NAME: (Class, trait)`` in ``table``
    whose variable is set in ``environ``. Returns the variables used.

    A value the trait cannot parse raises ValueError naming the variable.
    """
    used = {}
    for name, (cls, trait_name) in table.items():
        raw = environ.get(name)
        if raw is None:
            continue
        trait = cls.class_traits()[trait_name]
        try:
            value = trait_value(trait, raw)
        except (TraitError, ValueError) as error:
            raise ValueError(
                f"{name}={raw!r} is not a valid {cls.__name__}.{trait_name} ({error}); "
                f"fix or unset {name}") from None
        config[cls.__name__][trait_name] = value
        used[name] = raw
    return used
