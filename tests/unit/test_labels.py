from gpuhub.spawner import labels as gpu_labels


def test_labels_round_trip():
    labels = gpu_labels.labels("gpuhub", "ann@example.org", "", ["GPU-a", "GPU-b"])
    assert labels == {
        "gpuhub.hub": "gpuhub",
        "gpuhub.user": "ann@example.org",
        "gpuhub.server": "",
        "gpuhub.gpus": "GPU-a,GPU-b",
    }
    assert gpu_labels.gpus_from_labels(labels) == ("GPU-a", "GPU-b")
    assert gpu_labels.gpus_from_labels(gpu_labels.labels("h", "bob", "", [])) == ()
    assert gpu_labels.gpus_from_labels(None) == ()
