#!/usr/bin/env python3
"""Helpers for scripts/bench.sh for what bash + curl + wrk cannot do precisely:

  startup  spawn knockd -> first successful TCP connect, N runs (sub-millisecond polling)
  burst    N distinct client addresses knocking at the same instant (one thread each, a barrier)
  knocks   many valid knocks with a fixed concurrency (the 1,000-knock memory step)
  stats    median / p99 / max of numbers on stdin (seconds in, milliseconds out)
  calls    API calls from lighthouse-sim /__state dumps (calls_by_instance), before -> after
  limited  calls the simulator refused with RequestLimitExceeded* (from a /__state dump)
  hold     N idle connections opened and held (no byte sent) until killed; prints "ready N"

Every knock is one TCP connection with `Connection: close` (keep-alive off), HTTP/1.1 GET,
X-Forwarded-For naming the client (knockd runs with METHOD_TO_GET_CLIENT_IP=2 and loopback as
the trusted proxy). Standard library only.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def knock(host, port, path, referer, client, label="bench", timeout=30.0):
    """One knock; returns (seconds, body)."""
    req = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        + (f"Referer: {referer}\r\n" if referer is not None else "")
        + f"Location: {label}\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
    ).encode()
    t0 = time.perf_counter()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(req)
        chunks = []
        while True:
            b = s.recv(4096)
            if not b:
                break
            chunks.append(b)
    dt = time.perf_counter() - t0
    raw = b"".join(chunks)
    body = raw.split(b"\r\n\r\n", 1)[1].decode(errors="replace") if b"\r\n\r\n" in raw else ""
    return dt, body


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def cmd_stats(_args):
    vals = [float(x) * 1000.0 for x in sys.stdin.read().split()]
    if not vals:
        print("n=0 median=nan p99=nan max=nan")
        return
    print(f"n={len(vals)} median={statistics.median(vals):.1f} p99={pct(vals, 99):.1f} max={max(vals):.1f}")


SHORT = {
    "DescribeFirewallRules": "Describe",
    "CreateFirewallRules": "Create",
    "DeleteFirewallRules": "Delete",
    "ModifyFirewallRuleDescription": "ModifyDesc",
    "ModifyFirewallRules": "Modify",
}


def cmd_calls(args):
    import json

    def load(path):
        if not path:
            return {}
        with open(path) as f:
            return json.load(f).get("calls_by_instance", {})

    before, after = load(args.before), load(args.after)
    with open(args.after) as f:
        ids = [i["InstanceId"] for i in json.load(f)["instances"]]
    per = {}
    for inst in ids:
        a, b = after.get(inst, {}), before.get(inst, {})
        per[inst] = {k: a.get(k, 0) - b.get(k, 0) for k in a if a.get(k, 0) - b.get(k, 0)}
    totals = [sum(d.values()) for d in per.values()]
    if args.max:
        print(max(totals) if totals else 0)
        return
    if args.total:
        # per instance: total (by action); identical instances collapse to one entry
        texts = []
        for d in per.values():
            parts = ", ".join(f"{SHORT.get(k, k)} {v}" for k, v in sorted(d.items()))
            texts.append(f"{sum(d.values())}" + (f" ({parts})" if parts else ""))
        if len(set(texts)) == 1:
            print(f"{texts[0]} on each of {len(texts)}")
        else:
            print("; ".join(texts))
        return
    n = args.knocks * max(1, len(ids))
    actions = {}
    for d in per.values():
        for k, v in d.items():
            actions[k] = actions.get(k, 0) + v
    total = sum(actions.values()) / n
    parts = " + ".join(f"{SHORT.get(k, k)} {v / n:.2f}" for k, v in sorted(actions.items()))
    spread = ""
    if totals and min(totals) != max(totals):
        spread = f" (per instance {min(totals) / args.knocks:.2f}..{max(totals) / args.knocks:.2f})"
    print(f"{total:.2f}" + (f" = {parts}" if parts else "") + spread)


def cmd_limited(args):
    import json

    with open(args.state) as f:
        errors = json.load(f).get("errors", {})
    print(sum(v for k, v in errors.items() if k.startswith("RequestLimitExceeded")))


def cmd_startup(args):
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [args.bin, "--config", args.config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ok = False
        while time.perf_counter() - t0 < 5.0:
            try:
                with socket.create_connection(("127.0.0.1", args.port), timeout=1.0):
                    ok = True
                    break
            except OSError:
                if p.poll() is not None:
                    break
        dt = time.perf_counter() - t0
        p.send_signal(signal.SIGKILL)
        p.wait()
        if not ok:
            print("startup: knockd did not listen", file=sys.stderr)
            sys.exit(1)
        times.append(dt * 1000.0)
        time.sleep(0.05)
    print(f"n={len(times)} median={statistics.median(times):.1f} p99={pct(times, 99):.1f} "
          f"min={min(times):.1f} max={max(times):.1f}")


def cmd_burst(args):
    n = args.n
    clients = [f"{args.net}.{i // 250}.{i % 250 + 1}" for i in range(n)]
    barrier = threading.Barrier(n + 1)
    results = [None] * n
    start = [0.0]

    def run(i):
        barrier.wait()
        try:
            _, body = knock("127.0.0.1", args.port, args.path, args.referer, clients[i], f"burst{i}")
            results[i] = (time.perf_counter() - start[0], body)
        except OSError as e:
            results[i] = (time.perf_counter() - start[0], f"error: {e}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    ok = sum(1 for r in results if r and r[1] == args.success)
    last = max(r[0] for r in results if r)
    print(f"answered={sum(1 for r in results if r)} ok={ok} all_answered_ms={last * 1000.0:.0f}")


def cmd_knocks(args):
    clients = [f"{args.net}.0.{i + 1}" for i in range(args.addresses)]
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "failed": 0}

    def worker():
        while True:
            with lock:
                i = state["next"]
                if i >= args.total:
                    return
                state["next"] += 1
            try:
                _, body = knock("127.0.0.1", args.port, args.path, args.referer,
                                clients[i % len(clients)], "mem")
                good = body == args.success
            except OSError:
                good = False
            with lock:
                state["ok" if good else "failed"] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"knocks={args.total} ok={state['ok']} failed={state['failed']} "
          f"seconds={time.perf_counter() - t0:.1f}")


def cmd_hold(args):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.n + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    held = []
    for _ in range(args.n):
        try:
            held.append(socket.create_connection(("127.0.0.1", args.port), timeout=10))
        except OSError as e:
            print(f"connect failed after {len(held)}: {e}", file=sys.stderr)
            break
    print(f"ready {len(held)}", flush=True)
    # SIGTERM (the default action) ends the process and closes every connection at once.
    time.sleep(86400)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("stats")
    s = sub.add_parser("calls")
    s.add_argument("--before")
    s.add_argument("--after", required=True)
    s.add_argument("--knocks", type=int, default=1)
    s.add_argument("--total", action="store_true", help="total calls per instance")
    s.add_argument("--max", action="store_true", help="largest total of one instance")
    s = sub.add_parser("limited")
    s.add_argument("--state", required=True)
    s = sub.add_parser("hold")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--n", type=int, required=True)
    s = sub.add_parser("startup")
    s.add_argument("--bin", required=True)
    s.add_argument("--config", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--runs", type=int, default=20)
    for name in ("burst", "knocks"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--path", default="/favico.ico")
        s.add_argument("--referer", required=True)
        s.add_argument("--success", default="500 Internal Server Error.")
        s.add_argument("--net", default="198.18", help="first two octets of the client addresses")
        if name == "burst":
            s.add_argument("--n", type=int, default=100)
        else:
            s.add_argument("--total", type=int, default=1000)
            s.add_argument("--addresses", type=int, default=40)
            s.add_argument("--concurrency", type=int, default=20)
    args = ap.parse_args()
    {"stats": cmd_stats, "calls": cmd_calls, "limited": cmd_limited, "startup": cmd_startup, "burst": cmd_burst, "knocks": cmd_knocks, "hold": cmd_hold}[args.cmd](args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
