"""What a user may ask for when starting a server, checked on the server side.

The spawn form and ``POST /hub/api/users/{name}/server`` both end here, so a
tampered form and a hand-written API call meet the same rules. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from .gpu_status import matches_model

ALLOWED_OPTIONS = ("gpus", "image", "gpu_model")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,4}")


class InvalidOptions(ValueError):
    """Bad user options; the message says what is allowed (HTTP 400)."""


@dataclass(frozen=True)
class ServerRequest:
    gpus: int
    image: str | None  # None: the admin's default image
    gpu_model: str | None = None  # None: any model the user may use


def form_to_options(formdata: dict[str, list]) -> dict:
    """Form fields (lists of strings) to user options; validation comes later.

    ``_xsrf`` is the hub's own anti-forgery field, not an option.
    """
    return {
        key: values[0] if len(values) == 1 else values
        for key, values in formdata.items()
        if key != "_xsrf"
    }


@dataclass(frozen=True)
class GPULimit:
    """The most GPUs one server may ask for now, and why: what the form offers."""

    most: int
    why: str  # "your GPU quota", or what caps it below the quota

    @classmethod
    def of(cls, quota: int, host_gpus: int | None) -> GPULimit:
        """``host_gpus``: healthy GPUs on the host, None when NVML cannot say."""
        if host_gpus is None or host_gpus >= quota:
            return cls(quota, "your GPU quota")
        return cls(host_gpus, f"this host has {host_gpus} usable GPU(s); your quota is {quota}")


@dataclass(frozen=True)
class GPUModels:
    """The GPU models on the host (NVML names of its healthy devices) and those a
    user may use (``gpu_models``: a device is allowed when its name contains one)."""

    devices: tuple[str, ...]  # one name per healthy device
    allowed: tuple[str, ...] = ()  # gpu_models; (): every model
    known: bool = True  # False: NVML cannot say (any name passes; the 409 says why)

    @property
    def on_host(self) -> tuple[str, ...]:
        return tuple(sorted({name for name in self.devices if name}))

    @property
    def usable(self) -> tuple[str, ...]:
        return tuple(
            name for name in self.on_host
            if not self.allowed or any(matches_model(name, a) for a in self.allowed)
        )

    def count(self, model: str | None = None) -> int:
        """Healthy devices the user may use, of ``model`` (None: any model)."""
        usable = set(self.usable)
        return sum(1 for name in self.devices
                   if name in usable and (model is None or matches_model(name, model)))

    def describe(self) -> str:
        """The models the user may use and, when they differ, the host's models."""
        usable = ", ".join(self.usable) or "none"
        if self.usable == self.on_host:
            return usable
        return f"{usable} (this host has: {', '.join(self.on_host) or 'none'})"


def _describe_allowed(limit: GPULimit, images: Collection[str], models: GPUModels | None) -> str:
    allowed = [f"gpus (a whole number from 0 to {limit.most})"]
    if len(images) > 1:
        allowed.append(f"image (one of: {', '.join(sorted(images))})")
    if models is not None and models.known and len(models.on_host) > 1:
        allowed.append(f"gpu_model (part of the name of one of: {models.describe()})")
    return "; ".join(allowed)


def parse_gpu_model(value, models: GPUModels | None) -> str | None:
    """A model the user may use, as given (matched ignoring case); None: any model."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    allowed = models.describe() if models is not None and models.known else "none known"
    if not isinstance(value, str) or len(value) > 100:
        raise InvalidOptions(
            f"gpu_model must be part of a GPU model's name, one of: {allowed}; got {value!r}."
        )
    value = value.strip()
    if models is not None and models.known and not any(matches_model(n, value) for n in models.usable):
        raise InvalidOptions(
            f"gpu_model must be part of the name of a GPU model you may use: {allowed}; "
            f"got {value!r}."
        )
    return value


def parse_gpus(value, limit: GPULimit) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidOptions(
            f"gpus must be a whole number from 0 to {limit.most}, got {value!r}."
        )
    if isinstance(value, str):
        if not _WHOLE_NUMBER.fullmatch(value.strip()):
            raise InvalidOptions(
                f"gpus must be a whole number from 0 to {limit.most}, got {value!r}."
            )
        value = int(value.strip())
    if not 0 <= value <= limit.most:
        raise InvalidOptions(
            f"gpus must be a whole number from 0 to {limit.most} ({limit.why}), got {value}."
        )
    return value


def parse_request(
    options: dict, limit: GPULimit, default_gpus: int, images: Collection[str],
    models: GPUModels | None = None,
) -> ServerRequest:
    """Validate user options against the user's GPU limit, the allowed images and models.

    ``images`` are the image names the admin allows users to pick from;
    with one or none, no image option is accepted. ``models``: the GPU
    models on the host and the user's (None: no model may be named).
    """
    if not isinstance(options, dict):
        raise InvalidOptions(f"Options must be an object with keys: {', '.join(ALLOWED_OPTIONS)}.")
    unknown = sorted(str(key) for key in options if key not in ALLOWED_OPTIONS)
    if "image" in options and len(images) <= 1:
        unknown.append("image")
    if "gpu_model" in options and models is None:
        unknown.append("gpu_model")
    if unknown:
        raise InvalidOptions(
            f"Unknown option(s): {', '.join(map(repr, unknown))}. "
            f"Allowed: {_describe_allowed(limit, images, models)}."
        )
    gpu_model = parse_gpu_model(options.get("gpu_model"), models)
    if gpu_model is not None and models is not None and models.known:
        # the most GPUs of this model the host has: asking for more could never be met
        of_model = models.count(gpu_model)
        if of_model < limit.most:
            limit = GPULimit(of_model, f"this host has {of_model} {gpu_model} GPU(s) you may use")
    gpus = parse_gpus(options["gpus"], limit) if "gpus" in options else min(default_gpus, limit.most)
    image = options.get("image")
    if image is not None and (not isinstance(image, str) or image not in images):
        raise InvalidOptions(
            f"image must be one of: {', '.join(sorted(images))}; got {image!r}."
        )
    return ServerRequest(gpus=gpus, image=image, gpu_model=gpu_model)
