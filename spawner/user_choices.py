"""What a user may choose when starting a server, and what their groups give them.

A mixin of :class:`~gpuhub.spawner.gpu_docker.GPUDockerSpawner`: the spawn
form, the check of user options (form or REST), ``group_overrides`` and group
properties applied afresh at each spawn. The rules themselves are pure and
live beside it (``options.py``, ``group_properties.py``, ``form.py``).
"""

from __future__ import annotations

import copy
import inspect

from .allocator import GPURequest
from .form import form_context, render_form
from .group_properties import PROPERTIES, BadGroupProperty, GroupSettings, settings_from_groups
from .options import GPULimit, GPUModels, InvalidOptions, parse_request
from .user_errors import UserMistake, log_user_mistakes_once


class UserChoices:
    _values_before_overrides: dict = {}

    async def apply_group_overrides(self):
        """Apply ``group_overrides``, then the groups' properties, afresh: a user
        who left a group, or whose group lost a property, loses its settings.

        JupyterHub sets overrides on the spawner object, which lives as long
        as the hub; without a reset a quota raised for a group would stick.
        Properties (``group_properties.py``) win over ``group_overrides`` on
        the same setting: they are what admins change while the hub runs.
        """
        # the first spawn may fail here, before the pool (which installs the filter) is made
        log_user_mistakes_once(self.log)
        for name, value in self._values_before_overrides.items():
            setattr(self, name, value)
        from_properties = self._settings_from_group_properties()
        self._check_cohort_window()  # cohort_spaces.py: outside its dates a cohort's member waits
        overrides = self.group_overrides
        if callable(overrides):
            overrides = overrides(self)
            if inspect.isawaitable(overrides):
                overrides = await overrides
        # "image" too: DockerSpawner.start keeps a chosen image on the spawner, and
        # the next start must not run it again unless it is chosen and allowed again.
        names = {"image"} | {n for o in overrides.values() for n in o.get("spawner_override", {})}
        names |= set(from_properties.values)
        self._values_before_overrides = {n: copy.deepcopy(getattr(self, n)) for n in names}
        await super().apply_group_overrides()
        if from_properties.values:
            self.log.info("Group properties for %s: %s", self._log_name, from_properties.describe())
            for name, value in from_properties.values.items():
                setattr(self, name, value)

    _ignored_properties_said: set[tuple[str, str]] = set()  # (group, key), logged once per hub

    def _settings_from_group_properties(self) -> GroupSettings:
        try:
            settings = settings_from_groups(self.user.groups, self.traits())
        except BadGroupProperty as error:
            raise UserMistake(400, str(error)) from None
        for group, key in sorted(set(settings.ignored) - self._ignored_properties_said):
            self._ignored_properties_said.add((group, key))
            self.log.info("Group %s: property %r is not a gpuhub setting, ignored (gpuhub reads %s)",
                          group, key, ", ".join(PROPERTIES))
        return settings

    def _allowed_image_names(self) -> list[str]:
        return list(self._get_allowed_images() or {})

    def _gpu_models(self, inventory) -> GPUModels:
        names = tuple(gpu.name for gpu in inventory.healthy)
        return GPUModels(names, tuple(self.gpu_models), known=inventory.nvml_available)

    def _gpu_limit(self, inventory) -> GPULimit:
        host_gpus = self._gpu_models(inventory).count() if inventory.nvml_available else None
        return GPULimit.of(self.gpu_quota, host_gpus)

    def _default_gpu_count(self, inventory) -> int:
        """``default_gpus``, capped by the quota and the healthy GPUs the user may use."""
        return min(self.default_gpus, self.gpu_quota, self._gpu_models(inventory).count())

    @staticmethod
    async def apply_gpu_options(spawner, user_options: dict):
        """Check user options against the quota; answer bad input with HTTP 400."""
        inventory = await spawner.pool.inventory.snapshot()
        try:
            request = parse_request(
                user_options or {},
                spawner._gpu_limit(inventory),
                spawner._default_gpu_count(inventory),
                spawner._allowed_image_names(),
                spawner._gpu_models(inventory),
            )
        except InvalidOptions as error:
            raise UserMistake(400, str(error)) from None
        spawner.gpu_request = request.gpus

    def options_from_query(self, query_data):
        # JupyterHub starts a server from GET /hub/spawn?gpus=4 query arguments:
        # a link on any site would make a logged-in user hold GPUs. GET shows the form.
        raise UserMistake(400, "A link cannot start a server: choose the options below and press Start.")

    async def render_options_form(self) -> str:
        await self.apply_group_overrides()
        request = GPURequest(1, share=self.gpu_share, allowed_models=tuple(self.gpu_models))
        free, inventory = await self.pool.offer(self.busy_memory_threshold, request)
        return render_form(
            self.options_form_template_paths,
            notice=await self.pool.notice_for(self.server_key),
            queue_minutes=round(self.queue_timeout / 60),
            quota=self.gpu_quota,
            offered=self._gpu_limit(inventory).most if inventory.nvml_available else 0,
            default_gpus=self._default_gpu_count(inventory),
            nvml_available=inventory.nvml_available,
            unavailable_reason=inventory.unavailable_reason,
            images=self._allowed_image_names(),
            image=self.image,
            **form_context(self._gpu_models(inventory), free, self.gpu_share,
                           None if callable(self.mem_limit) else self.mem_limit),
        )
