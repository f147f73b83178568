"""Time the default and the ``--quick`` audit of the tiny organism, including building it.

Each run uses a fresh ``$SAFETYSCOPE_CACHE`` temp dir so the organism build is part of the
timing (the issue's budget: default <= 300 s, quick <= 120 s on 2 CPU cores). Prints one JSON
line: ``{"default_s": ..., "quick_s": ..., ...}``.

    python bench/audit.py [--only quick|default]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_audit(quick: bool) -> float:
    """Seconds for ``safetyscope audit`` (organism built from scratch) in a subprocess."""
    with tempfile.TemporaryDirectory(prefix="ss-bench-audit-") as tmp:
        env = dict(os.environ, SAFETYSCOPE_CACHE=str(Path(tmp) / "cache"))
        cmd = [sys.executable, "-m", "safetyscope", "audit", "--out", str(Path(tmp) / "out")]
        if quick:
            cmd.append("--quick")
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    """Run the timings and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("quick", "default"))
    args = parser.parse_args()
    out: dict[str, object] = {"bench": "audit", "cpus": os.cpu_count(), "targets_s": {"default": 300, "quick": 120}}
    if args.only in (None, "quick"):
        out["quick_s"] = round(timed_audit(True), 1)
    if args.only in (None, "default"):
        out["default_s"] = round(timed_audit(False), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
