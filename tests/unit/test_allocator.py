"""The claim table: exclusive, least-used-first, restart- and race-safe."""

import pytest

from gpuhub.spawner.allocator import GPUAllocator, NotEnoughGPUs
from gpuhub.spawner.inventory import GPU, GPUProcess, Inventory

GIB = 1 << 30


def gpu(i, **kw):
    return GPU(index=str(i), uuid=f"GPU-{i:04d}", name="Fake", memory_total=80 * GIB, **kw)


def inventory(*gpus):
    return Inventory(gpus=tuple(gpus))


def test_claims_are_exclusive_until_released():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1), gpu(2))
    a = alloc.claim("a", 2, inv, GIB)
    b = alloc.claim("b", 1, inv, GIB)
    assert len(set(a) | set(b)) == 3
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim("c", 1, inv, GIB)
    assert "only 0 of the 3 GPUs" in str(refused.value)
    assert "3 held by other servers" in str(refused.value)
    assert alloc.release("a") == a
    assert set(alloc.claim("c", 2, inv, GIB)) == set(a)


def test_least_used_first_and_numeric_index_order():
    inv = inventory(
        gpu(10), gpu(2, utilization=50), gpu(3, memory_used=GIB // 2), gpu(1, utilization=5)
    )
    assert GPUAllocator().claim("a", 4, inv, GIB) == ("GPU-0010", "GPU-0003", "GPU-0001", "GPU-0002")


def test_foreign_process_memory_and_unhealthy_gpus_are_never_free():
    inv = inventory(
        gpu(0, processes=(GPUProcess(pid=4242, used_memory=int(1.2 * GIB)),)),
        gpu(1, memory_used=2 * GIB),
        GPU(index="2", uuid="", healthy=False, error="GPU is lost"),
        gpu(3),
    )
    alloc = GPUAllocator()
    reasons = {g.index: (s.status.value, s.reason) for g, s in alloc.statuses(inv, GIB, {})}
    assert reasons["0"] == ("busy", "1 process(es) outside the hub's servers (pid 4242) hold 1.2 GiB")
    assert reasons["1"] == ("busy", "2.0 GiB of memory in use (limit for a free GPU: 1.0 GiB)")
    assert reasons["2"] == ("unhealthy", "unhealthy (GPU is lost)")
    assert reasons["3"] == ("free", "")
    assert alloc.claim("a", 1, inv, GIB) == ("GPU-0003",)
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim("b", 1, inv, GIB)
    assert "2 busy with jobs outside the hub" in str(refused.value)


def test_zero_gpus_claims_nothing_even_without_nvml():
    alloc = GPUAllocator()
    off = Inventory(nvml_available=False, unavailable_reason="no NVIDIA driver found on this host")
    assert alloc.claim("a", 0, off, GIB) == ()
    with pytest.raises(NotEnoughGPUs, match="cannot use its GPUs right now: no NVIDIA driver found"):
        alloc.claim("a", 1, off, GIB)


def test_claiming_again_reassigns_instead_of_reusing():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1))
    first = alloc.claim("a", 1, inv, GIB)
    busy = inventory(*[
        gpu(i, processes=(GPUProcess(1, GIB),)) if f"GPU-{i:04d}" in first else gpu(i)
        for i in range(2)
    ])
    # "a" restarts while a foreign job now sits on its old GPU: it gets the other one.
    assert alloc.claim("a", 1, busy, GIB) != first


def test_mig_devices_are_assigned_not_their_parent():
    inv = Inventory(
        gpus=(
            GPU(index="0:0", uuid="MIG-a", parent_uuid="GPU-p", memory_total=10 * GIB),
            GPU(index="0:1", uuid="MIG-b", parent_uuid="GPU-p", memory_total=10 * GIB),
        ),
        mig_parents=("GPU-p",),
    )
    assert set(GPUAllocator().claim("a", 2, inv, GIB)) == {"MIG-a", "MIG-b"}


def test_gpus_on_the_engine_are_taken_whichever_hub_holds_them():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1), gpu(2))
    taken = {"GPU-0000": "bob (hub other)", "GPU-0002": "cid"}
    assert alloc.claim("a", 1, inv, GIB, taken=taken) == ("GPU-0001",)
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim("b", 1, inv, GIB, taken=taken)
    assert "only 0 of the 3 GPUs" in str(refused.value) and "3 held by other servers" in str(refused.value)


def test_a_kept_containers_gpus_are_preferred_when_free():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1, utilization=90), gpu(2))
    assert alloc.claim("a", 1, inv, GIB, prefer=["GPU-0001"]) == ("GPU-0001",)
    assert alloc.claim("b", 1, inv, GIB, prefer=["GPU-0001"]) == ("GPU-0000",)  # held: next best


def test_reconcile_keeps_claims_the_listing_cannot_see_and_expires_abandoned_ones():
    alloc, inv = GPUAllocator(), inventory(*(gpu(i) for i in range(5)))
    alloc.claim("dead", 1, inv, GIB)
    alloc.confirm("dead", "c-dead")
    alloc.claim("live", 1, inv, GIB)
    alloc.confirm("live", "c-live")
    alloc.claim("creating", 1, inv, GIB, expires=100.0)  # container not created yet
    alloc.claim("abandoned", 1, inv, GIB, expires=10.0)
    since = alloc.mark()
    alloc.claim("late", 1, inv, GIB)
    alloc.confirm("late", "c-late")  # confirmed after the listing started
    over = alloc.reconcile({"c-live"}, since, now=50.0)
    assert [key for key, _ in over] == ["dead", "abandoned"]
    assert set(alloc.holders()) == {"live", "creating", "late"}
    assert len(alloc.claimed()) == 3
