"""Build a notebook image line (and a stack on it), validate it, report on it, tag it.

The steps, each skipped when its result already exists with the same recipe:

1. the base: the official PyTorch image (present, or `docker pull`ed) or, when it
   cannot be had, the local CPU base (gpuhub/debian-base with tools, then
   images/pytorch-cpu-base: a venv in /opt/conda with PyTorch's CPU wheel);
2. the notebook image (images/pytorch-notebook/Dockerfile) from a host-filled wheelhouse,
   tagged <line>-<patch>;
3. checks: what the image records (/etc/gpuhub-image.json), the validation gate
   (images/validate/gate.py), start-up time;
4. the report (images/reports/), then the moving tag <line> -> <line>-<patch>;
5. the same for a stack (images/stacks/Dockerfile, one for every stack) on that notebook image.

A build is skipped when an image of the repository carries the same
org.gpuhub.recipe-hash label (Dockerfile folder, wheels, build arguments, base image id).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import report as reports
from . import ide_layer, startup, verify, versions, wheelhouse
from .docker_cli import Docker
from .recipe import (
    CACHE, IMAGES, RECIPE_LABEL, REPO, BuildError, SetupError, build_image, ensure_tools_base, fill, git_revision,
    hub_version, image_id, image_packages, log, mb, recipe_hash, utc_now,
)
from .versions import Catalog, Stack, Variant

__all__ = ["Builder", "BuildError", "Image", "Options", "SetupError"]

@dataclass
class Options:
    variant: str | None = None
    stack: str | None = None
    base: str = "auto"  # auto: official, else local | official | local
    fresh: bool = False  # --pull --no-cache: the monthly patch rebuild
    gpus: str | None = None  # passed to `docker run --gpus` for the gate
    require_report: bool = False  # release: pip-audit must have run
    ide: bool = False  # also the IDE layer (images/ide) on the last image
    pull_timeout: float = 30.0


@dataclass
class Base:
    """The base a notebook image is built on, and what that makes the image hold."""

    kind: str  # "official" | "local"
    ref: str
    line: str  # the image line's tag: 2.6-cuda12.4, or 2.13-cpu on the local base
    torch: str  # the torch the image must hold (validation expects it)
    cuda: str  # "12.4", or "none"
    cudnn: str
    python: str
    target: wheelhouse.Target


@dataclass
class Image:
    """One built (or reused) image and what was measured on it."""

    repository: str
    patch: str  # the immutable tag
    line: str  # the moving tag
    image_id: str
    base_ref: str
    expect_torch: str
    built: bool
    build_seconds: float = 0.0
    size: int = 0
    base_size: int = 0
    record: dict = field(default_factory=dict)
    gate: verify.GateResult | None = None
    startup_seconds: float | None = None

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.patch}"

    @property
    def moving_ref(self) -> str:
        return f"{self.repository}:{self.line}"


class Builder:
    """Runs one `gpuhub images build|release`."""

    def __init__(self, catalog: Catalog, options: Options, docker: Docker | None = None):
        self.catalog = catalog
        self.options = options
        self.docker = docker or Docker()

    # ---- the whole run ----------------------------------------------------------

    def run(self) -> list[Image]:
        variant = self.catalog.variant(self.options.variant)
        stack = self.catalog.stack(self.options.stack) if self.options.stack else None
        self.docker.check()
        hub = hub_version()
        base = self.choose_base(variant)
        notebook = self.notebook_image(variant, base, hub)
        self.finish(notebook)
        images = [notebook]
        if stack:
            stacked = self.stack_image(stack, notebook, base)
            self.finish(stacked)
            images.append(stacked)
        if self.options.ide:
            ide = self.ide_image(images[-1], base)
            self.finish(ide)
            images.append(ide)
        return images

    # ---- step 1: the base --------------------------------------------------------

    def choose_base(self, variant: Variant) -> Base:
        mode = self.options.base
        if mode in ("auto", "official"):
            why = self.ensure_official(variant.base)
            if why is None:
                return Base("official", variant.base, variant.name, variant.torch, variant.cuda, variant.cudnn,
                            variant.python, wheelhouse.Target(variant.python, variant.glibc))
            if mode == "official":
                raise BuildError(f"cannot get the official base {variant.base}: {why}")
            local = self.catalog.local
            log(f"official base {variant.base} unavailable ({why}); building on the local base {local.base} "
                f"instead: torch {versions.public_version(local.torch)} CPU, not the variant's torch {variant.torch} with CUDA {variant.cuda}")
        return self.ensure_local_base()

    def ensure_official(self, ref: str) -> str | None:
        """None when the official base is there (pulled again for a fresh build), else why not."""
        present = self.docker.inspect_image(ref) is not None
        if present and not self.options.fresh:
            return None
        log(f"docker pull {ref}")
        ok, why = self.docker.pull(ref, self.options.pull_timeout)
        if ok:
            return None
        if present:
            log(f"docker pull {ref} failed ({why}); using the copy the engine already has")
            return None
        return why

    def ensure_local_base(self) -> Base:
        local = self.catalog.local
        target = wheelhouse.Target(local.python, local.glibc)
        ensure_tools_base(self.catalog, self.options.fresh)
        wheels = fill(wheelhouse.fill, [f"torch=={local.torch}", *local.packages], target)
        args = {"DEBIAN_BASE": local.debian_base, "TORCH_VERSION": local.torch}
        recipe = recipe_hash(IMAGES / "pytorch-cpu-base", wheels, args, image_id(self.docker, local.debian_base))
        if self.docker.labels(local.base).get(RECIPE_LABEL) == recipe and not self.options.fresh:
            log(f"local base {local.base} is up to date")
        else:
            log(f"building the local base {local.base} (torch {local.torch})")
            seconds = build_image(self.docker, IMAGES / "pytorch-cpu-base", wheels, [local.base], args, recipe, self.options.fresh)
            log(f"built {local.base} in {seconds:.0f}s")
        return Base("local", local.base, local.line, local.torch, "none", "none", local.python, target)

    # ---- step 2: images ---------------------------------------------------------

    def notebook_image(self, variant: Variant, base: Base, hub: str) -> Image:
        requirements = [f"jupyterhub=={hub}", *self.catalog.notebook_packages]
        wheels = fill(wheelhouse.fill, requirements, base.target)
        repository = versions.repository()
        args = {
            "BASE_IMAGE": base.ref,
            "HUB_VERSION": hub,
            "EXPECT_TORCH": base.torch,
            "APT_PACKAGES": " ".join(self.catalog.apt_packages),
            "DROP_PACKAGES": " ".join(self.catalog.notebook_drop),
            "VARIANT": variant.name,
            "BASE_KIND": base.kind,
            "TORCH_VERSION": base.torch,
            "CUDA_VERSION": base.cuda,
            "CUDNN_VERSION": base.cudnn,
            "PYTHON_VERSION": base.python,
        }
        image = self.build_or_reuse(IMAGES / "pytorch-notebook", wheels, args, repository, base.line, base.ref, base.torch)
        image.record = verify.image_record(self.docker, image.ref)
        self.check_record(image, hub)
        return image

    def stack_image(self, stack: Stack, notebook: Image, base: Base) -> Image:
        source = IMAGES / "stacks"
        installed = image_packages(self.docker, notebook.ref)
        wheels = fill(wheelhouse.fill_on_top, list(stack.packages), base.target, installed)
        args = {
            "NOTEBOOK_IMAGE": notebook.ref,
            "STACK": stack.name,
            "STACK_IMPORTS": " ".join(stack.imports),
            "STACK_PACKAGES": " ".join(stack.packages),
        }
        image = self.build_or_reuse(source, wheels, args, versions.repository(stack.name), notebook.line, notebook.ref, notebook.expect_torch)
        image.record = verify.image_record(self.docker, image.ref)
        return image

    def ide_image(self, below: Image, base: Base) -> Image:
        """VS Code in the browser on below (a notebook or stack image): <its repository>-ide."""
        layer = ide_layer.prepare(self.catalog, self.docker, below.ref, base.target, self.options.fresh)
        image = self.build_or_reuse(ide_layer.SOURCE, layer.wheels, layer.args, ide_layer.repository_for(below.ref),
                                    below.line, below.ref, below.expect_torch, layer.extra)
        ide_layer.check(self.docker, image.ref, self.catalog.ide_spec())
        image.record = verify.image_record(self.docker, image.ref)
        return image

    def build_or_reuse(self, source: Path, wheels: Path, args: dict[str, str], repository: str, line: str,
                       base_ref: str, expect_torch: str, extra: dict[str, Path] | None = None) -> Image:
        recipe = recipe_hash(source, wheels, args, image_id(self.docker, base_ref), extra)
        existing = [] if self.options.fresh else self.docker.images_labelled(repository, RECIPE_LABEL, recipe)
        if existing:
            found = existing[0]
            patch = next((t for t in found["tags"] if versions.is_patch_tag(line, t)), None)
            if patch is None:
                patch = self.next_patch(repository, line)
                self.docker.tag(found["id"], f"{repository}:{patch}")
            image = Image(repository, patch, line, found["id"], base_ref, expect_torch, built=False)
            log(f"{image.ref} is up to date (recipe {recipe}); not rebuilt")
        else:
            patch = self.next_patch(repository, line)
            ref = f"{repository}:{patch}"
            args = {**args, "IMAGE_VERSION": patch, "CREATED": utc_now(), "REVISION": git_revision()}
            log(f"building {ref} on {base_ref} (recipe {recipe})")
            seconds = build_image(self.docker, source, wheels, [ref], args, recipe, self.options.fresh, extra)
            image = Image(repository, patch, line, image_id(self.docker, ref), base_ref, expect_torch, built=True,
                          build_seconds=seconds)
        image.size = self.docker.inspect_image(image.ref)["Size"]
        image.base_size = self.docker.inspect_image(base_ref)["Size"]
        how = f"built in {image.build_seconds:.0f}s" if image.built else "cached"
        log(f"{image.ref}: {mb(image.size)}, {mb(image.size - image.base_size)} added over {base_ref} ({how})")
        return image

    def next_patch(self, repository: str, line: str) -> str:
        today = datetime.datetime.now(datetime.timezone.utc).date()
        number = 1
        while self.docker.inspect_image(f"{repository}:{versions.patch_tag(line, today, number)}") is not None:
            number += 1
        return versions.patch_tag(line, today, number)

    def check_record(self, image: Image, hub: str) -> None:
        """The image's own record must match what the build asked for."""
        record = image.record
        expected = image.expect_torch
        holds = record.get("torch") or ""
        same = holds == expected if "+" in expected else versions.public_version(holds) == expected
        if not same:
            raise BuildError(f"{image.ref} holds torch {holds}, expected {expected}")
        if record.get("jupyterhub") != hub:
            raise BuildError(f"{image.ref} holds jupyterhub {record.get('jupyterhub')}, the hub runs {hub}")

    # ---- steps 3 and 4: checks, report, moving tag --------------------------------

    def finish(self, image: Image) -> None:
        gate_dir = IMAGES / "validate"
        kept = f"{image.moving_ref} still points at the previous build, so users keep getting that one"
        gate = self.cached_gate(image, gate_dir)
        if gate is None:
            log(f"running the validation gate in {image.ref}")
            try:
                gate = verify.validate(self.docker, image.ref, gate_dir, image.expect_torch, self.options.gpus, log=log)
            except verify.VerifyError as e:
                raise BuildError(f"{e}. {kept}.") from None
            if gate.passed:
                self.remember_gate(image, gate_dir, gate)
        image.gate = gate
        log(gate.summary)
        if not gate.passed:
            output = CACHE / "logs" / f"gate-{image.patch}.log"
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(gate.output + "\n")
            raise BuildError(verify.failure_message(image.ref, kept, gate, output))
        try:
            image.startup_seconds = startup.measure_startup(self.docker, image.ref, image.record.get("jupyterhub", ""))
        except verify.VerifyError as e:
            raise BuildError(
                f"{image.ref} did not start as a spawner starts it: {e}. {kept}.\n"
                f"What to do: run the image by hand (docker run --rm -it {image.ref}) and read why "
                "jupyterhub-singleuser stops, fix the image, then run the build again."
            ) from None
        log(f"server ready {image.startup_seconds:.2f}s after docker run (jupyterhub-singleuser, /api answers)")
        self.write_report(image)
        self.docker.tag(image.ref, image.moving_ref)
        log(f"{image.moving_ref} -> {image.patch}")

    def write_report(self, image: Image) -> None:
        folder = reports.folder_for(image.ref)
        if not image.built and (folder / "SUMMARY.md").exists() and not self.options.require_report:
            log(f"report {folder.relative_to(REPO)}/ exists")
            return
        metadata = {
            "image": image.ref,
            "moving_tag": image.moving_ref,
            "id": image.image_id,
            "base": image.base_ref,
            "size_bytes": image.size,
            "added_over_base_bytes": image.size - image.base_size,
            "labels": self.docker.labels(image.ref),
            "record": image.record,
            "gate": {"passed": image.gate.passed, "summary": image.gate.summary, "report": image.gate.report,
                     "first_failure": image.gate.first_failure or None} if image.gate else None,
            "startup_seconds": image.startup_seconds,
        }
        report = reports.write(self.docker, image.ref, metadata)
        log(report.line())
        if self.options.require_report and report.vulnerabilities is None:
            raise BuildError(f"a release needs the vulnerability audit, and it could not run: {report.audit_note}. "
                             f"{image.moving_ref} still points at the previous build.\nWhat to do: run the release "
                             "where PyPI's advisory data is reachable, or add --allow-unaudited to move the tag anyway.")

    def cached_gate(self, image: Image, gate_dir: Path) -> verify.GateResult | None:
        path = self._gate_cache(image, gate_dir)
        if self.options.fresh or path is None or not path.exists():
            return None
        data = json.loads(path.read_text())
        gate = verify.GateResult(True, 0, data.get("report"), data.get("output", ""), data.get("seconds", 0.0))
        gate.summary = verify.summarize_gate(gate) + " (earlier run, same image and gate)"
        return gate

    def remember_gate(self, image: Image, gate_dir: Path, gate: verify.GateResult) -> None:
        path = self._gate_cache(image, gate_dir)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"report": gate.report, "output": gate.output, "seconds": gate.seconds}))

    def _gate_cache(self, image: Image, gate_dir: Path) -> Path | None:
        scripts = sorted(gate_dir.glob("*.py"))
        if not (gate_dir / "gate.py").is_file():
            return None
        digest = hashlib.sha256(image.image_id.encode() + (self.options.gpus or "").encode())
        for script in scripts:
            digest.update(script.name.encode() + b"\0" + script.read_bytes())
        key = digest.hexdigest()[:16]
        return CACHE / "validated" / f"{key}.json"
