"""The Docker settings we generate, compared whole (kubespawner's test_objects style)."""

from gpuhub.spawner import container_spec as spec

GIB = 1 << 30


def test_gpu_server_host_config_keeps_admin_settings_and_hardens():
    # privileged and cap_add stay as configured: the check before create
    # refuses them by name (test_hardening.py) instead of hiding the mistake
    configured = {
        "security_opt": ["apparmor=docker-default", "no-new-privileges:true"],
        "privileged": True,
        "cap_add": ["SYS_ADMIN"],
        "ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 8192}],
        "device_requests": [{"driver": "nvidia", "count": -1}],
    }
    assert spec.required_host_config(["GPU-a", "MIG-b"], 8 * GIB, 4096, configured) == {
        "privileged": True,
        "cap_add": ["SYS_ADMIN"],
        "security_opt": ["apparmor=docker-default", "no-new-privileges:true"],
        "cap_drop": ["ALL"],
        "ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 8192}],
        "shm_size": 8 * GIB,
        "pids_limit": 4096,
        "device_requests": [
            {"driver": "nvidia", "device_ids": ["GPU-a", "MIG-b"], "capabilities": [["gpu"]]}
        ],
    }


def test_cpu_only_server_gets_no_devices_and_void_visible_devices():
    assert spec.required_host_config([], GIB, 64) == {
        "security_opt": ["no-new-privileges:true"],
        "cap_drop": ["ALL"],
        "shm_size": GIB,
        "pids_limit": 64,
        "device_requests": [],
    }
    assert spec.gpu_environment([]) == {"NVIDIA_VISIBLE_DEVICES": "void"}
    assert spec.gpu_environment(["GPU-a"]) == {}


def test_shared_gpu_servers_get_advisory_memory_hints_only_when_shared():
    assert spec.sharing_environment(["GPU-a"], 1) == {}
    assert spec.sharing_environment([], 4) == {}  # CPU-only: nothing to share
    assert spec.sharing_environment(["GPU-a"], 4) == {
        "GPUHUB_GPU_SHARE": "4",
        "GPUHUB_GPU_MEMORY_FRACTION": "0.25",
        "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.25",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }
    assert spec.sharing_environment(["GPU-a"], 3)["GPUHUB_GPU_MEMORY_FRACTION"] == "0.3333"
