"""A setting's value checked by its trait's own rules, away from the object that
owns the trait (environment variables, group properties). No I/O.

``trait.from_string`` parses but does not check bounds (``Int(min=1)`` takes
"0"); assigning to an object checks everything the trait checks. This helper
assigns to a throwaway object that has only a copy of the trait.
"""

from __future__ import annotations

import copy
import math

from traitlets import HasTraits, TraitType


def trait_value(trait: TraitType, raw):
    """``raw`` (a string is parsed as on a command line) as ``trait`` holds it.

    Raises TraitError or ValueError, as the trait does, when it is refused, and
    ValueError for NaN and infinity, which bounds checks let through.
    """
    if isinstance(raw, str):
        raw = trait.from_string(raw.strip())
    holder = type("SettingCheck", (HasTraits,), {trait.name: copy.deepcopy(trait)})()
    setattr(holder, trait.name, raw)
    value = getattr(holder, trait.name)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value
