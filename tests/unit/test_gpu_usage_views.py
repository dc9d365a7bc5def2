"""What users and admins are shown: privacy, totals, sparklines, durations."""

from gpuhub.hub.gpu_usage import views
from gpuhub.hub.gpu_usage.tracker import Server, Tracker
from gpuhub.spawner.gpu_status import DEFAULT_BUSY_MEMORY, Holder, status_of
from gpuhub.spawner.inventory import GPU, GPUProcess, Inventory

ANN, BOB = "a" * 64, "b" * 64


def sample_and_history():
    tracker = Tracker()
    servers = (Server(ANN, "ann", "", ("GPU-0",), 0), Server(BOB, "bob", "", ("GPU-1",), 0))
    inventory = Inventory(gpus=(
        GPU("0", "GPU-0", "H100", 80, 10, 90, processes=(GPUProcess(1, 5), GPUProcess(2, 5))),
        GPU("1", "GPU-1", "H100", 80, 0, 0),
        GPU("2", "GPU-2", "H100", 80, 0, 0, processes=(GPUProcess(3, 5),)),
    ))
    tracker.update(100, inventory, servers, {1: ANN, 2: BOB, 3: None})
    return tracker.latest, tracker.history


def test_a_user_sees_only_their_own_servers_and_processes():
    sample, history = sample_and_history()
    ann = views.user_gpus(sample, history, "ann", 0, 1800, 1.5, 3.0)
    assert [s["name"] for s in ann["servers"]] == [""]
    (gpu,) = ann["servers"][0]["gpus"]
    assert gpu["uuid"] == "GPU-0" and gpu["utilization"] == 90
    assert gpu["processes"] == [{"pid": 1, "used_memory": 5}]  # bob's pid 2 is hidden
    assert "bob" not in repr(ann)
    assert (ann["gpu_hours_this_week"], ann["gpu_hours_total"], ann["gpus_held"]) == (1.5, 3.0, 1)
    assert views.user_gpus(sample, history, "zed", 0, 1800, 0, 0)["servers"] == []


def test_all_gpus_totals_and_outside_processes():
    sample, history = sample_and_history()
    data = views.all_gpus(sample, history, 0, 0, {"ann": 2.0, "old": 1.0}, {"ann": 1.0})
    # GPU-2 is held by nobody but runs a job outside the hub: busy, not free.
    assert data["totals"] == {"gpus": 3, "held": 2, "shared": 0, "free": 0, "busy": 1, "unhealthy": 0,
                              "active": 2, "idle_flagged": 1, "users_holding": 2,
                              "outside_processes": 1}
    assert [g["holder"] for g in data["gpus"]] == [
        {"user": "ann", "server": ""}, {"user": "bob", "server": ""}, None]
    assert [g["status"] for g in data["gpus"]] == ["held", "held", "busy"]
    assert "outside the hub" in data["gpus"][2]["status_reason"]
    assert data["outside_processes"] == [{"gpu_index": "2", "uuid": "GPU-2", "pid": 3, "used_memory": 5}]
    assert [u["user"] for u in data["users"]] == ["ann", "bob", "old"]


def test_sparkline_is_inline_svg():
    points = [{"time": t, "utilization": u} for t, u in [(0, 0), (60, 100), (120, None), (180, 50)]]
    svg = str(views.sparkline(points, width=100, height=20))
    assert svg.startswith("<svg") and "<polyline" in svg
    assert 'points="1.0,19.0 33.7,1.0 99.0,10.0"' in svg
    assert "<polyline" not in str(views.sparkline(points[:1]))


def test_durations():
    assert [views.duration(s) for s in (None, 5, 300, 3600, 12000, 90000)] == [
        "–", "5 s", "5 min", "1 h", "3 h 20 min", "1 d 1 h"]


def test_free_means_what_the_spawner_means():
    """free / held / busy / unhealthy come from gpu_status.status_of, with the
    spawner's busy-memory threshold (a setting of the service)."""
    gib = 2**30
    gpus = (
        GPU("0", "GPU-0", "H100", 80 * gib, 0, 0),                      # free
        GPU("1", "GPU-1", "H100", 80 * gib, 2 * gib, 0),                # memory in use: busy
        GPU("2", "GPU-2", "H100", 80 * gib, 0, 0, processes=(GPUProcess(7, 0),)),  # a job: busy
        GPU("3", "", healthy=False, error="GPU is lost"),                # unhealthy
        GPU("4", "GPU-4", "H100", 80 * gib, 0, 0),                      # held
        GPU("5", "GPU-5", "H100", 80 * gib, gib // 2, 0),               # half a GiB in use
    )
    servers = (Server(ANN, "ann", "", ("GPU-4",), 0),)
    for threshold, expected in [
        (DEFAULT_BUSY_MEMORY, ["free", "busy", "busy", "unhealthy", "held", "free"]),
        (gib // 4, ["free", "busy", "busy", "unhealthy", "held", "busy"]),
    ]:
        tracker = Tracker(busy_memory=threshold)
        sample, _ = tracker.update(100, Inventory(gpus=gpus), servers, {7: None})
        data = views.all_gpus(sample, tracker.history, 0, 1800, {}, {})
        assert [g["status"] for g in data["gpus"]] == expected
        holders = {"GPU-4": [Holder("ann")]}
        assert expected == [status_of(g, holders.get(g.uuid), threshold).status.value for g in gpus]
        totals = data["totals"]
        assert [totals[k] for k in ("free", "held", "busy", "unhealthy")] == [
            expected.count(k) for k in ("free", "held", "busy", "unhealthy")]


def test_the_all_gpus_view_names_each_servers_image():
    from gpuhub.hub.gpu_usage.sampler import servers_from_containers

    containers = [{"Id": ANN, "Names": ["/gpuhub-ann"], "ImageID": "sha256:1", "Labels": {
        "gpuhub.user": "ann", "gpuhub.server": "", "gpuhub.gpus": "GPU-0",
        "gpuhub.image": "gpuhub/pytorch-notebook@sha256:2", "gpuhub.gpu_share": "2"}},
        {"Id": BOB, "Names": ["/gpuhub-bob"], "ImageID": "sha256:3",  # made before the label
         "Labels": {"gpuhub.user": "bob", "gpuhub.gpus": ""}}]
    tracker = Tracker()
    tracker.update(100, Inventory(gpus=()), servers_from_containers(containers), {})
    data = views.all_gpus(tracker.latest, tracker.history, 0, 1800, {}, {})
    assert data["servers"] == [
        {"user": "ann", "server": "", "gpus": 1, "image": "gpuhub/pytorch-notebook@sha256:2", "share": 2},
        {"user": "bob", "server": "", "gpus": 0, "image": "sha256:3", "share": 1},  # no label: 1
    ]
