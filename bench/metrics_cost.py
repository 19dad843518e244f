#!/usr/bin/python3
"""Cost of the metrics on the hot path (issue 17): member-svc's Health/Check with metrics on
(METRICS_ADDR set: every call records grpc_server_handled_total and the latency histogram) and
off (METRICS_ADDR empty: nothing is recorded), both processes started side by side from the same
release build and driven in alternation, on, off, on, off, ..., with rpc_bench.py's h2load
settings (-c16 -m16 -t1), so that the load of a shared machine falls on both alike. Prints every
round, the median req/s of each and the ratio on/off (goal: within 3 %).

On a shared machine throughput drifts more than 3 % from run to run, so --callgrind counts
instructions instead, as the README's streaming section did: member-svc (RPC_WORKERS=2) under
`valgrind --tool=callgrind` with metrics on and off, h2load -c4 -m4 sending N Health/Check
calls for N = 2,000 and 22,000; instructions per call = difference of the totals / 20,000.

    bench/metrics_cost.py [--rounds 5] [--duration 8] [--warmup 2] [--callgrind]

Builds the release tree (build/), starts a private PostgreSQL and Redis under
build/bench-stack (rpc_bench.py's), and stops everything it started at the end."""
import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rpc_bench as rb  # noqa: E402


def handled_ok(metrics_port):
    """Health/Check OK calls counted by the 'on' server, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith('grpc_server_handled_total{grpc_type="unary",'
                           'grpc_service="grpc.health.v1.Health",grpc_method="Check",'
                           'grpc_code="OK"} '):
            return int(float(line.split()[-1]))
    return 0


def callgrind_total(env, metrics_on, calls):
    """Instructions member-svc executed from start to exit, serving `calls` Health/Checks."""
    port = rb.free_port()
    out = os.path.join(rb.BUILD, f"bench-callgrind-{int(metrics_on)}-{calls}.out")
    metrics_addr = f"127.0.0.1:{rb.free_port()}" if metrics_on else ""
    log = open(out + ".log", "w")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          os.path.join(rb.BUILD, "member-svc", "member-svc")],
                         env=dict(env, LISTEN_ADDR=f"127.0.0.1:{port}", RPC_WORKERS="2",
                                  METRICS_ADDR=metrics_addr, LOG_LEVEL="warn"),
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        rb.wait_port(port, timeout=120)
        time.sleep(3)  # migrations checked, threads started
        body = os.path.join(rb.BUILD, "bench-health.body")
        with open(body, "wb") as f:
            f.write(rb.grpc_frame(b""))
        subprocess.run(["h2load", "-c4", "-m4", "-t1", f"-n{calls}", "-H",
                        "content-type: application/grpc", "-H", "te: trailers", "-d", body,
                        f"http://127.0.0.1:{port}/grpc.health.v1.Health/Check"],
                       check=True, capture_output=True)
    finally:
        p.terminate()
        p.wait(timeout=120)
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--callgrind", action="store_true")
    args = ap.parse_args()

    rb.build_suite()
    env = dict(os.environ, **rb.start_stack())
    if args.callgrind:
        try:
            for rep in range(2):
                for on in (True, False):
                    small = callgrind_total(env, on, 2000)
                    large = callgrind_total(env, on, 22000)
                    print(f"run {rep + 1} metrics {'on ' if on else 'off'}: "
                          f"{(large - small) / 20000:,.0f} instructions per Health/Check "
                          f"(totals {small:,} and {large:,})", flush=True)
        finally:
            rb.stop_stack()
        return
    procs, servers = [], {}
    try:
        for name in ("on", "off"):
            port, metrics_port = rb.free_port(), rb.free_port()
            log = open(os.path.join(rb.BUILD, f"bench-metrics-{name}.log"), "w")
            metrics_addr = f"127.0.0.1:{metrics_port}" if name == "on" else ""
            p = subprocess.Popen([os.path.join(rb.BUILD, "member-svc", "member-svc")],
                                 env=dict(env, LISTEN_ADDR=f"127.0.0.1:{port}",
                                          METRICS_ADDR=metrics_addr),
                                 stdout=log, stderr=subprocess.STDOUT)
            procs.append(p)
            servers[name] = (port, metrics_port)
        for port, _ in servers.values():
            rb.wait_port(port)
        logs = os.path.join(rb.BUILD, "bench-logs")
        os.makedirs(logs, exist_ok=True)
        body = rb.grpc_frame(b"")
        results = {"on": [], "off": []}
        done_on = 0
        for i in range(args.rounds):
            for name in ("on", "off"):
                port = servers[name][0]
                r = rb.h2load(f"http://127.0.0.1:{port}/grpc.health.v1.Health/Check", body,
                              args.duration, args.warmup,
                              os.path.join(logs, f"metrics_{name}_{i}.log"))
                results[name].append(r["rps"])
                if name == "on":
                    done_on += r["done"]
                print(f"round {i + 1} metrics {name:3}: {r['rps']:>9.0f} req/s  "
                      f"p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  failed {r['failed']}",
                      flush=True)
        counted = handled_ok(servers["on"][1])
        on, off = statistics.median(results["on"]), statistics.median(results["off"])
        print(f"\nh2load -c16 -m16 -t1, {args.rounds} alternated rounds of {args.duration}s after "
              f"{args.warmup}s warm-up, {os.cpu_count()} cores")
        print(f"median req/s: metrics on {on:.0f}, off {off:.0f}; on/off = {on / off:.3f}")
        print(f"Health/Check OK counted by the 'on' server: {counted} "
              f"(h2load measured {done_on} done, warm-up calls come on top)")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        rb.stop_stack()


if __name__ == "__main__":
    main()
