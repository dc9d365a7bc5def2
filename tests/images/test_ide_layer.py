"""The IDE layer's pure parts: [ide] in versions.toml, the glibc check's reading of ELF
files, the launcher wheel, image names. Fast: no Docker, no network."""

import copy
import hashlib
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from gpuhub.images import glibc, ide_layer, versions
from gpuhub.images.versions import VersionsError
from tests.images.test_versions import VALID

IDE = {
    "code_server": "4.139.1", "node": "24.19.0", "packages": ["jupyter-server-proxy==4.6.0"],
    "builder_base": "gpuhub/debian-base:bookworm-build", "builder_packages": ["build-essential"],
}


def catalog(**ide):
    data = copy.deepcopy(VALID)
    data["ide"] = {**IDE, **ide}
    return versions.parse(data)


# ---- [ide] in versions.toml ----------------------------------------------------


def test_the_repository_file_pins_the_ide_layer():
    spec = versions.load().ide_spec()
    assert spec.code_server == "4.139.1" and spec.node_major == "24"
    assert "jupyter-server-proxy==4.6.0" in spec.packages


def test_ide_table_is_read():
    spec = catalog().ide_spec()
    assert (spec.code_server, spec.node, spec.builder_base) == ("4.139.1", "24.19.0", "gpuhub/debian-base:bookworm-build")


def test_without_an_ide_table_asking_for_it_says_what_is_missing():
    with pytest.raises(VersionsError, match=r"no \[ide\] table"):
        versions.parse(copy.deepcopy(VALID)).ide_spec()


@pytest.mark.parametrize("key, value, message", [
    ("code_server", "latest", r"\[ide\]\.code_server = 'latest': expected code-server's npm version"),
    ("node", "24", r"\[ide\]\.node = '24': expected a Node.js version like 24.19.0"),
    ("packages", ["jupyter-server-proxy>=4"], "is not pinned"),
    ("packages", ["jupyterlab==4.6.6"], "must pin jupyter-server-proxy"),
    ("builder_base", "gpuhub/debian-base", "an image reference with a tag"),
    ("builder_packages", ["build essential"], "not a Debian package name"),
])
def test_bad_ide_values_are_refused_with_the_key(key, value, message):
    with pytest.raises(VersionsError, match=message):
        catalog(**{key: value})


def test_unknown_ide_key_is_refused():
    with pytest.raises(VersionsError, match=r"\[ide\]: unknown key\(s\) extensions"):
        catalog(extensions=["ms-python.python"])


def test_the_glibc_limit_is_the_oldest_line():
    # The variant says 2.35 (Ubuntu 22.04), local and test 2.36 (bookworm).
    assert catalog().lowest_glibc == "2.35"
    data = copy.deepcopy(VALID)
    data["local"]["glibc"] = "2.4"  # compared as numbers, not as text
    assert versions.parse(data).lowest_glibc == "2.4"


# ---- the glibc check (images/glibc.py) -------------------------------------------

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 9


def test_needed_versions_are_read_from_an_elf_files_strings():
    blob = ELF + b"libc.so.6\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.17\0GLIBCXX_3.4.30\0"
    assert glibc.needed_versions(blob) == {"2.2.5", "2.34", "2.17"}
    assert glibc.highest(glibc.needed_versions(blob)) == "2.34"


def test_only_elf_files_count():
    assert glibc.needed_versions(b"#!/bin/sh\necho GLIBC_2.99\0") == set()
    assert glibc.highest([]) is None


def test_versions_compare_as_numbers():
    assert glibc.highest(["2.9", "2.35", "2.4"]) == "2.35"
    assert glibc.too_new({"a.node": "2.34", "b.node": "2.36", "c": "2.35"}, "2.35") == {"b.node": "2.36"}
    with pytest.raises(ValueError, match="not a glibc version"):
        glibc.version_key("2.x")


def test_the_check_fails_and_names_the_file(tmp_path):
    (tmp_path / "ok.node").write_bytes(ELF + b"GLIBC_2.28\0")
    (tmp_path / "new.node").write_bytes(ELF + b"GLIBC_2.36\0")
    (tmp_path / "script.js").write_text("GLIBC_2.99\0")
    script = Path(glibc.__file__)
    failed = subprocess.run([sys.executable, str(script), "--max", "2.35", str(tmp_path)], capture_output=True, text=True)
    assert failed.returncode == 1
    assert f"{tmp_path}/new.node: GLIBC_2.36" in failed.stderr and "ok.node" not in failed.stderr
    passed = subprocess.run([sys.executable, str(script), "--max", "2.36", str(tmp_path)], capture_output=True, text=True)
    assert passed.returncode == 0 and "highest version needed is GLIBC_2.36 (limit 2.36)" in passed.stdout


# ---- the launcher wheel and names ----------------------------------------------------


def test_the_launcher_wheel_declares_the_vscode_entry(tmp_path):
    path = ide_layer.launcher_wheel(tmp_path)
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        record = wheel.read(f"{info}/RECORD").decode()
        module = wheel.read("gpuhub_vscode_proxy.py")
    assert f"{ide_layer.PROXY_PATH} = gpuhub_vscode_proxy:setup_code_server" in entry_points
    assert f"gpuhub_vscode_proxy.py,sha256={ide_layer._digest(module)},{len(module)}" in record
    # Its version follows the module, so a changed launcher changes the recipe.
    assert hashlib.sha256(module).hexdigest()[:8] in path.name
    assert ide_layer.launcher_wheel(tmp_path) == path
    # Made again elsewhere (a fresh clone), later: the same bytes, so the same recipe.
    time.sleep(2)  # zip times have a 2-second resolution
    again = ide_layer.launcher_wheel(tmp_path / "elsewhere")
    assert again.read_bytes() == path.read_bytes()


def test_the_launcher_entry():
    namespace = {}
    exec((ide_layer.SOURCE / "gpuhub_vscode_proxy.py").read_text(), namespace)
    entry = namespace["setup_code_server"]()
    assert entry["command"] == ["/opt/code-server/bin/gpuhub-code-server", "{port}"]
    assert entry["launcher_entry"]["title"] == "VS Code"


@pytest.mark.parametrize("ref, repository", [
    ("gpuhub/pytorch-notebook:2.13-cpu-20261122", "gpuhub/pytorch-notebook-ide"),
    ("gpuhub/pytorch-notebook-rl:2.13-cpu", "gpuhub/pytorch-notebook-rl-ide"),
    ("registry.example:5000/gpuhub/test-notebook:5.5.4", "registry.example:5000/gpuhub/test-notebook-ide"),
])
def test_ide_repository_names(ref, repository):
    assert ide_layer.repository_for(ref) == repository
