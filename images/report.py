"""The per-build report: what an image holds and which of it has known vulnerabilities.

Written to images/reports/<repository name>/<tag>/ (gitignored):

    image.json        labels, sizes, /etc/gpuhub-image.json, gate result, start-up time
    pip-freeze.txt    the image's Python packages (`pip list --format=freeze`)
    dpkg.txt          the image's Debian/Ubuntu packages (`dpkg-query -W`)
    pip-audit.json    pip-audit over pip-freeze.txt, run on the HOST (containers have no network)
    SUMMARY.md        the counts, and what was not checked

pip-audit asks PyPI's vulnerability data for each pinned package (--no-deps
--disable-pip: no resolution, no virtualenv). The Debian package list is saved
but not compared: that needs the Debian security tracker, which this host cannot
reach; run `debsecan` or a scanner such as trivy against dpkg.txt where it can.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .docker_cli import Docker

REPORTS = Path(__file__).resolve().parent / "reports"


@dataclass
class Report:
    folder: Path
    packages: int
    debian_packages: int
    vulnerabilities: int | None  # None: pip-audit did not run
    vulnerable: list[str]
    audit_note: str

    def line(self) -> str:
        if self.vulnerabilities is None:
            audit = f"no vulnerability audit: {self.audit_note}"
        elif self.vulnerabilities:
            audit = f"pip-audit: {self.vulnerabilities} known vulnerabilities in {', '.join(self.vulnerable)}"
        else:
            audit = f"pip-audit: no known vulnerabilities in {self.packages} packages"
        return f"report {self._shown(self.folder)}/ ({audit}; {self.debian_packages} Debian packages listed, not compared)"

    @staticmethod
    def _shown(folder: Path) -> str:
        try:
            return str(folder.relative_to(Path.cwd()))
        except ValueError:
            return str(folder)


def folder_for(image_ref: str, root: Path = REPORTS) -> Path:
    """images/reports/pytorch-notebook/2.13-cpu-20261122 for gpuhub/pytorch-notebook:2.13-cpu-20261122."""
    repository, tag = image_ref.rsplit(":", 1)
    return root / repository.rsplit("/", 1)[-1] / tag


def write(docker: Docker, image_ref: str, metadata: dict, root: Path = REPORTS) -> Report:
    folder = folder_for(image_ref, root)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "image.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")

    freeze = docker.in_image(image_ref, ["python", "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"])
    (folder / "pip-freeze.txt").write_text(freeze)
    dpkg = docker.in_image(image_ref, ["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"])
    (folder / "dpkg.txt").write_text(dpkg)
    packages = [line for line in freeze.splitlines() if "==" in line]

    audit, note = _pip_audit(folder / "pip-freeze.txt", folder / "pip-audit.json")
    vulnerable = []
    if audit is not None:
        dependencies = audit.get("dependencies", [])
        looked_up = [d for d in dependencies if not d.get("skip_reason")]
        if dependencies and not looked_up:
            # pip-audit "passes" when it could look nothing up: that is no audit.
            note = (f"pip-audit could look up none of the {len(dependencies)} packages "
                    f"({dependencies[0]['skip_reason']}): PyPI's advisory data (pypi.org/pypi/<name>/<version>/json) "
                    "is not reachable from this host")
            audit = None
        for dependency in looked_up:
            ids = [v.get("id") for v in dependency.get("vulns", [])]
            if ids:
                vulnerable.append(f"{dependency['name']} {dependency.get('version', '')} ({', '.join(ids)})")
    report = Report(
        folder=folder,
        packages=len(packages),
        debian_packages=len(dpkg.splitlines()),
        vulnerabilities=None if audit is None else sum(len(d.get("vulns", [])) for d in audit.get("dependencies", [])),
        vulnerable=vulnerable,
        audit_note=note,
    )
    (folder / "SUMMARY.md").write_text(_summary(image_ref, report, audit))
    return report


def _pip_audit(requirements: Path, output: Path) -> tuple[dict | None, str]:
    """Run pip-audit on the host; (its JSON, "") or (None, why not)."""
    if importlib.util.find_spec("pip_audit") is not None:
        command = [sys.executable, "-m", "pip_audit"]
    elif shutil.which("pip-audit"):
        command = ["pip-audit"]
    else:
        return None, "pip-audit is not installed on the host (pip install pip-audit)"
    # Exit code 1 means "vulnerabilities found": the JSON says what; other failures leave no JSON.
    result = subprocess.run(
        [*command, "--requirement", str(requirements), "--no-deps", "--disable-pip", "--progress-spinner", "off",
         "--format", "json", "--output", str(output)],
        capture_output=True, text=True, timeout=900,
    )
    try:
        return json.loads(output.read_text()), ""
    except (OSError, ValueError):
        last = next((line for line in reversed((result.stderr + result.stdout).splitlines()) if line.strip()), "")
        return None, f"pip-audit failed (exit {result.returncode}): {last[:300]}"


def _summary(image_ref: str, report: Report, audit: dict | None) -> str:
    lines = [f"# {image_ref}", ""]
    lines.append(f"- Python packages: {report.packages} (pip-freeze.txt)")
    if report.vulnerabilities is None:
        lines.append(f"- pip-audit: NO vulnerability audit -- {report.audit_note}")
    else:
        lines.append(f"- pip-audit (PyPI advisory data, on the host): {report.vulnerabilities} known vulnerabilities")
        lines += [f"  - {entry}" for entry in report.vulnerable]
        skipped = [d["name"] for d in (audit or {}).get("dependencies", []) if d.get("skip_reason")]
        if skipped:
            lines.append(f"  - not audited (not on PyPI as pinned, e.g. local +cpu builds): {', '.join(skipped)}")
    lines.append(f"- Debian/Ubuntu packages: {report.debian_packages} (dpkg.txt), NOT compared with the "
                 "distribution's security tracker: that needs network this host does not have.")
    return "\n".join(lines) + "\n"
