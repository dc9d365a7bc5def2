"""Server-side checks of what users ask for: only valid requests pass."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpuhub.spawner.options import (
    GPULimit,
    GPUModels,
    InvalidOptions,
    form_to_options,
    parse_request,
)

IMAGES = ["gpuhub/pytorch-notebook:2.6", "gpuhub/pytorch-notebook:2.7"]


@pytest.mark.parametrize(
    "options, gpus, image",
    [
        ({}, 1, None),
        ({"gpus": 0}, 0, None),
        ({"gpus": 2}, 2, None),
        ({"gpus": "2"}, 2, None),  # from the form
        ({"gpus": 1, "image": IMAGES[1]}, 1, IMAGES[1]),
    ],
)
def test_valid_requests(options, gpus, image):
    request = parse_request(options, GPULimit.of(2, None), default_gpus=1, images=IMAGES)
    assert (request.gpus, request.image) == (gpus, image)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"gpus": -1}, "gpus must be a whole number from 0 to 2 (your GPU quota), got -1."),
        ({"gpus": 99}, "gpus must be a whole number from 0 to 2 (your GPU quota), got 99."),
        ({"gpus": "two"}, "gpus must be a whole number from 0 to 2, got 'two'."),
        ({"gpus": True}, "gpus must be a whole number from 0 to 2, got True."),
        ({"gpus": 1.5}, "gpus must be a whole number from 0 to 2, got 1.5."),
        ({"gpus": ["1", "2"]}, "gpus must be a whole number from 0 to 2, got ['1', '2']."),
        (
            {"gpus": 1, "privileged": True, "extra_host_config": {"binds": ["/:/host"]}},
            "Unknown option(s): 'extra_host_config', 'privileged'. Allowed: gpus (a whole number "
            "from 0 to 2); image (one of: gpuhub/pytorch-notebook:2.6, gpuhub/pytorch-notebook:2.7).",
        ),
        ({"image": "evil/miner"}, "image must be one of: gpuhub/pytorch-notebook:2.6, "
         "gpuhub/pytorch-notebook:2.7; got 'evil/miner'."),
        ({"image": ["x"]}, "image must be one of"),
    ],
)
def test_bad_requests_say_what_is_allowed(options, message):
    with pytest.raises(InvalidOptions) as error:
        parse_request(options, GPULimit.of(2, None), default_gpus=1, images=IMAGES)
    assert str(error.value).startswith(message)


def test_image_option_refused_when_admin_allows_one_image():
    with pytest.raises(InvalidOptions, match="Unknown option.*'image'"):
        parse_request({"image": "only"}, GPULimit.of(1, 8), default_gpus=0, images=["only"])


def test_form_fields_are_unwrapped():
    assert form_to_options({"gpus": ["2"], "image": ["a", "b"], "_xsrf": ["t"]}) == {
        "gpus": "2",
        "image": ["a", "b"],
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@given(
    options=st.dictionaries(
        st.sampled_from(["gpus", "image", "mem_limit", "privileged", ""]) | st.text(max_size=6),
        json_values | st.sampled_from(IMAGES) | st.from_regex(r"\s*-?\d{1,6}\s*", fullmatch=True),
        max_size=3,
    ),
    quota=st.integers(0, 8),
)
def test_fuzzed_options_are_valid_and_within_quota_or_refused(options, quota):
    try:
        request = parse_request(options, GPULimit.of(quota, 8), default_gpus=min(1, quota), images=IMAGES)
    except InvalidOptions as error:
        assert "must" in str(error) or "Unknown option" in str(error)
        return
    assert 0 <= request.gpus <= quota
    assert request.image in (None, *IMAGES)
    assert set(options) <= {"gpus", "image"}


def test_limit_and_message_follow_what_the_form_offers():
    # quota 1 on a host whose only GPU is lost: the form offers 0, and so does the message
    limit = GPULimit.of(1, 0)
    with pytest.raises(InvalidOptions) as refused:
        parse_request({"gpus": 1}, limit, default_gpus=0, images=IMAGES)
    assert str(refused.value) == (
        "gpus must be a whole number from 0 to 0 "
        "(this host has 0 usable GPU(s); your quota is 1), got 1."
    )
    # NVML cannot say how many GPUs there are: the quota (a GPU spawn then gets the 409 that says why)
    assert parse_request({"gpus": 1}, GPULimit.of(1, None), default_gpus=0, images=IMAGES).gpus == 1


# ---- GPU model choice (issue 10) --------------------------------------------------

MIXED = GPUModels(("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"))


@pytest.mark.parametrize("value, model", [("A100", "A100"), (" h100 ", "h100"), ("", None), (None, None)])
def test_gpu_model_names_part_of_a_model_ignoring_case(value, model):
    request = parse_request({"gpus": 1, "gpu_model": value}, GPULimit.of(2, 3), 1, IMAGES, MIXED)
    assert request.gpu_model == model


def test_unknown_or_disallowed_model_is_a_400_listing_the_models():
    with pytest.raises(InvalidOptions) as unknown:
        parse_request({"gpu_model": "V100"}, GPULimit.of(2, 3), 1, IMAGES, MIXED)
    assert str(unknown.value) == (
        "gpu_model must be part of the name of a GPU model you may use: "
        "NVIDIA A100-SXM4-80GB, NVIDIA H100 80GB HBM3; got 'V100'."
    )
    h100_only = GPUModels(MIXED.devices, allowed=("H100",))
    with pytest.raises(InvalidOptions) as disallowed:
        parse_request({"gpu_model": "A100"}, GPULimit.of(2, 2), 1, IMAGES, h100_only)
    assert str(disallowed.value) == (
        "gpu_model must be part of the name of a GPU model you may use: NVIDIA H100 80GB HBM3 "
        "(this host has: NVIDIA A100-SXM4-80GB, NVIDIA H100 80GB HBM3); got 'A100'."
    )
    assert h100_only.count() == 2
    with pytest.raises(InvalidOptions, match="gpu_model must be part of a GPU model's name"):
        parse_request({"gpu_model": 100}, GPULimit.of(2, 3), 1, IMAGES, MIXED)


def test_more_gpus_of_a_model_than_the_host_has_is_a_400():
    with pytest.raises(InvalidOptions) as refused:
        parse_request({"gpus": 2, "gpu_model": "A100"}, GPULimit.of(4, 3), 1, IMAGES, MIXED)
    assert str(refused.value) == (
        "gpus must be a whole number from 0 to 1 (this host has 1 A100 GPU(s) you may use), got 2."
    )


def test_without_nvml_any_model_name_passes_to_the_409():
    unknown = GPUModels((), known=False)
    assert parse_request({"gpu_model": "A100"}, GPULimit.of(1, None), 0, IMAGES, unknown).gpu_model == "A100"
