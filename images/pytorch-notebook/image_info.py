"""Print what this image really holds, as JSON (written to /etc/gpuhub-image.json at build).

Run at build time with the image's own Python, so the record comes from the
installed packages rather than from what the build was told.
"""

import argparse
import datetime
import importlib.metadata
import json
import platform


def version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="")
    parser.add_argument("--base-image", default="")
    parser.add_argument("--base-kind", default="")
    args = parser.parse_args()

    import torch

    cudnn = None
    if torch.version.cuda:
        try:
            raw = torch.backends.cudnn.version()  # e.g. 90100; loads libcudnn, needs no GPU
            cudnn = f"{raw // 10000}.{raw % 10000 // 100}.{raw % 100}" if raw else None
        except Exception:
            cudnn = None
    info = {
        "variant": args.variant,
        "base_image": args.base_image,
        "base_kind": args.base_kind,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,  # None for a CPU build
        "cudnn": cudnn,
        "python": platform.python_version(),
        "jupyterhub": version("jupyterhub"),
        "jupyterlab": version("jupyterlab"),
        "ipywidgets": version("ipywidgets"),
        "jupyterlab_nvdashboard": version("jupyterlab-nvdashboard"),
        "jupyter_resource_usage": version("jupyter-resource-usage"),
        "built": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
