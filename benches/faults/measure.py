#!/usr/bin/env python3
"""Measures the fault scenarios of docs/reliability.md against real processes.

Usage: python3 benches/faults/measure.py [path/to/switchyard]

Starts mockers and frontends on loopback (stdlib only), injects each fault and prints one
Markdown table row per scenario: success %, time to detect, time to recover, retry
amplification, added latency at a migration splice; then the bad-input table. Not a
pass/fail test: figures depend on the machine (the load average is printed). Each scenario
runs in a few seconds. Use a release build: a debug frontend adds its own latency.

Polled times (detect, cancel) have the resolution of one /metrics scrape (~1 ms).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/switchyard"
MODEL = "mock-model"
TOKEN = "bench-admin-token"
ADMIN_PORTS = {}  # frontend port -> its admin port
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, path, within=20):
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.025)
    raise RuntimeError(f"port {port} not ready")


def spawn(args):
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in args]
    p = subprocess.Popen([BIN] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    return p, port


def mocker(*extra):
    p, port = spawn(["mocker", "--listen", "127.0.0.1:{port}", *extra])
    wait_ready(port, "/v1/models")
    return p, port


def frontend(yaml, workers, *extra):
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(yaml)
    f.close()
    admin = free_port()
    args = ["serve", "--listen", "127.0.0.1:{port}", "--config", f.name, "--admin-token", TOKEN,
            "--admin-listen", f"127.0.0.1:{admin}"]
    for _, port in workers:
        args += ["--worker", f"{MODEL}=http://127.0.0.1:{port}"]
    p, port = spawn(args + list(extra))
    wait_ready(port, "/live")
    ADMIN_PORTS[port] = admin  # the admin API has a listener of its own
    return p, port


def stop_all():
    for p in PROCS:
        try:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()
        except OSError:
            pass
    PROCS.clear()


def chat(i, tokens, stream):
    return {"model": MODEL, "messages": [{"role": "user", "content": f"bench {i}"}],
            "max_tokens": tokens, "stream": stream, "seed": i}


def post(port, body, path="/v1/chat/completions", timeout=30):
    """Returns (status, text, error, event arrival times)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        r = c.getresponse()
        if not body.get("stream"):
            data = json.loads(r.read() or b"null")
            if r.status != 200:
                return r.status, "", data, []
            return r.status, data["choices"][0]["message"]["content"], None, []
        text, error, times, buf = "", None, [], b""
        while True:
            line = r.fp.readline()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            times.append(time.monotonic())
            if payload == b"[DONE]":
                return r.status, text, error, times
            v = json.loads(payload)
            if "error" in v:
                error = v
                continue
            for ch in v.get("choices", []):
                text += (ch.get("delta") or {}).get("content") or ch.get("text") or ""
        return r.status, text, error or "truncated", times
    except OSError as e:
        return 0, "", str(e), []
    finally:
        c.close()


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def health(port, instance_port):
    c = http.client.HTTPConnection("127.0.0.1", ADMIN_PORTS[port], timeout=5)
    c.request("GET", "/admin/instances", headers={"authorization": f"Bearer {TOKEN}"})
    for i in json.loads(c.getresponse().read())["instances"]:
        if i["id"] == f"127.0.0.1:{instance_port}":
            return i["health"]
    return "?"


def parallel(fn, n):
    out = [None] * n
    def run(i):
        out[i] = fn(i)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, out


def join(threads):
    for t in threads:
        t.join()


def wait_until(pred, within=10.0):
    start = time.monotonic()
    while time.monotonic() - start < within:
        if pred():
            return time.monotonic() - start
        time.sleep(0.005)
    return float("nan")


def splice_gap(times, itl):
    """Largest inter-event gap beyond the normal inter-token latency, ms."""
    gaps = [b - a for a, b in zip(times, times[1:])]
    return max(0.0, (max(gaps) if gaps else 0) - itl) * 1000


ROWS = []


def ms(v):
    return "n/a" if v is None or v != v else f"{v:.0f} ms"


def row(name, success, detect, recover, amplification, splice):
    """detect/recover/splice: numbers (ms) or ready strings; amplification: upstream
    requests per client request."""
    cell = lambda v: v if isinstance(v, str) else ms(v)
    amp = "–" if amplification is None else f"{amplification:.2f}×"
    ROWS.append(f"| {name} | {success:.1f} % | {cell(detect)} | {cell(recover)} | {amp} | {cell(splice)} |")
    print(ROWS[-1], flush=True)


def served_by(port, instance_port):
    """Sends one request; true if `instance_port` served it."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/v1/chat/completions", json.dumps(chat(0, 1, False)),
              {"content-type": "application/json"})
    r = c.getresponse()
    r.read()
    return r.status == 200 and r.getheader("x-switchyard-instance") == f"127.0.0.1:{instance_port}"


def kill_scenario(migration, n=32, tokens=60, itl_ms=15):
    ref = mocker()
    victim, survivor = mocker("--itl-ms", str(itl_ms)), mocker("--itl-ms", str(itl_ms))
    yaml = "probe:\n  interval_ms: 0\n" + (f"migration_limit: 2\n" if migration else "")
    _, fe = frontend(yaml, [victim, survivor], "--policy", "round-robin")
    expected = [post(ref[1], chat(i, tokens, False))[1] for i in range(n)]
    threads, out = parallel(lambda i: post(fe, chat(i, tokens, True)), n)
    time.sleep(0.3)
    # Detected = the frontend acted on it: a stream migrated or ended with an in-band error.
    seen = "switchyard_stream_migrations_total" if migration else "switchyard_stream_errors_total"
    killed = time.monotonic()
    victim[0].send_signal(signal.SIGKILL)
    detect = wait_until(lambda: metric(fe, seen) >= 1, within=10) * 1000
    join(threads)
    exact = sum(1 for (s, t, e, _), x in zip(out, expected) if s == 200 and e is None and t == x)
    explicit = sum(1 for s, t, e, _ in out if e is not None and e != "truncated")
    silent = sum(1 for (s, t, e, _), x in zip(out, expected) if e is None and t != x or e == "truncated")
    gaps = [splice_gap(ts, itl_ms / 1000) for s, t, e, ts in out if ts and ts[-1] > killed]
    migrated = metric(fe, "switchyard_stream_migrations_total")
    splice = max(gaps) if migration and gaps else None
    name = ("SIGKILL mid-stream, migration on (default retry budget)" if migration
            else "SIGKILL mid-stream, migration off")
    recover = f"{splice:.0f} ms (splice)" if splice is not None else "–"
    row(name, 100.0 * exact / n, detect, recover, 1 + migrated / n,
        splice if migration else "–")
    if not migration:
        print(f"    explicit errors: {explicit}, silent truncations: {silent}")
    stop_all()


def stall_scenario(n=16, tokens=60, itl_ms=15, stall_ms=500):
    ref = mocker()
    staller, survivor = mocker("--itl-ms", str(itl_ms)), mocker("--itl-ms", str(itl_ms))
    yaml = (f"probe:\n  interval_ms: 0\nmigration_limit: 1\nupstream:\n  stall_timeout_ms: {stall_ms}\n"
            "health:\n  failure_threshold: 50\n")
    _, fe = frontend(yaml, [staller, survivor], "--policy", "round-robin")
    expected = [post(ref[1], chat(i, tokens, False))[1] for i in range(n)]
    threads, out = parallel(lambda i: post(fe, chat(i, tokens, True)), n)
    time.sleep(0.3)
    stopped = time.monotonic()
    staller[0].send_signal(signal.SIGSTOP)
    detect = wait_until(lambda: metric(fe, "switchyard_stream_stalls_total") >= 1) * 1000
    join(threads)
    exact = sum(1 for (s, t, e, _), x in zip(out, expected) if s == 200 and e is None and t == x)
    gaps = [splice_gap(ts, itl_ms / 1000) for s, t, e, ts in out if ts and ts[-1] > stopped]
    gap = max(gaps) if gaps else None
    row(f"stalled stream (SIGSTOP, stall timeout {stall_ms} ms)", 100.0 * exact / n, detect,
        f"{gap:.0f} ms (longest gap)" if gap else "n/a",
        1 + metric(fe, "switchyard_stream_migrations_total") / n,
        f"{max(0.0, gap - stall_ms):.0f} ms beyond the stall timeout" if gap else "n/a")
    stop_all()


def black_hole_scenario(n=200):
    hole, good = mocker(), mocker()
    yaml = ("probe:\n  interval_ms: 100\n  timeout_ms: 200\nupstream:\n  first_byte_timeout_ms: 500\n"
            "health:\n  eject_base_ms: 1000\nretry_budget:\n  min_concurrent: 10\n")
    _, fe = frontend(yaml, [hole, good], "--policy", "round-robin")
    hole[0].send_signal(signal.SIGSTOP)
    threads, out = parallel(lambda i: post(fe, chat(i, 4, i % 2 == 1)), 10)
    detect = wait_until(lambda: health(fe, hole[1]) != "healthy") * 1000
    join(threads)
    ok = sum(1 for s, t, e, _ in out if s == 200 and e is None)
    results = [post(fe, chat(i, 4, False)) for i in range(n - 10)]
    ok += sum(1 for s, t, e, _ in results if s == 200)
    hole[0].send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    # Back in rotation: the ejection expires, the half-open trial succeeds.
    recover = wait_until(lambda: served_by(fe, hole[1]), within=30) * 1000
    amp = 1 + metric(fe, "switchyard_retries_total") / n
    row("SIGSTOP black hole (probe 100 ms/200 ms, SIGCONT after the load)", 100.0 * ok / n, detect,
        f"{recover:.0f} ms after SIGCONT", amp, "–")
    stop_all()


def flaky_scenario(n=200):
    flaky, good = mocker("--fail-rate", "0.5", "--seed", "3"), mocker()
    _, fe = frontend("probe:\n  interval_ms: 0\nhealth:\n  failure_threshold: 100000\n", [flaky, good],
                     "--policy", "round-robin")
    results = [post(fe, chat(i, 4, i % 2 == 1)) for i in range(n)]
    ok = sum(1 for s, t, e, _ in results if s == 200 and e is None)
    row("50 %-failing worker + healthy one", 100.0 * ok / n, "per request", "immediate (retry)",
        1 + metric(fe, "switchyard_retries_total") / n, "–")
    stop_all()


def all_failing_scenario(n=200):
    a, b = mocker("--fail-rate", "1"), mocker("--fail-rate", "1")
    _, fe = frontend("probe:\n  interval_ms: 0\n", [a, b])
    start = time.monotonic()
    results = [post(fe, chat(i, 4, False)) for i in range(n)]
    elapsed = (time.monotonic() - start) / n * 1000
    fast = sum(1 for s, *_ in results if s == 503)
    attempts = sum(1 for s, *_ in results if s == 502) + metric(fe, "switchyard_retries_total")
    row(f"all workers failing ({fast}/{n} fast 503s, {elapsed:.1f} ms mean latency)", 0.0,
        "first request", "–", attempts / n, "–")
    stop_all()


def budget_scenario(n=60, budgeted=True):
    pool = [mocker("--hang-rate", "1") for _ in range(3)]
    yaml = ("probe:\n  interval_ms: 0\nupstream:\n  first_byte_timeout_ms: 300\n"
            "health:\n  failure_threshold: 100000\n")
    if not budgeted:
        yaml += "retry_budget:\n  percent: 100\n  min_concurrent: 100000\n"
    _, fe = frontend(yaml, pool)
    threads, out = parallel(lambda i: post(fe, chat(i, 4, False)), n)
    join(threads)
    amp = 1 + metric(fe, "switchyard_retries_total") / n
    budget = "retry budget 20 %" if budgeted else "no retry budget"
    row(f"all workers hanging, no ejection ({budget}, {n} concurrent)", 0.0, "–", "–", amp, "–")
    stop_all()


def stall_keepalive_scenario(n=16, tokens=60, stall_ms=500):
    """A stall hidden behind `: keep-alive` comments every 50 ms."""
    ref = mocker()
    staller = mocker("--stall-after-tokens", "20", "--stall-keepalive-ms", "50")
    survivor = mocker()
    yaml = (f"probe:\n  interval_ms: 0\nmigration_limit: 1\nupstream:\n  stall_timeout_ms: {stall_ms}\n"
            "health:\n  failure_threshold: 50\n")
    _, fe = frontend(yaml, [staller, survivor], "--policy", "round-robin")
    expected = [post(ref[1], chat(i, tokens, False))[1] for i in range(n)]
    start = time.monotonic()
    threads, out = parallel(lambda i: post(fe, chat(i, tokens, True)), n)
    detect = wait_until(lambda: metric(fe, "switchyard_stream_stalls_total") >= 1) * 1000
    join(threads)
    exact = sum(1 for (s, t, e, _), x in zip(out, expected) if s == 200 and e is None and t == x)
    gaps = [splice_gap(ts, 0) for s, t, e, ts in out if ts]
    gap = max(gaps) if gaps else None
    row(f"stall behind keep-alive comments (stall timeout {stall_ms} ms)", 100.0 * exact / n,
        f"{detect:.0f} ms after the streams started", f"{gap:.0f} ms (longest gap)" if gap else "n/a",
        1 + metric(fe, "switchyard_stream_migrations_total") / n, "–")
    stop_all()


def error_event_scenario(n=16, tokens=60, itl_ms=15):
    """Worker sends an in-band error event mid-stream (vLLM's engine failure)."""
    ref = mocker()
    broken = mocker("--error-after-tokens", "20", "--itl-ms", str(itl_ms))
    survivor = mocker("--itl-ms", str(itl_ms))
    yaml = "probe:\n  interval_ms: 0\nmigration_limit: 1\n"
    _, fe = frontend(yaml, [broken, survivor], "--policy", "round-robin")
    expected = [post(ref[1], chat(i, tokens, False))[1] for i in range(n)]
    threads, out = parallel(lambda i: post(fe, chat(i, tokens, True)), n)
    join(threads)
    exact = sum(1 for (s, t, e, _), x in zip(out, expected) if s == 200 and e is None and t == x)
    gaps = [splice_gap(ts, itl_ms / 1000) for s, t, e, ts in out if ts]
    gap = max(gaps) if gaps else None
    row("in-band error event mid-stream, migration on", 100.0 * exact / n, "at the event",
        f"{gap:.0f} ms (splice)" if gap else "n/a",
        1 + metric(fe, "switchyard_stream_migrations_total") / n, gap)
    stop_all()


def post_timed(port, body, headers=None, timeout=30):
    """Non-streamed POST; returns (status, Retry-After header, seconds)."""
    start = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"content-type": "application/json", **(headers or {})}
        c.request("POST", "/v1/chat/completions", json.dumps(body), h)
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("retry-after"), time.monotonic() - start
    except OSError:
        return 0, None, time.monotonic() - start
    finally:
        c.close()


def saturation_scenario(n=60):
    """max_concurrent 4, queue 8: 60 concurrent requests of ~200 ms, a quarter low priority."""
    m = mocker("--itl-ms", "25")
    yaml = ("probe:\n  interval_ms: 0\noverload:\n  max_concurrent: 4\n  max_queue: 8\n"
            "  queue_timeout_ms: 1000\n")
    _, fe = frontend(yaml, [m])
    low = lambda i: {"x-switchyard-priority": "low"} if i % 4 == 0 else {}
    threads, out = parallel(lambda i: post_timed(fe, chat(i, 8, False), low(i)), n)
    join(threads)
    served = sorted(t * 1000 for s, _, t in out if s == 200)
    shed = [(s, ra, t) for s, ra, t in out if s in (429, 503)]
    other = [s for s, _, _ in out if s not in (200, 429, 503)]
    with_ra = sum(1 for _, ra, _ in shed if ra)
    by = {code: sum(1 for s, _, _ in shed if s == code) for code in (429, 503)}
    shed_ms = sorted(t * 1000 for _, _, t in shed)
    recover = wait_until(lambda: post_timed(fe, chat(0, 1, False))[0] == 200) * 1000
    p50 = shed_ms[len(shed_ms) // 2] if shed_ms else float("nan")
    row(f"saturation (max_concurrent 4, queue 8 / 1 s; {n} concurrent ~200 ms requests, ¼ low "
        f"priority): {len(served)} served (slowest {served[-1]:.0f} ms, i.e. queued), {by[503]}×503, "
        f"{by[429]}×429, {with_ra}/{len(shed)} with Retry-After, {len(other)} other",
        100.0 * len(served) / n, f"{p50:.1f} ms (shed answered, p50)",
        f"{recover:.0f} ms (next request served)", 1.0, "–")
    stop_all()


def cancel_scenario(runs=10):
    """Time from the client closing a stream until the mocker counts the cancellation."""
    m = mocker("--itl-ms", "20")
    _, fe = frontend("probe:\n  interval_ms: 0\n", [m])
    times = []
    for i in range(runs):
        before = metric(m[1], "switchyard_mocker_requests_cancelled_total")
        c = http.client.HTTPConnection("127.0.0.1", fe, timeout=10)
        c.request("POST", "/v1/chat/completions", json.dumps(chat(i, 400, True)),
                  {"content-type": "application/json"})
        r = c.getresponse()
        for _ in range(3):
            r.fp.readline()
        sock = c.sock or r.fp.raw._sock
        sock.shutdown(socket.SHUT_RDWR)
        c.close()
        seen = wait_until(lambda: metric(m[1], "switchyard_mocker_requests_cancelled_total") > before,
                          within=5)
        times.append(seen * 1000)
    ok = [t for t in times if t == t]
    ok.sort()
    row(f"client cancel ({runs} streams dropped after 3 events)", 100.0 * len(ok) / runs,
        f"{ok[len(ok) // 2]:.1f} ms p50, {ok[-1]:.1f} ms max (mocker sees the abort)" if ok else "n/a",
        "–", None, "–")
    stop_all()


def sigterm_scenario(n=16, tokens=60, itl_ms=15):
    ref = mocker()
    m = mocker("--itl-ms", str(itl_ms))
    p, fe = frontend("probe:\n  interval_ms: 0\n", [m])
    expected = [post(ref[1], chat(i, tokens, False))[1] for i in range(n)]
    threads, out = parallel(lambda i: post(fe, chat(i, tokens, True)), n)
    time.sleep(0.3)
    term = time.monotonic()
    p.send_signal(signal.SIGTERM)

    def refused():
        try:
            socket.create_connection(("127.0.0.1", fe), timeout=1).close()
            return False
        except OSError:
            return True
    detect = wait_until(refused, within=10) * 1000
    join(threads)
    try:
        p.wait(timeout=30)
        exited = (time.monotonic() - term) * 1000
    except subprocess.TimeoutExpired:
        exited = float("nan")
    exact = sum(1 for (s, t, e, _), x in zip(out, expected) if s == 200 and e is None and t == x)
    row(f"SIGTERM to the frontend with {n} streams in flight", 100.0 * exact / n,
        f"{detect:.1f} ms (new connections refused)", f"{exited:.0f} ms (exit, streams done)", 1.0, "–")
    stop_all()


def slowloris_scenario(slow=20, n=50):
    m = mocker()
    _, fe = frontend("probe:\n  interval_ms: 0\nlimits:\n  header_read_timeout_ms: 400\n", [m])
    closed = [None] * slow

    def loris(i):
        start = time.monotonic()
        s = socket.create_connection(("127.0.0.1", fe))
        s.settimeout(0.05)
        try:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            # One header byte per 50 ms (the recv timeout) until the frontend closes: EOF,
            # a reset, or an answer (a 408) all count.
            while time.monotonic() - start < 10:
                try:
                    s.sendall(b"a")
                    s.recv(256)
                except socket.timeout:
                    continue
                except OSError:
                    pass
                closed[i] = time.monotonic() - start
                break
        finally:
            s.close()
    threads = [threading.Thread(target=loris, args=(i,)) for i in range(slow)]
    for t in threads:
        t.start()
    results = [post_timed(fe, chat(i, 2, False)) for i in range(n)]
    for t in threads:
        t.join()
    ok = sum(1 for s, _, _ in results if s == 200)
    times = sorted(c * 1000 for c in closed if c is not None and c < 10)
    row(f"slowloris ({slow} connections trickling headers, header timeout 400 ms; {n} normal requests)",
        100.0 * ok / n,
        f"{times[len(times) // 2]:.0f} ms p50, {times[-1]:.0f} ms max (closed)" if times else "never closed",
        "–", 1.0, "–")
    stop_all()


def bad_input_table():
    m = mocker()
    _, fe = frontend("probe:\n  interval_ms: 0\n", [m])
    msg = '"messages":[{"role":"user","content":"x"}]'
    valid = ('{"model":"mock-model",' + msg + ',"max_tokens":1}').encode()
    deep = ('{"model":"mock-model",' + msg + ',"x":' + "[" * 100000 + "]" * 100000 + "}").encode()
    cases = [
        ("non-object JSON (array)", b"[1,2,3]", {}),
        ("non-object JSON (string)", b'"hello"', {}),
        ("empty body", b"", {}),
        ("10^5-deep nesting", deep, {}),
        ("invalid UTF-8", b'{"model":"mock-\xff\xfe","messages":[]}', {}),
        ("NaN", ('{"model":"mock-model",' + msg + ',"temperature":NaN}').encode(), {}),
        ("huge float (1e400)", ('{"model":"mock-model",' + msg + ',"max_tokens":1e400}').encode(), {}),
        ("huge int", ('{"model":"mock-model",' + msg + ',"max_tokens":99999999999999999999999}').encode(), {}),
        ("truncated JSON", b'{"model":"mock-model","messages":[{', {}),
        ("65 KiB header (limit 64 KiB)", valid, {"x-big": "a" * 65 * 1024}),
        ("100 KiB header", valid, {"x-big": "a" * 100 * 1024}),
        ("300 headers (limit 128)", valid, {f"x-h{i}": "v" for i in range(300)}),
    ]
    print("\n| bad input | status | answered in |\n|---|---|---|")
    for name, body, headers in cases:
        start = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", fe, timeout=20)
        try:
            c.putrequest("POST", "/v1/chat/completions")
            c.putheader("content-type", "application/json")
            c.putheader("content-length", str(len(body)))
            for k, v in headers.items():
                c.putheader(k, v)
            c.endheaders(body)
            status = c.getresponse().status
        except OSError as e:
            status = f"connection error ({e.__class__.__name__})"
        finally:
            c.close()
        print(f"| {name} | {status} | {(time.monotonic() - start) * 1000:.1f} ms |", flush=True)
    live = http.client.HTTPConnection("127.0.0.1", fe, timeout=5)
    live.request("GET", "/live")
    print(f"(frontend /live afterwards: {live.getresponse().status})")
    stop_all()


def main():
    print(f"# {BIN}; load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print("| scenario | success | time to detect | time to recover | retry amplification | added latency at splice |")
    print("|---|---|---|---|---|---|")
    try:
        kill_scenario(True)
        kill_scenario(False)
        stall_scenario()
        stall_keepalive_scenario()
        error_event_scenario()
        black_hole_scenario()
        flaky_scenario()
        all_failing_scenario()
        budget_scenario()
        budget_scenario(budgeted=False)
        saturation_scenario()
        cancel_scenario()
        sigterm_scenario()
        slowloris_scenario()
        bad_input_table()
    finally:
        stop_all()
    print(f"# load average at end: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
