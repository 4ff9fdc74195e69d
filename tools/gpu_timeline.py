#!/usr/bin/env python3
"""Merges the GPU timelines of a cluster's CUDA workers (LP_GPU_TIMELINE=DIR, see
engine/cuda/timeline.h) and prints, per burst of steps, the median time of each part of a
step on the GPU: a hop (the previous worker's event recorded -> this worker's wait over), the
hand-over copies, each stage's layers, and the gap between steps (sampling done -> the next
step on the GPU).   Usage: tools/gpu_timeline.py DIR"""
import glob, os, statistics, sys

STEP, READY, LAYERS, DONE, SENT, SAMPLE, SAMPLED = range(7)


def load(folder):
    marks = []
    for path in glob.glob(os.path.join(folder, "timeline-*.txt")):
        pid = os.path.basename(path)[9:-4]
        with open(path) as f:
            for line in f:
                ns, tag = line.split()
                marks.append((int(ns), int(tag), pid))
    marks.sort()
    return marks


def bursts(marks, gap_ns=50_000_000):
    start = 0
    for i in range(1, len(marks) + 1):
        if i == len(marks) or marks[i][0] - marks[i - 1][0] > gap_ns:
            yield marks[start:i]
            start = i


def med_us(values):
    return f"{statistics.median(values) / 1e3:8.1f} us (n={len(values)})" if values else "       -"


def report(burst):
    pids = sorted({p for _, _, p in burst})
    by_pid = {p: [(t, tag) for t, tag, q in burst if q == p] for p in pids}
    has = {p: {tag for _, tag in by_pid[p]} for p in pids}
    first = [p for p in pids if READY not in has[p]]
    last = [p for p in pids if SAMPLE in has[p]]
    hops, send, recv, gaps, step = [], [], [], [], []
    for i, (t, tag, p) in enumerate(burst):
        if tag == SENT:
            for t2, tag2, p2 in burst[i + 1:]:
                if tag2 == READY and p2 != p:
                    hops.append(t2 - t)
                    break
        if tag == SAMPLED:
            for t2, tag2, p2 in burst[i + 1:]:
                if tag2 == STEP and p2 in first:
                    gaps.append(t2 - t)
                    break
    stage = {}
    for p in pids:
        seq = by_pid[p]
        for (t, tag), (t2, tag2) in zip(seq, seq[1:]):
            if tag == DONE and tag2 == SENT: send.append(t2 - t)
            if tag == READY and tag2 == LAYERS: recv.append(t2 - t)
            if tag == LAYERS and tag2 in (DONE, SAMPLE): stage.setdefault(p, []).append(t2 - t)
        # The step's own start mark comes after its input (engine/slice.cc): ready, start, layers.
        for (t, tag), (_, mid), (t3, tag3) in zip(seq, seq[1:], seq[2:]):
            if tag == READY and mid == STEP and tag3 == LAYERS: recv.append(t3 - t)
        starts = [t for t, tag in seq if tag == STEP]
        if p in first: step = [b - a for a, b in zip(starts, starts[1:])]
    print(f"burst of {len(burst)} marks over {(burst[-1][0] - burst[0][0]) / 1e6:.1f} ms, "
          f"{len(pids)} worker(s)")
    print(f"  step (first worker, start to start) {med_us(step)}")
    print(f"  hop (event recorded -> wait over)   {med_us(hops)}")
    print(f"  hand-over copy, sender              {med_us(send)}")
    print(f"  receiver copy + graph start         {med_us(recv)}")
    print(f"  between steps (sampled -> next)     {med_us(gaps)}")
    order = first + [p for p in pids if p not in first and p not in last] + \
        [p for p in last if p not in first]
    for p in order:
        print(f"  layers of worker pid {p:>8}          {med_us(stage.get(p, []))}")


if __name__ == "__main__":
    for b in bursts(load(sys.argv[1])):
        if len(b) > 50:
            report(b)
