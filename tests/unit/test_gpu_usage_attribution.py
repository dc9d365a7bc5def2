"""Host PID -> container ID from /proc/<pid>/cgroup, cgroup v1 and v2, both Docker drivers."""

import os

from gpuhub.hub.gpu_usage.attribution import container_id_from_cgroup, container_id_of_pid, container_ids

ID = "b81c07fa1b488da77ea0473d111f7b94d655736654e6467602a4983e88e793d8"


def test_cgroup_v1_cgroupfs_driver():
    text = "".join(f"{n}:{c}:/docker/{ID}\n" for n, c in [(12, "pids"), (4, "memory"), (1, "name=systemd")])
    assert container_id_from_cgroup(text) == ID


def test_cgroup_v2_cgroupfs_driver():
    assert container_id_from_cgroup(f"0::/docker/{ID}\n") == ID


def test_cgroup_v2_systemd_driver():
    assert container_id_from_cgroup(f"0::/system.slice/docker-{ID}.scope\n") == ID


def test_cgroup_v1_systemd_driver():
    text = f"11:memory:/system.slice/docker-{ID}.scope\n1:name=systemd:/system.slice/docker-{ID}.scope\n"
    assert container_id_from_cgroup(text) == ID


def test_nested_docker_path():
    assert container_id_from_cgroup(f"0::/kubepods/besteffort/pod1/docker/{ID}\n") == ID


def test_host_processes_are_in_no_container():
    assert container_id_from_cgroup("0::/\n") is None
    assert container_id_from_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n") is None
    assert container_id_from_cgroup("4:memory:/process_api/a8e64f72f1b3\n0::/\n") is None
    assert container_id_from_cgroup("0::/system.slice/docker.service\n") is None


def test_lookalikes_are_not_containers():
    assert container_id_from_cgroup(f"0::/{ID}\n") is None  # hex without a docker parent
    assert container_id_from_cgroup(f"0::/docker/{ID[:-1]}\n") is None  # 63 hex
    assert container_id_from_cgroup(f"0::/docker-{ID}.service\n") is None
    assert container_id_from_cgroup("garbage\n\n") is None


def test_reading_proc(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(f"0::/system.slice/docker-{ID}.scope\n")
    assert container_id_of_pid(42, str(tmp_path)) == ID
    assert container_id_of_pid(43, str(tmp_path)) is None  # gone
    assert container_ids([42, 43, 42], str(tmp_path)) == {42: ID, 43: None}


def test_this_process_is_outside_any_container():
    assert container_id_of_pid(os.getpid()) is None
