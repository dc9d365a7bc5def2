from gpuhub.spawner import labels as gpu_labels


def test_labels_round_trip():
    labels = gpu_labels.labels("gpuhub", "ann@example.org", "", ["GPU-a", "GPU-b"])
    assert labels == {
        "gpuhub.hub": "gpuhub",
        "gpuhub.user": "ann@example.org",
        "gpuhub.server": "",
        "gpuhub.gpus": "GPU-a,GPU-b",
        "gpuhub.gpu_share": "1",
        "gpuhub.gpu_lease": "0",
        "gpuhub.gpu_idle_timeout": "0",
    }
    assert gpu_labels.gpus_from_labels(labels) == ("GPU-a", "GPU-b")
    assert gpu_labels.gpus_from_labels(gpu_labels.labels("h", "bob", "", [])) == ()
    assert gpu_labels.gpus_from_labels(None) == ()


def test_terms_of_a_gpu_server_are_labels():
    labels = gpu_labels.labels("h", "ann", "big", ["GPU-a"], share=2, lease=3600, idle_timeout=90.5)
    assert gpu_labels.number_label(labels, gpu_labels.SHARE_LABEL, 1) == 2
    assert gpu_labels.number_label(labels, gpu_labels.LEASE_LABEL) == 3600
    assert gpu_labels.number_label(labels, gpu_labels.IDLE_TIMEOUT_LABEL) == 90.5
    # containers made before these labels existed: exclusive, no lease, no reclaim
    assert gpu_labels.number_label({}, gpu_labels.SHARE_LABEL, 1) == 1
    assert gpu_labels.number_label({gpu_labels.LEASE_LABEL: "soon"}, gpu_labels.LEASE_LABEL) == 0
