"""The usage pages' view of a shared GPU: its places, "shared by N" (pure)."""

from gpuhub.hub.gpu_usage import views
from gpuhub.hub.gpu_usage.tracker import Server, Tracker
from gpuhub.spawner.inventory import GPU, Inventory


def sample(*servers):
    tracker = Tracker()
    inventory = Inventory(gpus=(GPU(index="0", uuid="GPU-0", name="H100", memory_total=80),))
    tracker.update(100, inventory, servers, {})
    return tracker


def test_a_shared_gpu_shows_its_places_and_share():
    ann = Server("c1", "ann", "", ("GPU-0",), created=50, share=2)
    half = sample(ann)
    (device,) = half.latest.devices
    assert (device.status.status.value, device.status.reason) == (
        "shared", "shared by ann (1 of 2 places used)")
    full = sample(ann, Server("c2", "bob", "", ("GPU-0",), created=60, share=2))
    data = views.all_gpus(full.latest, full.history, 0, 1800, {}, {})
    assert data["totals"]["held"] == 1 and data["totals"]["shared"] == 0
    assert data["gpus"][0]["status_reason"] == "held by ann, bob (shared by 2, full)"
    assert data["gpus"][0]["share"] == 2
    mine = views.user_gpus(full.latest, full.history, "bob", 0, 1800, 0, 0)
    assert mine["servers"][0]["share"] == 2 and mine["gpus_held"] == 1
