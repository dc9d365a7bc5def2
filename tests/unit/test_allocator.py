"""The claim table: exclusive, least-used-first, restart- and race-safe."""

import pytest

from gpuhub.spawner.allocator import (
    GPUAllocator,
    GPURequest,
    Holding,
    NotEnoughGPUs,
    OverQuota,
    ServerKey,
)
from gpuhub.spawner.inventory import GPU, GPUProcess, Inventory

GIB = 1 << 30


def gpu(i, **kw):
    return GPU(index=str(i), uuid=f"GPU-{i:04d}", name="Fake", memory_total=80 * GIB, **kw)


def inventory(*gpus):
    return Inventory(gpus=tuple(gpus))


def test_claims_are_exclusive_until_released():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1), gpu(2))
    a = alloc.claim("a", GPURequest(2), inv, GIB)
    b = alloc.claim("b", GPURequest(1), inv, GIB)
    assert len(set(a) | set(b)) == 3
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim("c", GPURequest(1), inv, GIB)
    assert "only 0 of the 3 GPUs" in str(refused.value)
    assert "3 held by other servers" in str(refused.value)
    assert alloc.release("a") == a
    assert set(alloc.claim("c", GPURequest(2), inv, GIB)) == set(a)


def test_least_used_first_and_numeric_index_order():
    inv = inventory(
        gpu(10), gpu(2, utilization=50), gpu(3, memory_used=GIB // 2), gpu(1, utilization=5)
    )
    assert GPUAllocator().claim("a", GPURequest(4), inv, GIB) == ("GPU-0010", "GPU-0003", "GPU-0001", "GPU-0002")


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
    assert alloc.claim("a", GPURequest(1), inv, GIB) == ("GPU-0003",)
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim("b", GPURequest(1), inv, GIB)
    assert "2 busy with jobs outside the hub" in str(refused.value)


def test_zero_gpus_claims_nothing_even_without_nvml():
    alloc = GPUAllocator()
    off = Inventory(nvml_available=False, unavailable_reason="no NVIDIA driver found on this host")
    assert alloc.claim("a", GPURequest(0), off, GIB) == ()
    with pytest.raises(NotEnoughGPUs, match="cannot use its GPUs right now: no NVIDIA driver found"):
        alloc.claim("a", GPURequest(1), off, GIB)


def test_claiming_again_reassigns_instead_of_reusing():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1))
    first = alloc.claim("a", GPURequest(1), inv, GIB)
    busy = inventory(*[
        gpu(i, processes=(GPUProcess(1, GIB),)) if f"GPU-{i:04d}" in first else gpu(i)
        for i in range(2)
    ])
    # "a" restarts while a foreign job now sits on its old GPU: it gets the other one.
    assert alloc.claim("a", GPURequest(1), busy, GIB) != first


def test_mig_devices_are_assigned_not_their_parent():
    inv = Inventory(
        gpus=(
            GPU(index="0:0", uuid="MIG-a", parent_uuid="GPU-p", memory_total=10 * GIB),
            GPU(index="0:1", uuid="MIG-b", parent_uuid="GPU-p", memory_total=10 * GIB),
        ),
        mig_parents=("GPU-p",),
    )
    assert set(GPUAllocator().claim("a", GPURequest(2), inv, GIB)) == {"MIG-a", "MIG-b"}


def test_gpus_on_the_engine_are_taken_whichever_hub_holds_them():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1), gpu(2))
    taken = (Holding("bob (hub other)", ("GPU-0000",), container_id="c1"),
             Holding("cid", ("GPU-0002",), key=ServerKey("cid")))
    assert alloc.claim("a", GPURequest(1), inv, GIB, taken=taken) == ("GPU-0001",)
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim("b", GPURequest(1), inv, GIB, taken=taken)
    assert "only 0 of the 3 GPUs" in str(refused.value) and "3 held by other servers" in str(refused.value)


def test_a_kept_containers_gpus_are_preferred_when_free():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1, utilization=90), gpu(2))
    assert alloc.claim("a", GPURequest(1), inv, GIB, prefer=["GPU-0001"]) == ("GPU-0001",)
    assert alloc.claim("b", GPURequest(1), inv, GIB, prefer=["GPU-0001"]) == ("GPU-0000",)  # held: next best


def test_reconcile_keeps_claims_the_listing_cannot_see_and_expires_abandoned_ones():
    alloc, inv = GPUAllocator(), inventory(*(gpu(i) for i in range(5)))
    alloc.claim("dead", GPURequest(1), inv, GIB)
    alloc.confirm("dead", "c-dead")
    alloc.claim("live", GPURequest(1), inv, GIB)
    alloc.confirm("live", "c-live")
    alloc.claim("creating", GPURequest(1), inv, GIB, expires=100.0)  # container not created yet
    alloc.claim("abandoned", GPURequest(1), inv, GIB, expires=10.0)
    since = alloc.mark()
    alloc.claim("late", GPURequest(1), inv, GIB)
    alloc.confirm("late", "c-late")  # confirmed after the listing started
    over = alloc.reconcile({"c-live"}, since, now=50.0)
    assert [key for key, _ in over] == ["dead", "abandoned"]
    assert set(alloc.holders()) == {"live", "creating", "late"}
    assert sum(len(uuids) for uuids in alloc.holders().values()) == 3


# ---- shared GPUs, models, the user's quota (issue 10) ----------------------------


def key(user, server=""):
    return ServerKey(user, server)


def test_shared_gpus_take_n_servers_of_the_same_share_and_fill_before_opening():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1), gpu(2))
    shared = GPURequest(1, share=2)
    first = alloc.claim(key("s1"), shared, inv, GIB)
    assert alloc.claim(key("s2"), shared, inv, GIB) == first  # the partly used GPU first
    third = alloc.claim(key("s3"), shared, inv, GIB)
    assert third != first  # full: a second GPU is opened
    states = {g.uuid: (s.status.value, s.places) for g, s in alloc.statuses(inv, GIB)}
    assert states[first[0]] == ("held", 0) and states[third[0]] == ("shared", 1)
    # an exclusive server never lands on a shared GPU, nor one of another share
    (exclusive,) = alloc.claim(key("ex"), GPURequest(1), inv, GIB)
    assert exclusive not in first + third
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim(key("ex2"), GPURequest(1), inv, GIB)
    message = str(refused.value)
    assert "only 0 of the 3 GPUs on this host are free right now" in message
    assert "1 shared by servers of another kind" in message, message
    with pytest.raises(NotEnoughGPUs):
        alloc.claim(key("s4"), GPURequest(1, share=4), inv, GIB)
    assert alloc.claim(key("s4"), shared, inv, GIB) == third  # the last place


def test_a_shared_request_for_two_gpus_gets_two_distinct_gpus():
    alloc, inv = GPUAllocator(), inventory(gpu(0), gpu(1))
    alloc.claim(key("s1"), GPURequest(1, share=3), inv, GIB)
    pair = alloc.claim(key("s2"), GPURequest(2, share=3), inv, GIB)
    assert len(set(pair)) == 2
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim(key("s3"), GPURequest(3, share=3), inv, GIB)
    assert "have a place for a server sharing a GPU 3 ways" in str(refused.value)


def test_sharers_on_the_engine_count_once_with_their_claim():
    alloc, inv = GPUAllocator(), inventory(gpu(0))
    shared = GPURequest(1, share=2)
    alloc.claim(key("ann"), shared, inv, GIB)
    alloc.confirm(key("ann"), "c-ann")
    # the engine now lists ann's container too: still one of two places used
    taken = (Holding("ann", ("GPU-0000",), share=2, key=key("ann"), container_id="c-ann"),)
    assert alloc.claim(key("bob"), shared, inv, GIB, taken=taken) == ("GPU-0000",)
    with pytest.raises(NotEnoughGPUs):
        alloc.claim(key("cid"), shared, inv, GIB, taken=taken)
    # an older container without the share label is exclusive
    legacy = (Holding("old", ("GPU-0000",), container_id="c-old"),)
    with pytest.raises(NotEnoughGPUs):
        GPUAllocator().claim(key("bob"), shared, inv, GIB, taken=legacy)


def test_model_choice_honours_names_ignoring_case_and_allowed_models():
    inv = inventory(
        GPU(index="0", uuid="GPU-a", name="NVIDIA A100-SXM4-80GB"),
        GPU(index="1", uuid="GPU-h", name="NVIDIA H100 80GB HBM3"),
        GPU(index="2", uuid="GPU-h2", name="NVIDIA H100 80GB HBM3", utilization=50),
    )
    alloc = GPUAllocator()
    assert alloc.claim(key("a"), GPURequest(1, model="a100"), inv, GIB) == ("GPU-a",)
    with pytest.raises(NotEnoughGPUs) as refused:
        alloc.claim(key("b"), GPURequest(1, model="A100"), inv, GIB)
    assert "only 0 of the 1 A100 GPUs on this host are free" in str(refused.value)
    # a user allowed only H100s never gets the A100, asked for a model or not
    alloc.release(key("a"))
    h100_only = GPURequest(2, allowed_models=("H100",))
    assert set(alloc.claim(key("b"), h100_only, inv, GIB)) == {"GPU-h", "GPU-h2"}


def test_quota_counts_every_server_of_the_user_and_is_not_a_shortage():
    alloc, inv = GPUAllocator(), inventory(*(gpu(i) for i in range(4)))
    alloc.claim(key("ann"), GPURequest(1, user_quota=2), inv, GIB)
    taken = (Holding("ann/big", ("GPU-0003",), key=key("ann", "big"), container_id="c-big"),
             Holding("ann (hub other)", ("GPU-0002",), container_id="c-other"))  # another hub's ann
    with pytest.raises(OverQuota) as refused:
        alloc.claim(key("ann", "small"), GPURequest(1, user_quota=2), inv, GIB, taken=taken)
    assert not isinstance(refused.value, NotEnoughGPUs)  # a queue must not wait on it
    assert str(refused.value) == (
        "You asked for 1 GPU(s), but your quota is 2 GPU(s) over all your servers and your "
        "other servers hold 2 (your default server: 1, big: 1). Stop one of them, or ask "
        "for fewer GPUs (0 at most)."
    )
    assert key("ann", "small") not in alloc.holders()
    # the same server starting again does not count against itself
    assert alloc.claim(key("ann"), GPURequest(1, user_quota=2), inv, GIB, taken=taken)
    assert alloc.claim(key("bob"), GPURequest(1, user_quota=1), inv, GIB, taken=taken)


def test_engine_conflicts_allow_sharers_up_to_their_share():
    from gpuhub.spawner.engine import LabelledContainer, conflicts

    def container(cid, share, gpus=("GPU-0",)):
        return LabelledContainer(cid, cid, "running", "h", key(cid), gpus, share=share)

    a, b, c = container("a", 2), container("b", 2), container("c", 2)
    assert conflicts((a, b), b) == []
    assert {r.id for r in conflicts((a, b, c), c)} == {"a", "b"}  # three on a GPU for two
    assert [r.id for r in conflicts((container("x", 1), b), b)] == ["x"]  # exclusive and shared
    assert [r.id for r in conflicts((container("y", 3), b), b)] == ["y"]  # different shares


def test_engine_reads_the_share_label():
    from gpuhub.spawner.engine import from_listing, taken

    listing = from_listing([
        {"Id": "c1", "Names": ["/p-ann"], "State": "running",
         "Labels": {"gpuhub.hub": "h", "gpuhub.user": "ann", "gpuhub.gpus": "GPU-0",
                    "gpuhub.gpu_share": "4"}},
        {"Id": "c2", "Names": ["/p-old"], "State": "running",
         "Labels": {"gpuhub.hub": "other", "gpuhub.user": "old", "gpuhub.gpus": "GPU-1"}},
    ])
    assert [c.share for c in listing] == [4, 1]
    assert taken(listing, "h") == (
        Holding("ann", ("GPU-0",), 4, key("ann"), "c1"),
        Holding("old (hub other)", ("GPU-1",), 1, None, "c2"),
    )


def test_gpu_status_shared_has_a_place_for_the_same_share_only():
    from gpuhub.spawner.gpu_status import Holder, has_place, status_of

    one_of_two = status_of(gpu(0), [Holder("ann", 2)])
    assert (one_of_two.status.value, one_of_two.reason) == ("shared", "shared by ann (1 of 2 places used)")
    assert has_place(one_of_two, 2) and not has_place(one_of_two, 1) and not has_place(one_of_two, 3)
    full = status_of(gpu(0), [Holder("ann", 2), Holder("bob", 2)])
    assert (full.status.value, full.holder) == ("held", "ann, bob") and not has_place(full, 2)
    assert status_of(gpu(0), [Holder("ann")]).reason == "held by ann"  # one exclusive holder
    # a shared GPU's own processes are its sharers' jobs, not "busy outside the hub"
    working = gpu(0, processes=(GPUProcess(4242, 10 * GIB),), memory_used=10 * GIB)
    assert has_place(status_of(working, [Holder("ann", 2)]), 2)


def test_mig_devices_are_shared_like_whole_gpus():
    inv = Inventory(
        gpus=(GPU(index="0:0", uuid="MIG-a", parent_uuid="GPU-p", name="NVIDIA A100 MIG 1g.10gb"),),
        mig_parents=("GPU-p",),
    )
    alloc, shared = GPUAllocator(), GPURequest(1, share=2, model="mig 1g")
    assert alloc.claim(key("a"), shared, inv, GIB) == alloc.claim(key("b"), shared, inv, GIB) == ("MIG-a",)


def test_a_refusal_says_whether_waiting_could_help():
    inv = inventory(GPU(index="0", uuid="GPU-a", name="NVIDIA A100"), gpu(1))
    alloc = GPUAllocator()
    alloc.claim(key("ann"), GPURequest(1, model="A100"), inv, GIB)
    with pytest.raises(NotEnoughGPUs) as held:
        alloc.claim(key("bob"), GPURequest(1, model="A100"), inv, GIB)
    assert held.value.may_come_free  # the A100 exists: ann may stop
    alloc.release(key("ann"))
    with pytest.raises(NotEnoughGPUs) as never:
        alloc.claim(key("bob"), GPURequest(2, model="A100"), inv, GIB)
    assert not never.value.may_come_free  # the host has one A100 only
