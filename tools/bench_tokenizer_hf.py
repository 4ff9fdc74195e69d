#!/usr/bin/env python3
"""Times Hugging Face `tokenizers` (Rust, one thread) encoding the same text as
`layerpipe bench-tokenizer --write-text F --write-ids IDS`, and checks that its ids equal ours.

usage: tools/bench_tokenizer_hf.py --tokenizer DIR/tokenizer.json --text F [--ids IDS]
                                   [--repeat 3] [--json]
MB/s is 10^6 bytes of UTF-8 input per second, best of --repeat runs, as in bench-tokenizer.
Two ways of calling it are timed: `encode` (the usual call; it also builds offsets and masks)
and, where this version has it, `encode_batch_fast` on a one-text batch (no offsets).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one thread, like ours
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers  # noqa: E402


def best_of(repeat, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--ids", help="our ids, little-endian int32, to compare with")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    tok = tokenizers.Tokenizer.from_file(a.tokenizer)
    raw = open(a.text, "rb").read()
    text = raw.decode("utf-8")
    mb = len(raw) / 1e6
    out = {"tokenizers_version": tokenizers.__version__, "bytes": len(raw)}

    sec, enc = best_of(a.repeat, lambda: tok.encode(text, add_special_tokens=False))
    ids = enc.ids
    out.update(encode_seconds=sec, encode_mb_per_s=mb / sec, tokens=len(ids))
    if hasattr(tok, "encode_batch_fast"):
        sec, _ = best_of(a.repeat, lambda: tok.encode_batch_fast([text], add_special_tokens=False))
        out.update(batch_fast_seconds=sec, batch_fast_mb_per_s=mb / sec)
    out["best_mb_per_s"] = max(out["encode_mb_per_s"], out.get("batch_fast_mb_per_s", 0))

    if a.ids:
        import array
        ours = array.array("i")
        ours.frombytes(open(a.ids, "rb").read())
        ours = ours.tolist()
        first = next((i for i, (x, y) in enumerate(zip(ours, ids)) if x != y),
                     min(len(ours), len(ids)))
        out["ids_equal"] = ours == ids
        if ours != ids:
            out["first_difference"] = {"index": first, "ours": ours[first:first + 8],
                                       "hf": ids[first:first + 8],
                                       "hf_text": tok.decode(ids[max(0, first - 4):first + 8])}
    print(json.dumps(out) if a.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0 if out.get("ids_equal", True) else 1


if __name__ == "__main__":
    sys.exit(main())
