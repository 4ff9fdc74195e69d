#!/usr/bin/env bash
# The soak test: N requests (default 300) of random parameters against a 3-worker CPU cluster on
# tests/fixtures/qwen3-tiny, 10% cancelled mid-stream, 5% invalid, 5% past a tiny deadline,
# bursts of 20 past the queue bound (max_batch 4 + queue 8), sent by scripts/soak.py (Debian's
# python3-grpcio). Fails when a request ends with another code than its expected one, a process
# dies, a KV-cache slot or request is left behind, or a process's resident memory or open fds
# grew more than 10% (fds: 10% + 4) from their values after a warm-up.
# Usage: scripts/soak.sh [N] [soak.py flags...]; programs from $LP_BIN_DIR, else build/bin.
# Exit code 77 (CTest's skip) where python3-grpcio or python3-protobuf is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
requests="${1:-300}"
shift || true
bin="${LP_BIN_DIR:-build/bin}"
bin=$(cd "$bin" && pwd)
if ! /usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null; then
  echo "soak: SKIP: /usr/bin/python3 lacks grpc or protobuf (python3-grpcio, python3-protobuf)"
  exit 77
fi

dir=$(mktemp -d /tmp/lp_soak.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

# Free loopback ports, held together so none is given twice.
read -r -a ports < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(5)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
cat >"$dir/cluster.yaml" <<EOF
model:
  path: $PWD/tests/fixtures/qwen3-tiny
device_map: balanced
coordinator:
  listen: "127.0.0.1:${ports[0]}"
workers:
  - {name: w0, device: "cpu:0", address: "127.0.0.1:${ports[1]}"}
  - {name: w1, device: "cpu:1", address: "127.0.0.1:${ports[2]}"}
  - {name: w2, device: "cpu:2", address: "127.0.0.1:${ports[3]}"}
limits: {max_batch: 4, max_context: 256, max_step_tokens: 128}
EOF

names=(w0 w1 w2 coordinator)
for w in w0 w1 w2; do
  "$bin/layerpipe-worker" "$dir/cluster.yaml" --name "$w" --threads 1 >"$dir/$w.log" 2>&1 &
  pids+=($!)
done
"$bin/layerpipe-coordinator" "$dir/cluster.yaml" --queue 8 \
  --metrics-listen "127.0.0.1:${ports[4]}" >"$dir/coordinator.log" 2>&1 &
pids+=($!)

endpoint="127.0.0.1:${ports[0]}"
for _ in $(seq 600); do
  grep -q "serving layerpipe.v1.Inference" "$dir/coordinator.log" && break
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "soak: ${names[$i]} exited while the cluster started:" >&2
      tail -n 20 "$dir/${names[$i]}.log" >&2
      exit 1
    fi
  done
  sleep 0.1
done
grep -q "serving layerpipe.v1.Inference" "$dir/coordinator.log" || {
  echo "soak: the coordinator did not start in 60 s" >&2
  tail -n 20 "$dir/coordinator.log" >&2
  exit 1
}

args=()
for i in "${!pids[@]}"; do args+=(--pid "${names[$i]}=${pids[$i]}"); done
status=0
/usr/bin/python3 scripts/soak.py --endpoint "$endpoint" --requests "$requests" \
  --metrics "http://127.0.0.1:${ports[4]}/metrics" "${args[@]}" "$@" || status=$?
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null || grep -q '^State:.*Z' "/proc/${pids[$i]}/status"; then
    echo "soak: FAIL: ${names[$i]} died; its last lines:" >&2
    tail -n 20 "$dir/${names[$i]}.log" >&2
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  for n in "${names[@]}"; do
    echo "== $n.log (last lines)" >&2
    grep -v 'outcome=OK\|outcome=CANCELLED' "$dir/$n.log" | tail -n 10 >&2 || true
  done
fi
exit "$status"
