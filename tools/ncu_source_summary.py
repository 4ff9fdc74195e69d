#!/usr/bin/env python3
"""Where a kernel's warps wait: Nsight Compute's SASS page (`ncu --page source --print-source
sass --csv`) summed up.

Prints the warp-stall samples by reason (the stall_* columns, each a share of all samples), by
opcode, the instructions with the most samples, and how many instructions ran how many times (a
loop's body is the instructions that share its count).
Usage: ncu_source_summary.py SASS_CSV [LABEL]
"""
import csv
import sys
from collections import Counter, defaultdict


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def main():
    path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else path
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own log lines are not CSV
    rows = list(csv.reader(lines))
    # A "Kernel Name" line comes before the page's header.
    at = next((i for i, r in enumerate(rows) if "Source" in r and "Address" in r), None)
    if at is None:
        sys.exit(f"{label}: no SASS page in {path}")
    head, rows = rows[at], [r for r in rows[at + 1:] if len(r) == len(rows[at])]
    col = {name: i for i, name in enumerate(head)}
    src = col["Source"]
    samples = next((i for i, n in enumerate(head) if n.startswith("Warp Stall Sampling (All")), None)
    executed = col.get("Instructions Executed")
    if samples is None or executed is None:
        sys.exit(f"{label}: columns {head}")
    value = lambda r, i: number(r[i]) or 0.0
    total = sum(value(r, samples) for r in rows)
    print(f"# {label}: {len(rows)} SASS instructions, {total:.0f} warp-stall samples")

    # The reasons' shares of all samples (their "(Not Issued)" columns are subsets of them).
    reasons = [i for i, n in enumerate(head) if n.startswith("stall_") and "Not Issued" not in n]
    by_reason = sorted(((sum(value(r, i) for r in rows), head[i]) for i in reasons), reverse=True)
    print("\n## samples by stall reason")
    for v, name in by_reason[:16]:
        if v > 0:
            print(f"{v:10.0f}  {100 * v / max(total, 1):5.1f}%  {name}")

    by_op = defaultdict(lambda: [0.0, 0.0, 0])
    for r in rows:
        words = [w for w in r[src].split() if not w.startswith("@")]
        op = words[0].split(".")[0] if words else "?"
        by_op[op][0] += value(r, samples)
        by_op[op][1] += value(r, executed)
        by_op[op][2] += 1
    print("\n## by opcode: samples, share, warp instructions executed, SASS instructions")
    for op, (s, e, n) in sorted(by_op.items(), key=lambda kv: -kv[1][0])[:25]:
        print(f"{s:10.0f}  {100 * s / max(total, 1):5.1f}%  {e:12.0f}  {n:5d}  {op}")

    print("\n## loops: instructions sharing an execution count (count: instructions)")
    counts = Counter(value(r, executed) for r in rows if value(r, executed) > 0)
    for c, n in sorted(counts.items(), key=lambda kv: -kv[0] * kv[1])[:8]:
        print(f"{c:12.0f}: {n}")

    print("\n## the 40 instructions with the most samples")
    address = col["Address"]
    top = sorted(rows, key=lambda r: -value(r, samples))[:40]
    for r in top:
        detail = ", ".join(f"{head[i]} {value(r, i):.0f}" for i in reasons if value(r, i) >= 0.2 * value(r, samples) > 0)
        print(f"{value(r, samples):8.0f}  {r[address]:>8}  {value(r, executed):10.0f}  {r[src].strip()[:60]:60}  {detail}")


if __name__ == "__main__":
    main()
