"""Which glibc a folder of native code needs, and whether an image line's glibc has it.

The IDE layer's native modules are compiled on Debian bookworm (glibc 2.36) but must
also run on the official line's Ubuntu 22.04 (glibc 2.35). A program that needs a newer
glibc than the system has fails to load ("version `GLIBC_2.36' not found"), so the
layer's build checks every ELF file it ships against the lowest glibc of the lines.

The versions an ELF file needs are the GLIBC_2.x names in its dynamic string table
(what `objdump -T` prints as symbol versions); reading them as bytes needs no binutils
in the image. Pure functions plus a command line (run in the builder stage, where the
files are):

    python3 glibc.py --max 2.35 /opt/code-server     # exit 1 and a list when something needs more
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
_VERSION = re.compile(rb"GLIBC_(2\.\d+(?:\.\d+)?)\x00")


def version_key(version: str) -> tuple[int, ...]:
    """"2.35" -> (2, 35), so versions compare as numbers ("2.4" < "2.35")."""
    if not re.fullmatch(r"\d+(\.\d+)+", version):
        raise ValueError(f"not a glibc version: {version!r}")
    return tuple(int(part) for part in version.split("."))


def needed_versions(blob: bytes) -> set[str]:
    """The GLIBC_ versions an ELF file's bytes name; empty for anything that is not ELF."""
    if not blob.startswith(ELF_MAGIC):
        return set()
    return {match.decode() for match in _VERSION.findall(blob)}


def highest(versions) -> str | None:
    """The highest of some glibc versions, or None when there are none."""
    versions = list(versions)
    return max(versions, key=version_key) if versions else None


def too_new(needs: dict[str, str], limit: str) -> dict[str, str]:
    """The files (path -> highest version needed) that need a glibc newer than limit."""
    ceiling = version_key(limit)
    return {path: version for path, version in sorted(needs.items()) if version_key(version) > ceiling}


def scan(root: Path) -> dict[str, str]:
    """path -> highest GLIBC_ version needed, for every ELF file under root (symlinks not followed)."""
    needs = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, "rb") as f:
                if f.read(4) != ELF_MAGIC:
                    continue
            version = highest(needed_versions(path.read_bytes()))
            if version:
                needs[str(path)] = version
    return needs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fail when native code under ROOT needs a glibc newer than --max.")
    parser.add_argument("--max", required=True, help="the lowest glibc of the image lines (versions.toml), e.g. 2.35")
    parser.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    version_key(args.max)  # a bad --max is a usage error, not "everything is too new"
    needs = scan(args.root)
    bad = too_new(needs, args.max)
    top = highest(needs.values())
    if bad:
        print(f"glibc check: {len(bad)} file(s) under {args.root} need a glibc newer than {args.max} "
              "(the oldest glibc of the image lines in images/versions.toml); they would not load there:", file=sys.stderr)
        for path, version in bad.items():
            print(f"  {path}: GLIBC_{version}", file=sys.stderr)
        print("What to do: build them on an older base, use a prebuilt for an older glibc, or leave them out.", file=sys.stderr)
        return 1
    print(f"glibc check: {len(needs)} ELF files under {args.root}, the highest version needed is "
          f"GLIBC_{top or 'none'} (limit {args.max})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
