"""A steady stream of checks against the compose fleet's coordinator, for .ci/compose-e2e.sh.

Each of CONCURRENCY workers sends POST /mpic on a new connection (as `curl` would), paced so
that together they send RATE requests a second, until the file STOP exists. Every request is
classified by what its client saw:

  ok        200 with the expected verdict (CAA permit.demo.test valid, deny.demo.test not
            valid; with --with-dcv also dns-change and acme-http-01 on demo.test, valid)
  wrong     200 with the other verdict
  refused   no connection: refused, unreachable or not accepted within a second (nothing was
            sent, the client may simply retry; allowed only with --allow-refused)
  cut       connected and sent, then no answer: reset, closed, an empty or partial reply (an
            accepted request lost)
  slow      no answer within the request deadline
  status    another HTTP status

and written as one JSON line to OUT. At the end it prints a summary and exits 1 when any
request was wrong, cut, slow, answered another status, took longer than the deadline, or was
refused without --allow-refused.

Usage: compose_load.py URL API_KEY OUT STOP [--rate 20] [--concurrency 5] [--deadline-ms 15000]
                       [--allow-refused] [--with-dcv]
"""

import argparse
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

CAA = [
    ({"check_type": "caa", "domain_or_ip_target": "permit.demo.test"}, True),
    ({"check_type": "caa", "domain_or_ip_target": "deny.demo.test"}, False),
]
# With --with-dcv: the demo's DNS and HTTP methods too (the HTTP one needs each perspective's
# demo web server).
DCV = [
    ({"check_type": "dcv", "domain_or_ip_target": "demo.test", "dcv_check_parameters": {
        "validation_method": "dns-change", "challenge_value": "demo-dns-change-value",
        "dns_record_type": "TXT", "dns_name_prefix": "_dnsauth"}}, True),
    ({"check_type": "dcv", "domain_or_ip_target": "demo.test", "dcv_check_parameters": {
        "validation_method": "acme-http-01", "token": "demo-http01-token",
        "key_authorization": "demo-http01-token.demo-account-thumbprint"}}, True),
]
CONNECT_TIMEOUT = 1.0


def one(url, key, request, valid, deadline):
    """Sends one check; returns (kind, detail)."""
    parts = urllib.parse.urlsplit(url)
    body = json.dumps(request)
    try:
        sock = socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT)
    except OSError as e:
        return "refused", type(e).__name__
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=deadline + 5)
    conn.sock = sock
    sock.settimeout(deadline + 5)
    try:
        conn.request("POST", parts.path, body=body, headers={
            "authorization": f"Bearer {key}", "content-type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    except socket.timeout:
        return "slow", "no answer"
    except (http.client.HTTPException, OSError) as e:
        return "cut", type(e).__name__
    finally:
        conn.close()
    if response.status != 200:
        return "status", str(response.status)
    try:
        doc = json.loads(data)
    except ValueError:
        return "cut", "not JSON"
    if doc.get("is_valid") is not valid:
        return "wrong", doc.get("quorum_result", "?")
    return "ok", doc.get("quorum_result", "?")


def worker(i, args, out, lock, started):
    period = args.concurrency / args.rate
    next_at = started + period * i / args.concurrency
    n = i
    while not os.path.exists(args.stop):
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        next_at = max(next_at + period, time.monotonic() - period)
        request, valid = args.requests[n % len(args.requests)]
        n += 1
        t0 = time.monotonic()
        kind, detail = one(args.url, args.key, request, valid, args.deadline_ms / 1000)
        ms = int((time.monotonic() - t0) * 1000)
        what = request.get("dcv_check_parameters", {}).get("validation_method") or \
            request["domain_or_ip_target"]
        record = {"at": round(t0 - started, 3), "ms": ms, "kind": kind, "detail": detail,
                  "request": what}
        with lock:
            out.write(json.dumps(record) + "\n")
            out.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("key")
    p.add_argument("out")
    p.add_argument("stop")
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--concurrency", type=int, default=5)
    p.add_argument("--deadline-ms", type=int, default=15000)
    p.add_argument("--allow-refused", action="store_true")
    p.add_argument("--with-dcv", action="store_true")
    args = p.parse_args()
    args.requests = CAA + (DCV if args.with_dcv else [])
    lock = threading.Lock()
    started = time.monotonic()
    with open(args.out, "w") as out:
        threads = [threading.Thread(target=worker, args=(i, args, out, lock, started))
                   for i in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    records = [json.loads(line) for line in open(args.out)]
    kinds = {}
    for r in records:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    slowest = max((r["ms"] for r in records), default=0)
    took = time.monotonic() - started
    print(f"load: {len(records)} requests in {took:.1f} s ({len(records) / took:.1f}/s), "
          f"{args.concurrency} in flight; " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
          + f"; slowest {slowest} ms")
    quorums = {}
    for r in records:
        if r["kind"] == "ok":
            quorums[r["detail"]] = quorums.get(r["detail"], 0) + 1
    print("load: quorum results: " + ", ".join(f"{q} {n}" for q, n in sorted(quorums.items())))
    bad = [r for r in records
           if r["kind"] in ("wrong", "cut", "slow", "status")
           or (r["kind"] == "refused" and not args.allow_refused)
           or r["ms"] >= args.deadline_ms]
    refused = [r for r in records if r["kind"] == "refused"]
    if refused:
        print(f"load: refused connections from {refused[0]['at']} s to {refused[-1]['at']} s "
              f"({len(refused)}, {refused[0]['detail']})")
    for r in bad[:20]:
        print(f"load:   FAILED {r}")
    if not records:
        print("load: FAILED: no request was sent")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
