#!/usr/bin/env python3
"""Where one step's GPU time goes: the kernels of the last step in an Nsight Compute CSV.

Reads `ncu --csv --metrics gpu__time_duration.sum` output (file or stdin), takes the kernels
from the last embedding lookup on (the last step a `layerpipe bench` run issued), and prints
their summed duration by kernel, largest first, with the step's total.
Usage: ncu_step_times.py NCU_CSV [LABEL]
"""
import csv
import re
import sys
from collections import defaultdict


def main():
    path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else path
    rows = []
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own log lines are not CSV
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        ns = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "ns")
        ns *= {"ns": 1, "nsecond": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}.get(unit, 1)
        rows.append((r["Kernel Name"], ns))
    starts = [i for i, (name, _) in enumerate(rows) if "EmbedKernel" in name]
    if not starts:
        sys.exit(f"{label}: no embedding kernel in {len(rows)} kernels")
    step = rows[starts[-1]:]
    by = defaultdict(lambda: [0.0, 0])
    for name, ns in step:
        short = re.sub(r"<[^<>]*>", "", name.replace("<unnamed>::", "").replace("void ", ""))
        short = re.sub(r"<[^<>]*>", "", short).split("(")[0].strip()
        by[short][0] += ns
        by[short][1] += 1
    total = sum(ns for _, ns in step)
    print(f"{label}: {len(step)} kernels, {total / 1e6:.3f} ms of kernel time")
    for name, (ns, n) in sorted(by.items(), key=lambda kv: -kv[1][0])[:14]:
        print(f"  {ns / 1e6:8.3f} ms {n:5d}x  {name[:90]}")


if __name__ == "__main__":
    main()
