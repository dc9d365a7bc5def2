"""Spawner settings from JupyterHub group properties: checked, then merged. No I/O.

Admins edit a group's properties on the admin page or with
``PUT /hub/api/groups/{name}/properties``, e.g.
``{"gpu_quota": 2, "mem_limit": "32G", "gpu_share": 2}``; the spawner reads
them afresh at every spawn (``GPUDockerSpawner.apply_group_overrides``), so a
change needs no hub restart. Properties are shared with other tools (a
``description``): keys that are not in :data:`PROPERTIES` are ignored.

Values may be JSON numbers/lists or strings (the admin page stores strings),
and are checked by the spawner's own traits (``Int(min=0)``,
``ByteSpecification``, ...). A member of several groups gets the most
generous value of each key (:data:`PROPERTIES` says what that is per key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from traitlets import TraitError, TraitType

from .trait_values import trait_value


def _largest_zero_is_none(values):
    """0 means no limit (no lease, never reclaimed): the most generous of all."""
    return 0.0 if 0 in values else max(values)


def _all_models(values):
    """[] allows every model: the most generous; otherwise the union, in order."""
    if any(not models for models in values):
        return []
    return list(dict.fromkeys(model for models in values for model in models))


@dataclass(frozen=True)
class Property:
    allowed: str  # what a value may be, for the message that refuses one
    most_generous: object  # picks the value of a member of several groups
    positive: bool = False  # 0 is refused too (a size or a CPU count)


PROPERTIES: dict[str, Property] = {
    "gpu_quota": Property("a whole number of GPUs, 0 or more, e.g. 2", max),
    "default_gpus": Property("a whole number of GPUs, 0 or more, e.g. 1", max),
    "mem_limit": Property("a size with a suffix K, M, G or T, e.g. \"32G\"", max, positive=True),
    "cpu_limit": Property("a number of CPUs above 0, e.g. 4 or 0.5", max, positive=True),
    "gpu_share": Property("how many servers share one GPU: a whole number, 1 (exclusive) or more",
                          min),
    "gpu_models": Property("a list of GPU models such as [\"A100\", \"H100\"] or \"A100, H100\"; "
                           "[] or \"\" allows every model", _all_models),
    "gpu_lease": Property("seconds, 0 (no lease) or more, e.g. 28800", _largest_zero_is_none),
    "gpu_idle_timeout": Property("seconds, 0 (never reclaimed) or more, e.g. 3600",
                                 _largest_zero_is_none),
    "queue_priority": Property("a whole number; higher goes first in the GPU queue, e.g. 10",
                               max),
}


class BadGroupProperty(ValueError):
    """A group property gpuhub cannot use; the message names the group, the key,
    the value and what is allowed."""

    def __init__(self, group: str, key: str, value, allowed: str):
        self.group, self.key = group, key
        super().__init__(
            f"The group '{group}' has an invalid property {key} = {value!r}: "
            f"it must be {allowed}. Ask an admin to fix it (admin page, Groups, {group})."
        )


@dataclass
class GroupSettings:
    """What a user's groups set: ``values`` for the spawner's traits, the group
    that gave each value, and the property keys gpuhub ignored."""

    values: dict = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (group, key)

    def describe(self) -> str:
        """``gpu_quota=2 (class-a), mem_limit=34359738368 (class-a, staff)``"""
        return ", ".join(
            f"{key}={value!r} ({', '.join(self.sources[key])})" for key, value in self.values.items()
        )


def _parse(key: str, raw, trait: TraitType):
    """One property's value as the trait has it; TraitError/ValueError when refused."""
    if raw is None or isinstance(raw, bool) or callable(raw):
        raise ValueError("not a setting value")
    if key == "gpu_models":
        if isinstance(raw, str):
            raw = [model.strip() for model in raw.split(",") if model.strip()]
        if not isinstance(raw, list) or not all(isinstance(m, str) and m.strip() for m in raw):
            raise ValueError("not a list of model names")
        raw = [model.strip() for model in raw]
    elif not isinstance(raw, (str, int, float)):
        raise ValueError("not a number")
    value = trait_value(trait, raw)
    if PROPERTIES[key].positive and not value > 0:
        raise ValueError("not above 0")
    return value


def settings_from_groups(groups: Iterable, traits: Mapping[str, TraitType]) -> GroupSettings:
    """Merge the gpuhub keys of ``groups``' properties into trait values.

    ``groups``: objects with ``name`` and ``properties`` (JupyterHub's
    ``user.groups``); ``traits``: the spawner's traits by name (its
    ``traits()``). Raises :class:`BadGroupProperty` for the first bad value,
    groups taken in name order.
    """
    found: dict[str, list[tuple[str, object]]] = {}
    settings = GroupSettings()
    for group in sorted(groups, key=lambda g: g.name):
        for key, raw in sorted((getattr(group, "properties", None) or {}).items()):
            if key not in PROPERTIES or key not in traits:
                settings.ignored.append((group.name, key))
                continue
            try:
                value = _parse(key, raw, traits[key])
            except (TraitError, ValueError):
                raise BadGroupProperty(group.name, key, raw, PROPERTIES[key].allowed) from None
            found.setdefault(key, []).append((group.name, value))
    for key, given in found.items():
        value = PROPERTIES[key].most_generous([v for _, v in given])
        settings.values[key] = value
        # a union of models comes from every group; any other value from those that gave it
        union = key == "gpu_models" and value != []
        settings.sources[key] = [name for name, v in given if union or v == value]
    return settings
