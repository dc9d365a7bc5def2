"""The playbook and roles pass yamllint, ansible-lint (production profile) and
ansible-playbook --syntax-check. Fast: no target needed."""

import subprocess

import pytest

from tests.ansible.target import ANSIBLE_BIN, REPO

ANSIBLE_DIR = REPO / "ansible"


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    if not (ANSIBLE_BIN / tool).exists():
        pytest.fail(f"{tool} is missing: make .venv-ansible/.installed")
    return subprocess.run(
        [str(ANSIBLE_BIN / tool), *args], cwd=ANSIBLE_DIR, capture_output=True, text=True,
        env={"PATH": f"{ANSIBLE_BIN}:/usr/bin:/bin", "HOME": str(ANSIBLE_DIR), "ANSIBLE_NOCOLOR": "1"},
    )


def test_yamllint_is_clean():
    result = run("yamllint", "--strict", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_is_clean():
    result = run("ansible-lint", "--profile", "production", "--nocolor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


def test_syntax_check_passes():
    result = run("ansible-playbook", "-i", "inventory.example.yml", "--syntax-check", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_catches_a_bare_module_name(tmp_path):
    """The lint step fails on what the roles must not do (it is not a no-op)."""
    bad = ANSIBLE_DIR / "roles" / "gpuhub" / "tasks" / "zz_lint_probe.yml"
    bad.write_text("---\n- name: Copy without a full module name\n  copy:\n    src: a\n    dest: /b\n    mode: 0644\n")
    try:
        result = run("ansible-lint", "--profile", "production", "--nocolor", str(bad.relative_to(ANSIBLE_DIR)))
    finally:
        bad.unlink()
    assert result.returncode != 0
    assert "fqcn" in result.stdout + result.stderr


def test_every_role_setting_is_documented_in_group_vars():
    """group_vars/gpuhub_servers.yml lists every variable of every role's defaults."""
    import re

    documented = (ANSIBLE_DIR / "group_vars" / "gpuhub_servers.yml").read_text()
    defaults = sorted(ANSIBLE_DIR.glob("roles/*/defaults/main.yml"))
    assert len(defaults) == 6
    for path in defaults:
        for name in re.findall(r"^([a-z_]+):", path.read_text(), re.M):
            assert re.search(rf"^# {name}:", documented, re.M), f"{name} ({path}) is not in group_vars"
