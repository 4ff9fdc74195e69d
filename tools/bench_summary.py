#!/usr/bin/env python3
"""One line per preset of a `layerpipe bench --json` result: decode ms per step by batch and
prefill ms by length (with the cached positions before it, if any).
Usage: bench_summary.py BENCH_JSON LABEL   (prints "LABEL: no result (...)" if unreadable)
"""
import json
import sys


def main():
    path, label = sys.argv[1], sys.argv[2]
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{label}: no result ({e})")
        return
    for p in j.get("results", []):
        decode = ", ".join(f"batch {d['batch']}: {d['ms_per_step']:.3f}" for d in p.get("decode", []))
        prefill = ", ".join(
            f"{x['tokens']}{' after ' + str(x['after']) if x.get('after') else ''}: {x['ms']:.2f}"
            for x in p.get("prefill", []))
        parts = [f"decode ms/step {decode}" if decode else "", f"prefill ms {prefill}" if prefill else ""]
        print(f"{label}: {p.get('preset')} " + "; ".join(x for x in parts if x))


if __name__ == "__main__":
    main()
