"""What a user may ask for when starting a server, checked on the server side.

The spawn form and ``POST /hub/api/users/{name}/server`` both end here, so a
tampered form and a hand-written API call meet the same rules. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

ALLOWED_OPTIONS = ("gpus", "image")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,4}")


class InvalidOptions(ValueError):
    """Bad user options; the message says what is allowed (HTTP 400)."""


@dataclass(frozen=True)
class ServerRequest:
    gpus: int
    image: str | None  # None: the admin's default image


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


def _describe_allowed(limit: GPULimit, images: Collection[str]) -> str:
    allowed = [f"gpus (a whole number from 0 to {limit.most})"]
    if len(images) > 1:
        allowed.append(f"image (one of: {', '.join(sorted(images))})")
    return "; ".join(allowed)


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
    options: dict, limit: GPULimit, default_gpus: int, images: Collection[str]
) -> ServerRequest:
    """Validate user options against the user's GPU limit and the allowed images.

    ``images`` are the image names the admin allows users to pick from;
    with one or none, no image option is accepted.
    """
    if not isinstance(options, dict):
        raise InvalidOptions(f"Options must be an object with keys: {', '.join(ALLOWED_OPTIONS)}.")
    unknown = sorted(str(key) for key in options if key not in ALLOWED_OPTIONS)
    if "image" in options and len(images) <= 1:
        unknown.append("image")
    if unknown:
        raise InvalidOptions(
            f"Unknown option(s): {', '.join(map(repr, unknown))}. "
            f"Allowed: {_describe_allowed(limit, images)}."
        )
    gpus = parse_gpus(options["gpus"], limit) if "gpus" in options else default_gpus
    image = options.get("image")
    if image is not None and (not isinstance(image, str) or image not in images):
        raise InvalidOptions(
            f"image must be one of: {', '.join(sorted(images))}; got {image!r}."
        )
    return ServerRequest(gpus=gpus, image=image)
