"""Group properties (spawner/group_properties.py): checked by the spawner's own
traits, ignored when not gpuhub's, merged most-generously across groups; and
applied by GPUDockerSpawner.apply_group_overrides afresh at every spawn."""

from types import SimpleNamespace

import pytest

from gpuhub.spawner import GPUDockerSpawner
from gpuhub.spawner.group_properties import PROPERTIES, BadGroupProperty, settings_from_groups
from gpuhub.spawner.user_errors import UserMistake
from tests.unit.test_spawner_config import make_spawner

GIB = 1 << 30
TRAITS = GPUDockerSpawner.class_traits()


def group(name, **properties):
    return SimpleNamespace(name=name, properties=properties)


def test_every_property_is_a_spawner_trait():
    assert set(PROPERTIES) <= set(TRAITS)


def test_json_values_and_the_admin_pages_strings_mean_the_same():
    as_json = group("a", gpu_quota=2, default_gpus=0, mem_limit="32G", cpu_limit=2.5, gpu_share=2,
                    gpu_models=["A100", "H100"], gpu_lease=3600, gpu_idle_timeout=0,
                    queue_priority=-1)
    as_text = group("a", gpu_quota="2", default_gpus=" 0", mem_limit="32G", cpu_limit="2.5",
                    gpu_share="2", gpu_models="A100, H100", gpu_lease="3600",
                    gpu_idle_timeout="0", queue_priority="-1")
    expected = {"gpu_quota": 2, "default_gpus": 0, "mem_limit": 32 * GIB, "cpu_limit": 2.5,
                "gpu_share": 2, "gpu_models": ["A100", "H100"], "gpu_lease": 3600.0,
                "gpu_idle_timeout": 0.0, "queue_priority": -1}
    assert settings_from_groups([as_json], TRAITS).values == expected
    assert settings_from_groups([as_text], TRAITS).values == expected


@pytest.mark.parametrize("key, value, allowed", [
    ("gpu_quota", -1, "a whole number of GPUs, 0 or more"),
    ("gpu_quota", "lots", "a whole number of GPUs, 0 or more"),
    ("gpu_quota", 1.5, "a whole number of GPUs, 0 or more"),
    ("gpu_quota", True, "a whole number of GPUs, 0 or more"),
    ("gpu_quota", None, "a whole number of GPUs, 0 or more"),
    ("default_gpus", "-2", "a whole number of GPUs, 0 or more"),
    ("mem_limit", "lots", 'a size with a suffix K, M, G or T, e.g. "32G"'),
    ("mem_limit", "0", "a size with a suffix"),
    ("mem_limit", [1], "a size with a suffix"),
    ("cpu_limit", "0", "a number of CPUs above 0"),
    ("cpu_limit", "two", "a number of CPUs above 0"),
    ("gpu_share", 0, "how many servers share one GPU"),
    ("gpu_models", [1], "a list of GPU models"),
    ("gpu_models", {"A100": 1}, "a list of GPU models"),
    ("gpu_lease", -60, "seconds, 0 (no lease) or more"),
    ("gpu_idle_timeout", "soon", "seconds, 0 (never reclaimed) or more"),
    ("queue_priority", "high", "a whole number; higher goes first"),
])
def test_a_bad_value_is_refused_naming_group_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(BadGroupProperty) as refused:
        settings_from_groups([group("class-a", **{key: value})], TRAITS)
    message = str(refused.value)
    assert message.startswith(f"The group 'class-a' has an invalid property {key} = {value!r}: "
                              f"it must be {allowed}")
    assert message.endswith("Ask an admin to fix it (admin page, Groups, class-a).")


def test_keys_of_other_tools_are_ignored_and_reported():
    settings = settings_from_groups(
        [group("b", description="lab", gpu_quota=3), group("a", quota=9)], TRAITS)
    assert settings.values == {"gpu_quota": 3}
    assert settings.ignored == [("a", "quota"), ("b", "description")]


def test_a_member_of_several_groups_gets_the_most_generous_value():
    groups = [
        group("class", gpu_quota=1, mem_limit="8G", cpu_limit=2, gpu_share=4, gpu_models=["T4"],
              gpu_lease=3600, gpu_idle_timeout=600, queue_priority=0, default_gpus=1),
        group("staff", gpu_quota=2, mem_limit="32G", cpu_limit=1, gpu_share=1,
              gpu_models="A100", gpu_lease=0, gpu_idle_timeout=1800, queue_priority=5),
        group("night", gpu_lease=7200, gpu_idle_timeout=0, default_gpus=0),
    ]
    settings = settings_from_groups(groups, TRAITS)
    assert settings.values == {
        "gpu_quota": 2, "mem_limit": 32 * GIB, "cpu_limit": 2.0, "gpu_share": 1,
        "gpu_models": ["T4", "A100"], "gpu_lease": 0.0, "gpu_idle_timeout": 0.0,
        "queue_priority": 5, "default_gpus": 1,
    }
    assert settings.sources["gpu_quota"] == ["staff"]
    assert settings.sources["gpu_models"] == ["class", "staff"]
    assert settings.sources["gpu_idle_timeout"] == ["night"]
    assert "gpu_quota=2 (staff)" in settings.describe()


def test_an_empty_model_list_allows_every_model_and_so_wins():
    settings = settings_from_groups([group("a", gpu_models=["A100"]), group("b", gpu_models="")],
                                    TRAITS)
    assert settings.values["gpu_models"] == []
    assert settings.sources["gpu_models"] == ["b"]


def test_no_groups_and_groups_without_properties_set_nothing():
    assert settings_from_groups([], TRAITS).values == {}
    assert settings_from_groups([SimpleNamespace(name="old")], TRAITS).values == {}


def spawner_in(*groups, **config):
    s = make_spawner(**config)
    s.user.groups = list(groups)
    return s


async def test_properties_apply_at_each_spawn_and_go_when_the_group_or_property_goes():
    overrides = {"10-class": {"groups": ["class"],
                              "spawner_override": {"gpu_quota": 3, "pids_limit": 2048}}}
    s = spawner_in(group("class"), gpu_quota=1, group_overrides=overrides)
    await s.apply_group_overrides()
    assert (s.gpu_quota, s.pids_limit, s.gpu_share) == (3, 2048, 1)  # config overrides alone

    s.user.groups[0].properties = {"gpu_quota": "2", "gpu_share": 2, "description": "ML 101"}
    await s.apply_group_overrides()  # the admin's property wins over the config on gpu_quota
    assert (s.gpu_quota, s.pids_limit, s.gpu_share) == (2, 2048, 2)

    s.user.groups[0].properties = {"gpu_share": 2}  # the admin removed gpu_quota
    await s.apply_group_overrides()
    assert (s.gpu_quota, s.gpu_share) == (3, 2)

    s.user.groups = [group("other", mem_limit="2G")]  # left the class
    await s.apply_group_overrides()
    assert (s.gpu_quota, s.pids_limit, s.gpu_share, s.mem_limit) == (1, 4096, 1, 2 * GIB)

    s.user.groups = []
    await s.apply_group_overrides()
    assert (s.gpu_quota, s.pids_limit, s.gpu_share, s.mem_limit) == (1, 4096, 1, 0)


async def test_a_bad_property_fails_the_spawn_with_a_400_for_the_user_and_changes_nothing():
    s = spawner_in(group("class-a", gpu_quota=4), gpu_quota=1)
    await s.apply_group_overrides()
    s.user.groups = [group("class-a", gpu_quota=4, mem_limit="huge")]
    with pytest.raises(UserMistake) as refused:
        await s.apply_group_overrides()
    assert refused.value.status_code == 400
    assert refused.value.jupyterhub_message == (
        "The group 'class-a' has an invalid property mem_limit = 'huge': it must be a size with "
        "a suffix K, M, G or T, e.g. \"32G\". Ask an admin to fix it (admin page, Groups, class-a).")
    assert s.gpu_quota == 1  # the last spawn's group values are gone, none of this one's came
    s.user.groups = [group("class-a", gpu_quota=4)]  # fixed: the next spawn gets it
    await s.apply_group_overrides()
    assert s.gpu_quota == 4


async def test_keys_of_other_tools_are_logged_once_per_hub(caplog):
    s = spawner_in(group("lab-42", description="Lab 42", gpu_quota=2))
    with caplog.at_level("INFO"):
        await s.apply_group_overrides()
        await s.apply_group_overrides()
        await spawner_in(group("lab-42", description="Lab 42")).apply_group_overrides()
    said = [r.getMessage() for r in caplog.records if "is not a gpuhub setting" in r.getMessage()]
    assert said == ["Group lab-42: property 'description' is not a gpuhub setting, ignored "
                    f"(gpuhub reads {', '.join(PROPERTIES)})"]
    assert sum("gpu_quota=2 (lab-42)" in r.getMessage() for r in caplog.records) == 2
