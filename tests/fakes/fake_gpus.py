"""Write the state file read by the fake libnvidia-ml.so.1 (see README.md).

Standard library only, so any test (or a container) can import it.

    nvml = FakeNVML(tmp_path / "gpus.state")
    nvml.write(FakeNVML.make_gpus(2), [FakeProcess(uuid=..., pid=4242, mem=2**30)])
    nvml.write(gpus, hang=True)       # every NVML call blocks until rewritten
    env = nvml.env()   # FAKE_NVML_STATE + LD_LIBRARY_PATH for a subprocess

Names are written with '_' for ' ', so a name must not contain '_' itself.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Mapping

FAKES_DIR = pathlib.Path(__file__).resolve().parent
NVML_DIR = FAKES_DIR / "nvml"
LIBRARY_NAME = "libnvidia-ml.so.1"
DEFAULT_DRIVER_VERSION = "550.54.15"


@dataclass
class FakeMIG:
    """A MIG device; its slot index under the parent is its list position."""

    uuid: str
    name: str
    mem_total: int
    mem_used: int = 0


@dataclass
class FakeGPU:
    index: int
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    mem_total: int = 80 * 2**30
    mem_used: int = 0
    util_gpu: int = 0
    util_mem: int = 0
    temp: int = 30
    power_mw: int = 70000
    lost: bool = False
    mig: list[FakeMIG] = field(default_factory=list)  # non-empty => MIG mode on


@dataclass
class FakeProcess:
    """A compute process on the GPU or MIG device with this UUID."""

    uuid: str
    pid: int
    mem: int


def _token(value: str, what: str) -> str:
    if not value or any(c.isspace() or c in "=#" for c in value):
        raise ValueError(f"{what} {value!r}: empty, or contains whitespace, '=' or '#'")
    return value


def _name(value: str) -> str:
    # The file is whitespace-separated; '_' stands for ' '.
    if "_" in value:
        raise ValueError(f"name {value!r} contains '_', which the fake reads as a space")
    return _token(value.replace(" ", "_"), "name")


class FakeNVML:
    """Owns one state file; rewrite it at any time, the library re-reads it per call."""

    def __init__(self, state_path: os.PathLike | str):
        self.state_path = pathlib.Path(state_path)

    def write(
        self,
        gpus: Iterable[FakeGPU],
        processes: Iterable[FakeProcess] = (),
        driver_loaded: bool = True,
        driver_version: str = DEFAULT_DRIVER_VERSION,
        hang: bool = False,
    ) -> None:
        """Describe the host; the library sees it at its next call.

        ``driver_loaded=False``: nvmlInit and every query fail with
        DRIVER_NOT_LOADED (a hub started before the driver). ``hang=True``:
        every NVML call blocks (a wedged GPU or driver) until a later write
        clears it; calls already blocked then return.
        """
        lines = [
            f"driver version={_token(driver_version, 'driver_version')}"
            f" loaded={int(driver_loaded)} hang={int(hang)}"
        ]
        for gpu in gpus:
            lines.append(
                f"gpu index={gpu.index} uuid={_token(gpu.uuid, 'uuid')} name={_name(gpu.name)}"
                f" mem_total={gpu.mem_total} mem_used={gpu.mem_used}"
                f" util_gpu={gpu.util_gpu} util_mem={gpu.util_mem} temp={gpu.temp}"
                f" power_mw={gpu.power_mw} lost={int(gpu.lost)} mig={int(bool(gpu.mig))}"
            )
            for slot, mig in enumerate(gpu.mig):
                lines.append(
                    f"mig parent={gpu.index} index={slot} uuid={_token(mig.uuid, 'uuid')}"
                    f" name={_name(mig.name)} mem_total={mig.mem_total} mem_used={mig.mem_used}"
                )
        for proc in processes:
            lines.append(f"proc uuid={_token(proc.uuid, 'uuid')} pid={proc.pid} mem={proc.mem}")
        text = "\n".join(lines) + "\n"
        # Atomic replace: a reader mid-call sees the old or the new file, never half.
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".fake-nvml-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.state_path)
        except BaseException:
            os.unlink(tmp)
            raise

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A copy of `base` (default os.environ) that makes pynvml load the fake."""
        env = dict(os.environ if base is None else base)
        env["FAKE_NVML_STATE"] = str(self.state_path)
        old = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = str(library_dir()) + (f":{old}" if old else "")
        return env

    @staticmethod
    def make_gpus(n: int, **kw) -> list[FakeGPU]:
        """n identical GPUs (fields from kw) with valid-hex UUIDs, unique to this test run.

        One engine is one host: GPUs named on any container of the engine are
        taken, so two test runs sharing the engine must not share fake UUIDs.
        """
        return [FakeGPU(index=i, uuid=fake_uuid("GPU", i), **kw) for i in range(n)]


# This test run's fake "host": the same in the processes a test starts.
RUN_TAG = os.environ.setdefault("GPUHUB_FAKE_GPU_TAG", secrets.token_hex(2))


def fake_uuid(kind: str, i: int) -> str:
    """'GPU-fa4e1a2b-0000-4000-8000-000000000003': kind, this run's tag, i."""
    return f"{kind}-fa4e{RUN_TAG}-0000-4000-8000-{i:012x}"


def library_dir() -> pathlib.Path:
    """Directory holding the built fake libnvidia-ml.so.1 (put it on LD_LIBRARY_PATH)."""
    return NVML_DIR / "lib"


def build_library() -> pathlib.Path:
    """Build the fake library (no-op when up to date); return library_dir()."""
    # flock: parallel test workers would otherwise race on the same make target.
    # The lock lives in /tmp so the checkout gets no untracked file.
    import fcntl
    import hashlib

    tag = hashlib.sha256(str(NVML_DIR).encode()).hexdigest()[:16]
    with open(pathlib.Path(tempfile.gettempdir()) / f"fake-nvml-build-{tag}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            ["make", "-s", "-C", str(NVML_DIR)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    if result.returncode != 0 or not (library_dir() / LIBRARY_NAME).is_file():
        raise RuntimeError(f"building the fake NVML library failed:\n{result.stdout}")
    return library_dir()
