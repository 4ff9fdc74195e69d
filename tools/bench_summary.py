#!/usr/bin/env python3
"""One line per preset of a `layerpipe bench --json` result: decode ms per step by batch,
prefill ms by length (with the cached positions before it, if any, and Hugging Face's time when
the run had --hf-baseline) and the long-context decode
step (with its weight and KV bytes against the copy bandwidth).
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
            f"{' (Hugging Face ' + format(x['hf_ms'], '.2f') + ')' if 'hf_ms' in x else ''}"
            for x in p.get("prefill", []))
        lc = p.get("long_context")
        long_context = (f"long context {lc['context']} x {lc['batch']}: {lc['ms_per_step']:.3f} ms/step, "
                        f"{100 * lc['fraction_of_copy']:.0f}% of copy") if lc else ""
        parts = [f"decode ms/step {decode}" if decode else "", f"prefill ms {prefill}" if prefill else "",
                 long_context]
        print(f"{label}: {p.get('preset')} " + "; ".join(x for x in parts if x))


if __name__ == "__main__":
    main()
