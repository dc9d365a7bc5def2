"""images/versions.py and versions.toml: parsing, checks, tag names. Pure, fast."""

import copy
import datetime

import pytest

from gpuhub.images import versions
from gpuhub.images.versions import VersionsError, line_tag, patch_tag

VALID = {
    "default": "2.6-cuda12.4",
    "notebook": {"packages": ["jupyterlab==4.6.6"], "apt_packages": ["git", "tini"], "drop": ["lark"]},
    "variants": {
        "2.6-cuda12.4": {
            "torch": "2.6.0", "cuda": "12.4", "cudnn": "9.1.0", "python": "3.11", "glibc": "2.35",
            "base": "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
        },
    },
    "local": {
        "torch": "2.13.0+cpu", "python": "3.11", "glibc": "2.36",
        "debian_base": "gpuhub/debian-base:bookworm-tools", "base": "gpuhub/pytorch-base:2.13-cpu",
        "packages": ["numpy==2.4.6"],
    },
    "stacks": {"rl": {"packages": ["gymnasium==1.4.0"], "imports": ["gymnasium"]}},
    "test_notebook": {
        "repository": "gpuhub/test-notebook",
        "python": "3.11", "glibc": "2.36", "packages": ["jupyterlab==4.6.6"],
    },
}


def changed(path, value):
    """VALID with one key (a dotted path; the last part may be deleted with value=DELETE) changed."""
    data = copy.deepcopy(VALID)
    *parents, last = path
    table = data
    for key in parents:
        table = table[key]
    if value is DELETE:
        del table[last]
    else:
        table[last] = value
    return data


DELETE = object()


def test_the_repository_file_is_valid():
    catalog = versions.load()
    assert catalog.default in catalog.variants
    assert "2.6-cuda12.4" in catalog.variants
    assert len(catalog.variants) >= 2
    assert catalog.local.torch.endswith("+cpu")
    assert {"cv", "nlp", "rl"} <= set(catalog.stacks)
    for variant in catalog.variants.values():
        assert variant.base.startswith("pytorch/pytorch:")
        assert f"{variant.torch}-cuda{variant.cuda}-cudnn" in variant.base


def test_lines_follow_what_users_run_today():
    """POLICY.md: the default line and the two newest, each on its official runtime base."""
    catalog = versions.load()
    assert set(catalog.variants) == {"2.6-cuda12.4", "2.9-cuda12.8", "2.15-cuda13.2"}
    assert catalog.default == "2.6-cuda12.4"
    for name, variant in catalog.variants.items():
        assert variant.base == f"pytorch/pytorch:{variant.torch}-cuda{variant.cuda}-cudnn9-runtime", name
        assert variant.cudnn.startswith("9."), name
        assert name == line_tag(variant.torch, f"cuda{variant.cuda}")


def test_stacks_share_one_dockerfile_that_names_no_stack():
    dockerfile = (versions.VERSIONS_FILE.parent / "stacks" / "Dockerfile").read_text()
    assert "ARG STACK\n" in dockerfile
    for name in versions.load().stacks:
        assert f"ARG STACK={name}" not in dockerfile


def test_parse_gives_whole_objects():
    catalog = versions.parse(VALID)
    assert catalog.variant() == versions.Variant(
        name="2.6-cuda12.4", torch="2.6.0", cuda="12.4", cudnn="9.1.0", python="3.11", glibc="2.35",
        base="pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
    )
    assert catalog.local == versions.LocalBase(
        torch="2.13.0+cpu", python="3.11", glibc="2.36", debian_base="gpuhub/debian-base:bookworm-tools",
        base="gpuhub/pytorch-base:2.13-cpu", packages=("numpy==2.4.6",),
    )
    assert catalog.local.line == "2.13-cpu"
    assert catalog.stack("rl") == versions.Stack("rl", ("gymnasium==1.4.0",), ("gymnasium",))
    assert catalog.notebook_packages == ("jupyterlab==4.6.6",)
    assert catalog.apt_packages == ("git", "tini")
    assert catalog.notebook_drop == ("lark",)


def test_unknown_names_list_the_known_ones():
    catalog = versions.parse(VALID)
    with pytest.raises(versions.UnknownName, match=r"unknown variant '9.9-cuda1.0'; known variants: 2.6-cuda12.4$"):
        catalog.variant("9.9-cuda1.0")
    with pytest.raises(versions.UnknownName, match=r"unknown stack 'audio'; known stacks: rl$"):
        catalog.stack("audio")


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("default",), "2.7-cuda12.8", r"default = '2.7-cuda12.8' is not a variant; known variants: 2.6-cuda12.4"),
        (("local",), DELETE, r"versions.toml: missing local"),
        (("colour",), "blue", r"unknown key\(s\) colour"),
        (("variants", "2.6-cuda12.4", "cuda"), "12", r"\.cuda = '12': expected major.minor"),
        (("variants", "2.6-cuda12.4", "torch"), "2.6.0+cu124", r"give the public version"),
        (("variants", "2.6-cuda12.4", "torch"), "2.7.0", r"call it '2.7-cuda12.4'"),
        (("variants", "2.6-cuda12.4", "base"), "pytorch/pytorch", r"expected an image reference with a tag"),
        (("variants", "2.6-cuda12.4", "base"), DELETE, r'\[variants."2.6-cuda12.4"\]: missing base'),
        (("variants", "2.6-cuda12.4", "python"), 3.11, r"python = 3.11: expected major.minor"),
        (("variants",), {}, r"define at least one image line"),
        (("notebook", "packages"), ["jupyterlab>=4"], r"'jupyterlab>=4' is not pinned; write name==version"),
        (("notebook", "packages"), ["jupyterhub==5.5.4"], r"must not list jupyterhub"),
        (("notebook", "packages"), "jupyterlab==4", r"must be a list of strings"),
        (("notebook", "apt_packages"), ["Git Tools"], r"not a Debian package name"),
        (("notebook", "drop"), ["lark==1.0"], r"'lark==1.0' is not a package name"),
        (("local", "torch"), "2.13.0", r"a version ending in \+cpu"),
        (("local", "packages"), ["torch==2.13.0"], r"must not list torch"),
        (("stacks", "rl", "packages"), ["torch==2.6.0"], r"a stack keeps the torch of its notebook image"),
        (("stacks", "rl", "imports"), ["gym nasium"], r"not a module name"),
        (("stacks", "RL"), {"packages": []}, r"stack names are lower-case"),
        (("test_notebook",), DELETE, r"versions.toml: missing test_notebook"),
        (("test_notebook", "repository"), "gpuhub/test-notebook:5", r"expected an image name without a tag"),
        (("test_notebook", "packages"), ["jupyterhub==5.5.4"], r"must not list jupyterhub"),
        (("test_notebook", "glibc"), "bookworm", r"glibc = 'bookworm'"),
    ],
)
def test_bad_files_are_refused_with_a_message_naming_the_key(path, value, message):
    with pytest.raises(VersionsError, match=message):
        versions.parse(changed(path, value))


def test_load_reports_toml_syntax_errors(tmp_path):
    bad = tmp_path / "versions.toml"
    bad.write_text("default = \n")
    with pytest.raises(VersionsError, match=r"not valid TOML"):
        versions.load(bad)
    with pytest.raises(VersionsError, match=r"cannot read"):
        versions.load(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "torch, accelerator, tag",
    [("2.6.0", "cuda12.4", "2.6-cuda12.4"), ("2.7.1", "cuda12.8", "2.7-cuda12.8"), ("2.13.0+cpu", "cpu", "2.13-cpu")],
)
def test_line_tags_say_what_the_image_holds(torch, accelerator, tag):
    assert line_tag(torch, accelerator) == tag


def test_patch_tags_are_the_utc_date_then_a_build_number():
    day = datetime.date(2026, 11, 2)
    assert patch_tag("2.6-cuda12.4", day) == "2.6-cuda12.4-20261102"
    assert patch_tag("2.6-cuda12.4", day, 2) == "2.6-cuda12.4-20261102.2"
    with pytest.raises(ValueError):
        patch_tag("2.6-cuda12.4", day, 0)
    assert versions.is_patch_tag("2.6-cuda12.4", "2.6-cuda12.4-20261102")
    assert versions.is_patch_tag("2.6-cuda12.4", "2.6-cuda12.4-20261102.12")
    assert not versions.is_patch_tag("2.6-cuda12.4", "2.6-cuda12.4")
    assert not versions.is_patch_tag("2.6-cuda12.4", "2.6-cuda12.8-20261102")
    assert not versions.is_patch_tag("2.6-cuda12.4", "2.6-cuda12.4-2026110")


def test_repositories():
    assert versions.repository() == "gpuhub/pytorch-notebook"
    assert versions.repository("cv") == "gpuhub/pytorch-notebook-cv"
    assert versions.public_version("2.13.0+cpu") == "2.13.0"
    assert versions.public_version("2.6.0") == "2.6.0"
