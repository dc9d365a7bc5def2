"""The spawn form's GPU part: models with their free GPUs, sharing, the memory note."""

from gpuhub.spawner.form import form_context, render_form
from gpuhub.spawner.inventory import GPU
from gpuhub.spawner.options import GPUModels

A100, H100 = "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"
MODELS = GPUModels((A100, H100, H100))


def render(**context):
    base = dict(quota=2, offered=2, default_gpus=1, nvml_available=True, unavailable_reason="",
                images=["one"], image="one")
    return render_form((), **{**base, **context})


def test_several_models_are_offered_with_how_many_are_free_each():
    free = [GPU(index="1", uuid="GPU-h", name=H100)]
    context = form_context(MODELS, free, share=1, mem_limit=None)
    assert context["models"] == [(A100, 0, 1), (H100, 1, 2)]
    page = render(**context)
    assert f'<option value="{H100}">{H100} (1 of 2 free)</option>' in page
    assert f'<option value="{A100}">{A100} (0 of 1 free)</option>' in page
    assert '<span id="gpuhub-free">1</span> of 3 GPUs free' in page
    assert "gpuhub-share" not in page and "gpuhub-memory" not in page


def test_one_model_offers_no_choice():
    assert form_context(GPUModels((H100, H100)), [], 1, None)["models"] == []
    assert 'name="gpu_model"' not in render(**form_context(GPUModels((H100,)), [], 1, None))


def test_shared_gpus_and_the_memory_limit_are_said():
    page = render(**form_context(GPUModels((H100,)), [], share=3, mem_limit=2 * 2**30))
    assert "shared with up to 2 other servers" in page
    assert "Memory limit: 2.0 GiB per server" in page
    assert "<code>/dev/shm</code>" in page and "count against it" in page
