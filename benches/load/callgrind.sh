#!/bin/bash
# Instructions per request of a frontend binary under callgrind: the load-independent A/B
# (docs/benchmarks.md, round 7). Needs valgrind and a release build (`cargo build --release -p
# switchyard`); run it for each binary and compare.
# usage: benches/load/callgrind.sh BIN [case] [extra serve args...]   case: plain (non-streamed chat) | stream | messages | responses
# Prints per-request instructions = (I(N2) - I(N1)) / (N2 - N1).
set -euo pipefail
BIN=$1; CASE=${2:-plain}; shift 2 || shift $#
EXTRA=("$@")
MPORT=${MPORT:-23901}; FPORT=${FPORT:-23902}
N1=${N1:-200}; N2=${N2:-1200}
work=$(mktemp -d)
$BIN mocker --listen 127.0.0.1:$MPORT >/dev/null 2>&1 &
MPID=$!
trap 'kill $MPID 2>/dev/null || true; rm -rf $work' EXIT
run() {
  local n=$1
  valgrind --tool=callgrind --callgrind-out-file=$work/cg.$n --dump-instr=no \
    $BIN serve --listen 127.0.0.1:$FPORT --worker mock-model=http://127.0.0.1:$MPORT "${EXTRA[@]}" >/dev/null 2>$work/err.$n &
  local pid=$!
  python3 - "$n" "$CASE" "$FPORT" <<'PY'
import http.client, json, sys, time
n, case, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for _ in range(600):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60); c.request("GET", "/live"); c.getresponse().read(); break
    except Exception: time.sleep(0.1)
msgs = [{"role": "user", "content": "hello there"}]
path, body = {
  "plain": ("/v1/chat/completions", {"model": "mock-model", "messages": msgs, "max_tokens": 16}),
  "stream": ("/v1/chat/completions", {"model": "mock-model", "messages": msgs, "max_tokens": 16, "stream": True}),
  "messages": ("/v1/messages", {"model": "mock-model", "messages": msgs, "max_tokens": 16, "stream": True}),
  "responses": ("/v1/responses", {"model": "mock-model", "input": "hello there", "max_output_tokens": 16, "stream": True}),
}[case]
data = json.dumps(body)
hdr = {"content-type": "application/json", "x-api-key": "k", "anthropic-version": "2023-06-01"}
for i in range(n):
    c.request("POST", path, data, hdr); r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
  kill -TERM $pid; wait $pid || true
  grep -E '^(summary|totals):' $work/cg.$n | head -1 | awk '{print $2}'
}
a=$(run $N1); b=$(run $N2)
echo "$CASE: $(( (b - a) / (N2 - N1) )) instructions/request  (I$N1=$a I$N2=$b)"
