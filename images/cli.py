"""The command line: gpuhub images build|release|list.

    gpuhub images build [VARIANT] [--stack NAME] [--ide] [--local | --official] [--gpus all] [--no-cache]
    gpuhub images release [VARIANT] [--stack NAME] [--ide] [--local | --official] [--gpus all] [--allow-unaudited]
    gpuhub images build-test [--ide] [--no-cache]
    gpuhub images list

Exit codes: 0 done; 1 a build, validation or report step failed; 2 bad input
(unknown variant or stack, malformed versions.toml) or a host that cannot build
(no docker CLI, no engine answering, no hub Python).
"""

from __future__ import annotations

import argparse
import sys

from . import versions
from .build import Builder, BuildError, Options, SetupError
from .ide_layer import build_test_ide
from .test_notebook import build_test_notebook
from .docker_cli import DockerError, DockerUnavailable
from .verify import VerifyError
from .wheelhouse import WheelhouseError


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="gpuhub images", description="Build, validate and release gpuhub's notebook images.")
    commands = top.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a variant (and a stack), validate it, move its moving tag")
    release = commands.add_parser("release", help="rebuild from scratch (fresh base, no cache), validate, report, then move the moving tag")
    for command in (build, release):
        command.add_argument("variant", nargs="?", help="an image line from versions.toml (default: its `default`)")
        command.add_argument("--stack", help="also build this stack on the notebook image")
        command.add_argument("--ide", action="store_true",
                             help="also build the IDE layer (VS Code in the browser, images/ide) on the last image: <repository>-ide")
        where = command.add_mutually_exclusive_group()
        where.add_argument("--local", dest="base", action="store_const", const="local",
                           help="build on the local CPU base without trying the official one")
        where.add_argument("--official", dest="base", action="store_const", const="official",
                           help="build on the official base only; fail when it cannot be pulled")
        command.add_argument("--gpus", help="`docker run --gpus` value for the validation gate (e.g. all)")
        command.add_argument("--pull-timeout", type=float, default=30.0, metavar="S",
                             help="give up on `docker pull` of the official base when the registry says nothing for S seconds (default 30)")
        command.add_argument("--tag-file", metavar="PATH",
                             help="when done, write the moving tag of the last image built to PATH (for make up)")
        command.set_defaults(base="auto")
    build.add_argument("--no-cache", action="store_true", help="pull the base again and build without the layer cache")
    release.add_argument("--allow-unaudited", action="store_true",
                         help="move the moving tag even when pip-audit could not check the packages "
                              "(a host without PyPI's advisory data); the report says so")
    build_test = commands.add_parser("build-test", help="build the integration tests' image ([test_notebook] in versions.toml)")
    build_test.add_argument("--no-cache", action="store_true", help="build without the layer cache")
    build_test.add_argument("--ide", action="store_true",
                            help="also build the IDE layer on it: <repository>-ide:<hub version> (tests/ssh/test_browser_ide.py)")
    commands.add_parser("list", help="show the variants, the local fallback and the stacks")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        catalog = versions.load()
        if args.command == "list":
            return list_catalog(catalog)
        if args.command == "build-test":
            tag = build_test_notebook(catalog, fresh=args.no_cache)
            if args.ide:
                build_test_ide(catalog, tag, fresh=args.no_cache)
            return 0
        if args.ide:
            catalog.ide_spec()  # a missing [ide] table is bad input
        # Names first, so bad input is answered without touching Docker.
        catalog.variant(args.variant)
        if args.stack:
            catalog.stack(args.stack)
        options = Options(
            variant=args.variant,
            stack=args.stack,
            ide=args.ide,
            base=args.base,
            fresh=args.command == "release" or getattr(args, "no_cache", False),
            gpus=args.gpus,
            require_report=args.command == "release" and not args.allow_unaudited,
            pull_timeout=args.pull_timeout,
        )
        images = Builder(catalog, options).run()
        if args.tag_file:
            with open(args.tag_file, "w") as f:
                f.write(images[-1].moving_ref + "\n")
    except (versions.UnknownName, versions.VersionsError, DockerUnavailable, SetupError) as e:
        print(f"images: error: {e}", file=sys.stderr)
        return 2
    except (BuildError, DockerError, VerifyError, WheelhouseError) as e:
        print(f"images: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("images: interrupted", file=sys.stderr)
        return 130
    return 0


def list_catalog(catalog: versions.Catalog) -> int:
    for name, variant in catalog.variants.items():
        default = " (default)" if name == catalog.default else ""
        print(f"{name}{default}: torch {variant.torch}, CUDA {variant.cuda}, cuDNN {variant.cudnn}, "
              f"Python {variant.python}, on {variant.base}")
    local = catalog.local
    print(f"local fallback {local.line}: torch {local.torch} (CPU), Python {local.python}, "
          f"on {local.base} (from {local.debian_base})")
    for name, stack in catalog.stacks.items():
        print(f"stack {name}: {', '.join(stack.packages)}")
    if catalog.ide:
        print(f"IDE layer (--ide): code-server {catalog.ide.code_server} on Node {catalog.ide.node}, "
              f"{', '.join(catalog.ide.packages)}")
    test = catalog.test_notebook
    print(f"test image {test.repository}:<hub version>: {', '.join(test.packages)}, on {local.debian_base}")
    return 0
