#!/usr/bin/python3
# The soak client of scripts/soak.sh, written on Debian's python3-grpcio and python3-protobuf
# alone: the request and response types come from the coordinator's own server reflection (no
# generated code, no layerpipe client code). It sends a warm-up, measures every process, sends
# N requests of random parameters (10% cancelled mid-stream, 5% invalid, 5% with a tiny
# deadline, bursts past the queue bound), each with its expected gRPC code decided before it is
# sent, then checks: every code as expected, every process alive, the cluster idle again (no
# request or KV-cache slot left), the coordinator's own outcome counts agreeing, and each
# process's resident memory and open file descriptors within 10% of their warm-up values.
# Usage: soak.py --endpoint HOST:PORT --metrics URL --requests N --pid NAME=PID ...
import argparse
import os
import random
import re
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from protowire import field, fields

OK, CANCELLED, INVALID, EXHAUSTED, DEADLINE = (
    grpc.StatusCode.OK, grpc.StatusCode.CANCELLED, grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED)
BURST_SIZE = 20      # requests sent at once; the soak cluster admits max_batch + queue of them
BURST_EVERY = 250    # one burst per this many requests
RSS_GROWTH = 0.10    # allowed growth after the run over the warm-up's value
FD_SLACK = 4         # fds allowed beyond 10%: a few tens of fds, where one connection is 10%


def service_types(channel, symbol):
    """The message classes of the file defining `symbol`, through grpc.reflection.v1."""
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    (answer,) = list(call(iter([field(4, symbol.encode())]), timeout=10))
    files = [payload for number, payload in fields(answer) if number == 4]  # FileDescriptorResponse
    if not files:
        sys.exit("soak: the server's reflection does not know " + symbol)
    pool = descriptor_pool.DescriptorPool()
    for number, blob in fields(files[0]):
        if number == 1:
            pool.Add(descriptor_pb2.FileDescriptorProto.FromString(blob))
    factory = message_factory.MessageFactory(pool)
    package = symbol.rsplit(".", 1)[0]

    def make(name):
        desc = pool.FindMessageTypeByName(package + "." + name)
        get = getattr(message_factory, "GetMessageClass", None)
        return get(desc) if get else factory.GetPrototype(desc)
    return make


# ---- the requests

class Plan:
    """One request and the codes it may end with, decided before it is sent."""

    def __init__(self, kind, request, expect, cancel_after=0, timeout=60.0):
        self.kind, self.request, self.expect = kind, request, expect
        self.cancel_after, self.timeout = cancel_after, timeout
        self.code, self.detail, self.tokens = None, "", 0


class Maker:
    def __init__(self, types, info, rng):
        self.Request = types("GenerateRequest")
        self.info, self.rng = info, rng
        self.words = ["the", "pipeline", "worker", "layer", "token", "cache", "soak", "über",
                      "数据", "🙂", "step", "batch", "\n", "  ", "stream"]

    def prompt(self, r, room):
        rng = self.rng
        how = rng.randrange(3)
        if how == 0:
            r.text = " ".join(rng.choice(self.words) for _ in range(rng.randint(1, 20)))
        elif how == 1:
            r.token_ids.ids.extend(rng.randrange(self.info.vocab_size)
                                   for _ in range(rng.randint(1, room)))
        else:
            m = r.chat.messages.add()
            m.role, m.content = "user", " ".join(rng.choice(self.words) for _ in range(4))
            if rng.random() < 0.5:
                r.chat.enable_thinking = rng.random() < 0.5

    def sampling(self, r):
        rng = self.rng
        r.temperature = rng.choice([0.0, rng.uniform(0.1, 2.0)])
        if rng.random() < 0.3:
            r.top_k = rng.randint(1, 50)
        if rng.random() < 0.3:
            r.top_p = rng.uniform(0.05, 1.0)
        if rng.random() < 0.2:
            r.min_p = rng.uniform(0.0, 0.3)
        if rng.random() < 0.2:
            r.repetition_penalty = rng.uniform(1.0, 1.5)
        if rng.random() < 0.5:
            r.seed = rng.randrange(1 << 40)
        if rng.random() < 0.2:
            r.stop.append(rng.choice(["the", "a", "。", "\n"]))
        if rng.random() < 0.2:
            r.stop_token_ids.append(rng.randrange(self.info.vocab_size))
        r.ignore_eos = rng.random() < 0.3
        r.logprobs = rng.choice([0, 0, 1, 5])

    def ok(self):
        r = self.Request()
        self.prompt(r, 64)
        r.max_tokens = self.rng.randint(1, 48)
        self.sampling(r)
        return Plan("ok", r, {OK})

    def long(self):
        """A request that cannot finish soon: many tokens, EOS ignored."""
        r = self.Request()
        self.prompt(r, 32)
        r.max_tokens = self.rng.randint(120, 200)
        self.sampling(r)
        r.ignore_eos = True
        del r.stop[:]
        del r.stop_token_ids[:]
        return r

    def cancelled(self):
        return Plan("cancel", self.long(), {CANCELLED}, cancel_after=self.rng.randint(1, 3))

    def deadline(self):
        return Plan("deadline", self.long(), {DEADLINE}, timeout=self.rng.uniform(0.005, 0.05))

    def burst(self):
        r = self.Request()
        self.prompt(r, 32)
        r.max_tokens = self.rng.randint(16, 64)
        r.ignore_eos = True
        return Plan("burst", r, {OK, EXHAUSTED})

    def invalid(self):
        rng, ctx = self.rng, self.info.max_context
        r = self.Request()
        r.token_ids.ids.extend([1, 2, 3])
        r.max_tokens = 4
        what = rng.randrange(9)
        if what == 0:
            r.temperature = -1.0
        elif what == 1:
            r.token_ids.ids[:] = []          # empty prompt
        elif what == 2:
            r.text = ""                      # empty text prompt
        elif what == 3:
            r.max_tokens = 0
        elif what == 4:
            r.max_tokens = ctx               # past the context with the prompt
        elif what == 5:
            r.top_p = 1.5
        elif what == 6:
            r.token_ids.ids.append(self.info.vocab_size)  # outside the vocabulary
        elif what == 7:
            r.token_ids.ids.extend([5] * ctx)             # prompt longer than the context
        else:
            r.logprobs = 21
        return Plan("invalid", r, {INVALID})

    def batch(self, n):
        """n requests in order: single ones as [plan], a burst as a list of BURST_SIZE."""
        rng = self.rng
        bursts = max(1, n // BURST_EVERY) if n >= 2 * BURST_SIZE else 0
        singles = n - bursts * BURST_SIZE
        at = sorted(rng.randrange(singles + 1) for _ in range(bursts))
        out = []
        for i in range(singles + 1):
            while at and at[0] == i:
                out.append([self.burst() for _ in range(BURST_SIZE)])
                at.pop(0)
            if i == singles:
                break
            x = rng.random()
            make = (self.cancelled if x < 0.10 else self.invalid if x < 0.15 else
                    self.deadline if x < 0.20 else self.ok)
            out.append([make()])
        return out


def run_one(stub, plan, failures):
    """Sends one request, recording its code; checks a finished stream's contents."""
    call = stub(plan.request, timeout=plan.timeout)
    tokens, finish, usage, responses = 0, 0, None, 0
    try:
        for response in call:
            responses += 1
            tokens += len(response.token_ids)
            if response.finish_reason:
                finish, usage = response.finish_reason, response.usage
            if plan.cancel_after and responses >= plan.cancel_after:
                call.cancel()
                break
    except grpc.RpcError:
        pass
    plan.code, plan.detail, plan.tokens = call.code(), call.details() or "", tokens
    if plan.code == OK and plan.kind in ("ok", "burst"):
        r = plan.request
        problem = None
        if not finish or usage is None:
            problem = "no finish reason"
        elif usage.completion_tokens != tokens:
            problem = "usage says %d tokens, %d came" % (usage.completion_tokens, tokens)
        elif tokens > r.max_tokens or (finish == 1 and tokens != r.max_tokens):
            problem = "%d tokens, finish %d, max_tokens %d" % (tokens, finish, r.max_tokens)
        if problem:
            failures.append("%s request: %s" % (plan.kind, problem))


def run(stub, batch, concurrency, failures):
    """Sends the singles `concurrency` at a time; a burst waits for the singles in flight, then
    sends all of its requests at once."""
    i = 0
    while i < len(batch):
        j = i
        while j < len(batch) and len(batch[j]) == 1:
            j += 1
        with ThreadPoolExecutor(concurrency) as pool:
            for f in [pool.submit(run_one, stub, b[0], failures) for b in batch[i:j]]:
                f.result()
        if j < len(batch):
            burst = batch[j]
            start = threading.Barrier(len(burst))

            def fire(plan):
                start.wait()
                run_one(stub, plan, failures)
            threads = [threading.Thread(target=fire, args=(p,)) for p in burst]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        i = j + 1


# ---- the processes

def measure(pids):
    """{name: (rss_kib, fds)}; a dead (or zombie) process fails the soak."""
    out = {}
    for name, pid in pids.items():
        try:
            status = open("/proc/%d/status" % pid).read()
            state = re.search(r"^State:\s+(\S)", status, re.M).group(1)
            if state in "ZX":
                sys.exit("soak: FAIL: %s (pid %d) died" % (name, pid))
            rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
            fds = len(os.listdir("/proc/%d/fd" % pid))
        except FileNotFoundError:
            sys.exit("soak: FAIL: %s (pid %d) died" % (name, pid))
        out[name] = (rss, fds)
    return out


def wait_serving(channel, timeout=60):
    """Waits until grpc.health.v1 says SERVING (every worker answers)."""
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=lambda b: b, response_deserializer=lambda b: b)
    end = time.time() + timeout
    while time.time() < end:
        try:
            if check(b"", timeout=2) == b"\x08\x01":  # status: SERVING
                return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    sys.exit("soak: the coordinator was not SERVING after %d s" % timeout)


def wait_idle(stubs, timeout=30):
    """Waits until the coordinator has no request and no worker holds a KV-cache slot."""
    end = time.time() + timeout
    while True:
        try:
            w = stubs["ListWorkers"](stubs["types"]("ListWorkersRequest")(), timeout=5)
        except grpc.RpcError as e:
            return "ListWorkers failed: %s %s" % (e.code().name, e.details())
        busy = [x.name for x in w.workers if x.active_sequences or x.cached_tokens]
        states = [x.state for x in w.workers]
        if not (w.running_requests or w.queued_requests or busy) and set(states) == {"ready"}:
            return None
        if time.time() > end:
            return ("not idle after %d s: %d running, %d queued, workers %s, slots held by %s"
                    % (timeout, w.running_requests, w.queued_requests, states, busy))
        time.sleep(0.2)


def server_outcomes(url):
    """The coordinator's layerpipe_requests_total{api="grpc"} by outcome."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for m in re.finditer(r'^layerpipe_requests_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("api") == "grpc":
            out[labels["outcome"]] = out.get(labels["outcome"], 0) + int(float(m.group(2)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--metrics", required=True, help="the coordinator's /metrics URL")
    p.add_argument("--requests", type=int, required=True)
    p.add_argument("--warmup", type=int, default=0, help="default: max(100, requests / 20)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pid", action="append", default=[], help="NAME=PID of a process to watch")
    args = p.parse_args()
    pids = {n: int(v) for n, v in (x.split("=", 1) for x in args.pid)}

    channel = grpc.insecure_channel(args.endpoint)
    wait_serving(channel)
    types = service_types(channel, "layerpipe.v1.Inference")
    stubs = {"types": types}
    for method, req, resp in [("Generate", "GenerateRequest", "GenerateResponse"),
                              ("GetModelInfo", "GetModelInfoRequest", "ModelInfo"),
                              ("ListWorkers", "ListWorkersRequest", "ListWorkersResponse")]:
        kind = channel.unary_stream if method == "Generate" else channel.unary_unary
        stubs[method] = kind("/layerpipe.v1.Inference/" + method,
                             request_serializer=types(req).SerializeToString,
                             response_deserializer=types(resp).FromString)
    info = stubs["GetModelInfo"](types("GetModelInfoRequest")(), timeout=10)
    print("soak: %s, context %d, batch %d, queue %d; %d requests, %d at a time, seed %d"
          % (info.architecture, info.max_context, info.max_batch, info.queue_capacity,
             args.requests, args.concurrency, args.seed))
    if info.max_batch + info.queue_capacity + args.concurrency >= BURST_SIZE:
        sys.exit("soak: a burst of %d would not pass max_batch + queue" % BURST_SIZE)
    rng = random.Random(args.seed)
    maker = Maker(types, info, rng)
    failures = []

    warmup = maker.batch(args.warmup or max(100, args.requests // 20))
    start = time.time()
    run(stubs["Generate"], warmup, args.concurrency, failures)
    idle = wait_idle(stubs)
    time.sleep(1)
    before = measure(pids)
    print("soak: warm-up of %d requests in %.1f s"
          % (sum(len(b) for b in warmup), time.time() - start))

    batch = maker.batch(args.requests)
    start = time.time()
    run(stubs["Generate"], batch, args.concurrency, failures)
    wall = time.time() - start
    idle = idle or wait_idle(stubs)
    time.sleep(1)
    after = measure(pids)

    plans = [p for b in batch for p in b]
    counts, bursts_refused = {}, 0
    for plan in plans:
        counts[(plan.kind, plan.code.name)] = counts.get((plan.kind, plan.code.name), 0) + 1
    for plan in plans + [p for b in warmup for p in b]:
        if plan.code not in plan.expect:
            failures.append("%s request ended %s: %s" % (plan.kind, plan.code.name, plan.detail))
    for b in batch:
        if len(b) > 1 and any(p.code == EXHAUSTED for p in b):
            bursts_refused += 1
    n_bursts = sum(1 for b in batch if len(b) > 1)
    tokens = sum(p.tokens for p in plans)
    print("soak: %d requests in %.1f s (%.1f requests/s, %d tokens streamed)"
          % (len(plans), wall, len(plans) / wall, tokens))
    for kind in ["ok", "burst", "cancel", "invalid", "deadline"]:
        got = ", ".join("%s %d" % (c, n) for (k, c), n in sorted(counts.items()) if k == kind)
        print("  %-8s %s" % (kind, got or "-"))
    print("  bursts: %d of %d reached RESOURCE_EXHAUSTED" % (bursts_refused, n_bursts))
    if n_bursts and not bursts_refused:
        failures.append("no burst went past the queue bound")
    if idle:
        failures.append(idle)

    # The coordinator's view (warm-up included): the same OK / INVALID_ARGUMENT /
    # RESOURCE_EXHAUSTED counts; a cancel or a passed deadline is CANCELLED there, or absent
    # when the deadline passed before the call reached it.
    server = server_outcomes(args.metrics)
    client = {}
    for plan in plans + [p for b in warmup for p in b]:
        client[plan.code.name] = client.get(plan.code.name, 0) + 1
    print("  coordinator (warm-up included): "
          + ", ".join("%s %d" % kv for kv in sorted(server.items())))
    for code in ["OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"]:
        if server.get(code, 0) != client.get(code, 0):
            failures.append("the coordinator counted %d %s, the client %d"
                            % (server.get(code, 0), code, client.get(code, 0)))
    gone = client.get("CANCELLED", 0) + client.get("DEADLINE_EXCEEDED", 0)
    if not client.get("CANCELLED", 0) <= server.get("CANCELLED", 0) <= gone:
        failures.append("the coordinator counted %d CANCELLED; the client cancelled %d and "
                        "passed %d deadlines" % (server.get("CANCELLED", 0),
                                                client.get("CANCELLED", 0),
                                                client.get("DEADLINE_EXCEEDED", 0)))
    other = set(server) - {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "CANCELLED"}
    if other:
        failures.append("the coordinator counted other outcomes: " + ", ".join(sorted(other)))

    print("%-12s %12s %12s %7s %8s %8s %7s" % ("process", "RSS warm KiB", "RSS after", "growth",
                                              "fds warm", "fds after", "growth"))
    for name in pids:
        (r0, f0), (r1, f1) = before[name], after[name]
        print("%-12s %12d %12d %+6.1f%% %8d %8d %+6d" % (name, r0, r1, 100.0 * (r1 - r0) / r0,
                                                        f0, f1, f1 - f0))
        if r1 > r0 * (1 + RSS_GROWTH):
            failures.append("%s: RSS grew from %d to %d KiB" % (name, r0, r1))
        if f1 > f0 * 1.10 + FD_SLACK:
            failures.append("%s: open fds grew from %d to %d" % (name, f0, f1))
    if failures:
        print("soak: FAIL (%d problems)" % len(failures))
        for f in sorted(set(failures)):
            print("  " + f)
        sys.exit(1)
    print("soak: PASS")


if __name__ == "__main__":
    main()
