"""Time the default and the ``--quick`` audit of the tiny organism, including building it.

Each run uses a fresh ``$SAFETYSCOPE_CACHE`` temp dir so the organism build is part of the
timing (the issue's budget: default <= 300 s, quick <= 120 s on 2 CPU cores). Prints one JSON
line: ``{"default_s": ..., "default_cpu_s": ..., "quick_s": ..., "default_report": {"bytes", "figures",
"seconds"}, ...}`` (CPU seconds: on a shared box the wall time depends on the load)
(the report's size must stay under 2 MB; ``seconds`` is the report and figure rendering alone).

    python bench/audit.py [--only quick|default]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_audit(quick: bool) -> tuple[float, float, dict[str, object]]:
    """Wall and CPU seconds of ``safetyscope audit`` (organism built from scratch) in a subprocess, and the report."""
    with tempfile.TemporaryDirectory(prefix="ss-bench-audit-") as tmp:
        env = dict(os.environ, SAFETYSCOPE_CACHE=str(Path(tmp) / "cache"))
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "safetyscope", "audit", "--out", str(out)]
        if quick:
            cmd.append("--quick")
        start, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        timings = json.loads((out / "results.json").read_text())["timings"]
        report = {"bytes": (out / "report.html").stat().st_size, "figures": len(list((out / "figures").glob("*.pdf"))),
                  "seconds": round(timings["report"]["seconds"], 1)}
        return seconds, cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, report


def main() -> None:
    """Run the timings and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=("quick", "default"))
    args = parser.parse_args()
    out: dict[str, object] = {"bench": "audit", "cpus": os.cpu_count(), "targets_s": {"default": 300, "quick": 120}}
    for name, quick in (("quick", True), ("default", False)):
        if args.only in (None, name):
            seconds, cpu, report = timed_audit(quick)
            out[f"{name}_s"], out[f"{name}_cpu_s"], out[f"{name}_report"] = round(seconds, 1), round(cpu, 1), report
    print(json.dumps(out))


if __name__ == "__main__":
    main()
