#!/usr/bin/env python3
"""Validation gate for a freshly built gpuhub notebook image.

Runs inside the image (standard library + torch only) and exits 1 unless every
check passes; CUDA checks are skipped where no GPU is visible. See README.md.

    /opt/conda/bin/python /opt/gpuhub-validate/gate.py --expect-torch 2.13.0 [--json]
"""

import argparse
import json
import os
import sys
import time
import traceback

# The checks live beside this script (the folder is mounted whole); Python puts the
# script's folder first on sys.path, for the DDP check's child processes too.
from outcomes import CheckFailed, Skip
from server_checks import check_home_writable, check_singleuser, check_user_id
from torch_checks import (
    check_cuda_devices, check_cuda_matmul, check_cudnn, check_dataloader_shm, check_ddp,
    check_throughput, check_torch_version,
)


CHECKS = [
    ("torch_version", check_torch_version),
    ("cuda_devices", check_cuda_devices),
    ("cuda_matmul", check_cuda_matmul),
    ("cudnn", check_cudnn),
    ("dataloader_shm", check_dataloader_shm),
    ("ddp", check_ddp),
    ("singleuser", check_singleuser),
    ("user_id", check_user_id),
    ("home_writable", check_home_writable),
    ("throughput", check_throughput),
]


def run_check(name, check, args):
    started = time.monotonic()
    try:
        status, detail = "PASS", check(args)
    except Skip as reason:
        status, detail = "SKIP", str(reason)
    except CheckFailed as failure:
        status, detail = "FAIL", str(failure)
    except Exception as error:  # a crash is a failure of this check only
        status, detail = "FAIL", f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-3)}".strip()
    return {"name": name, "status": status, "detail": detail, "seconds": round(time.monotonic() - started, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect-torch", required=True, help="torch version the image must have, e.g. 2.13.0")
    parser.add_argument("--expect-uid", type=int, default=1000, help="uid the gate must run as (default 1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    args = parser.parse_args(argv)
    args.throughput = None
    if args.json:
        # Keep stdout for the JSON alone: anything else (torch warnings, child processes)
        # writing to fd 1 goes to stderr instead.
        report_stream = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
    started, results = time.monotonic(), []
    for name, check in CHECKS:
        result = run_check(name, check, args)
        results.append(result)
        if not args.json:
            print(f"{result['status']}  {name:<14} {result['detail']}  ({result['seconds']:.1f} s)", flush=True)
    ok = all(result["status"] != "FAIL" for result in results)
    if args.json:
        print(json.dumps({"ok": ok, "checks": results, "throughput": args.throughput}, indent=2), file=report_stream)
        report_stream.flush()
        return 0 if ok else 1
    if args.throughput:
        print(f"throughput: {args.throughput['steps_per_second']} steps/s on {args.throughput['device']}")
    counts = {status: sum(r["status"] == status for r in results) for status in ("PASS", "SKIP", "FAIL")}
    print(f"gate: {'PASS' if ok else 'FAIL'} ({counts['PASS']} passed, {counts['SKIP']} skipped, "
          f"{counts['FAIL']} failed) in {time.monotonic() - started:.1f} s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
