"""NVML problems in plain words, for users and admins. Pure: no I/O.

NVML's own texts ("NVML Shared Library Not Found", "Driver Not Loaded") name
the library's internals; the words here say what is wrong with the host, so
a user reading the spawn form knows it is not their fault and an admin knows
where to look. The raw NVML text still goes to the log next to them.
"""

from __future__ import annotations

import pynvml

_PLAIN = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: "no NVIDIA driver found on this host",
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "the NVIDIA driver is not loaded",
    pynvml.NVML_ERROR_NO_PERMISSION: "the hub is not allowed to talk to the NVIDIA driver",
    pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "the NVIDIA driver was updated but the old one is still loaded "
        "(the host needs a reboot or a driver reload)"
    ),
    pynvml.NVML_ERROR_FUNCTION_NOT_FOUND: "the NVIDIA driver is too old for this hub",
    pynvml.NVML_ERROR_GPU_IS_LOST: "a GPU stopped answering (it needs a reset or a reboot)",
    pynvml.NVML_ERROR_RESET_REQUIRED: "a GPU needs a reset",
    pynvml.NVML_ERROR_TIMEOUT: "the NVIDIA driver timed out",
    pynvml.NVML_ERROR_UNINITIALIZED: "the hub lost its connection to the NVIDIA driver",
    pynvml.NVML_ERROR_IRQ_ISSUE: "the NVIDIA driver reports an interrupt problem",
    pynvml.NVML_ERROR_OPERATING_SYSTEM: "the operating system blocked the NVIDIA driver",
    pynvml.NVML_ERROR_MEMORY: "the NVIDIA driver ran out of memory",
}


def raw_text(error: BaseException) -> str:
    """NVML's own text for an error, for the log: never empty."""
    return str(error) or type(error).__name__


def plain_reason(error: BaseException) -> str:
    """Why NVML cannot be used, in words for a person: "the NVIDIA driver is not loaded"."""
    value = getattr(error, "value", None)
    if value in _PLAIN:
        return _PLAIN[value]
    return f"the NVIDIA driver reported an error ({raw_text(error)})"


def no_answer_reason(timeout: float) -> str:
    """Why GPUs are unavailable while an NVML call hangs."""
    return f"NVML did not answer within {timeout:g} s (a GPU or the driver may be wedged)"
