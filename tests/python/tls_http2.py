"""TLS, ALPN and HTTP/2 through the whole streamed path, with httpx.

Usage: tls_http2.py BASE_URL CA_FILE MODEL WAIT_SECONDS. Retries the first request for up
to WAIT_SECONDS (the server may still be starting, or be about to load a new certificate
signed by CA_FILE). Exits non-zero on the first mismatch.
"""
import sys
import time

import httpx

base, ca, model, wait = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

deadline = time.time() + wait
while True:
    try:
        with httpx.Client(http2=True, verify=ca, timeout=10) as c:
            r = c.get(f"{base}/live")
        break
    except httpx.HTTPError as e:
        if time.time() > deadline:
            raise SystemExit(f"no TLS connection trusted by {ca}: {e!r}")
        time.sleep(0.1)
assert r.status_code == 200, r.status_code
assert r.http_version == "HTTP/2", r.http_version

body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6,
        "stream": True}
with httpx.Client(http2=True, verify=ca, timeout=30) as c:
    with c.stream("POST", f"{base}/v1/chat/completions", json=body) as r:
        assert r.status_code == 200, r.status_code
        assert r.http_version == "HTTP/2", r.http_version
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
assert data[-1] == "[DONE]", data
assert any('"content"' in d for d in data), data

with httpx.Client(http2=False, verify=ca, timeout=10) as c:
    r = c.post(f"{base}/v1/chat/completions", json={**body, "stream": False})
    assert r.status_code == 200, r.text
    assert r.http_version == "HTTP/1.1", r.http_version
    assert r.json()["choices"][0]["message"]["content"]

print("ALL OK")
