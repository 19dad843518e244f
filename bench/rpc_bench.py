#!/usr/bin/python3
"""RPC runtime throughput benchmark (docs/architecture.md#performance-targets): the suite's Health/Check and a cached
GetMember against a plain grpc++ server's built-in health check and a trivial unary method,
all measured in the same run with h2load (Debian's nghttp2-client), -c16 -m16 -t1.

Prints requests/s, p50/p99 latency (from h2load's per-request log), the ratio to the anchor,
and each server's resident memory idle and at peak. Usage, from the repository root:

    bench/rpc_bench.py [--duration 10] [--warmup 2] [--keep]

It builds the release tree (build/), the grpc++ anchor (bench/anchor, needs libgrpc++-dev and
protobuf-compiler-grpc), starts a private PostgreSQL and Redis under build/bench-stack, and
stops everything it started at the end."""
import argparse
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
ANCHOR_DIR = os.path.join(BUILD, "bench-anchor")
STACK = os.path.join(BUILD, "bench-stack")
GEN = os.path.join(BUILD, "bench-gen")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    until = time.time() + timeout
    while time.time() < until:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def build_suite():
    run(["cmake", "-S", ROOT, "-B", BUILD, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
         "-DLOYALTY_TESTS=OFF"], stdout=subprocess.DEVNULL)
    run(["cmake", "--build", BUILD, "-j", str(os.cpu_count() or 2)], stdout=subprocess.DEVNULL)


def build_anchor():
    src = os.path.join(ROOT, "bench", "anchor")
    os.makedirs(ANCHOR_DIR, exist_ok=True)
    binary = os.path.join(ANCHOR_DIR, "anchor_server")
    if os.path.exists(binary) and os.path.getmtime(binary) > os.path.getmtime(
            os.path.join(src, "anchor_server.cc")):
        return binary
    plugin = shutil.which("grpc_cpp_plugin")
    if plugin is None:
        raise SystemExit("grpc_cpp_plugin missing: apt-get install protobuf-compiler-grpc libgrpc++-dev")
    run(["protoc", "-I", src, f"--cpp_out={ANCHOR_DIR}", f"--grpc_out={ANCHOR_DIR}",
         f"--plugin=protoc-gen-grpc={plugin}", "echo.proto"])
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++", "protobuf"],
                           check=True, capture_output=True, text=True).stdout.split()
    run(["g++", "-O2", "-std=c++17", "-I", ANCHOR_DIR, os.path.join(src, "anchor_server.cc"),
         os.path.join(ANCHOR_DIR, "echo.pb.cc"), os.path.join(ANCHOR_DIR, "echo.grpc.pb.cc"),
         "-o", binary] + flags + ["-lgrpc++_reflection"])
    return binary


def start_stack():
    out = subprocess.run(["bash", "-c", f'. "{ROOT}/scripts/lib.sh"; stack_start "{STACK}" >&2; '
                          f'cat "{STACK}/env"'], check=True, capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        m = re.match(r"export (\w+)='?([^']*)'?", line)
        if m:
            env[m.group(1)] = m.group(2)
    return env


def stop_stack():
    subprocess.run(["bash", "-c", f'. "{ROOT}/scripts/lib.sh"; stack_stop "{STACK}"'],
                   check=False)


def grpc_frame(message_bytes):
    return b"\x00" + struct.pack(">I", len(message_bytes)) + message_bytes


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def h2load(url, body, duration, warmup, log_path):
    body_path = log_path + ".body"
    with open(body_path, "wb") as f:
        f.write(body)
    cmd = ["h2load", "-c16", "-m16", "-t1", f"-D{duration}", f"--warm-up-time={warmup}",
           "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body_path,
           f"--log-file={log_path}", url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed",
                     out)
    if not m or not done:
        raise SystemExit("cannot parse h2load output:\n" + out)
    latencies = []
    with open(log_path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3:
                latencies.append(int(parts[2]))
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] / 1000.0 if latencies else 0

    return {"rps": float(m.group(1)), "done": int(done.group(1)), "failed": int(done.group(3)),
            "p50": pct(0.50), "p99": pct(0.99)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    args = ap.parse_args()

    build_suite()
    anchor_bin = build_anchor()
    env = dict(os.environ, **start_stack())
    procs = []
    try:
        anchor_port, member_port = free_port(), free_port()
        anchor = subprocess.Popen([anchor_bin, f"127.0.0.1:{anchor_port}"],
                                  stdout=subprocess.DEVNULL)
        procs.append(anchor)
        member_log = open(os.path.join(BUILD, "bench-member-svc.log"), "w")
        member = subprocess.Popen([os.path.join(BUILD, "member-svc", "member-svc")],
                                  env=dict(env, LISTEN_ADDR=f"127.0.0.1:{member_port}"),
                                  stdout=member_log, stderr=subprocess.STDOUT)
        procs.append(member)
        wait_port(anchor_port)
        wait_port(member_port)

        os.makedirs(GEN, exist_ok=True)
        run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out", GEN,
             "loyalty/v1/member.proto", "loyalty/v1/common.proto"], stderr=subprocess.DEVNULL)
        run(["protoc", "-I", os.path.join(ROOT, "bench", "anchor"), "--python_out", GEN,
             "echo.proto"])
        sys.path.insert(0, GEN)
        import grpc
        from loyalty.v1 import member_pb2
        import echo_pb2

        channel = grpc.insecure_channel(f"127.0.0.1:{member_port}")
        create = channel.unary_unary("/loyalty.v1.MemberService/CreateMember",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=member_pb2.CreateMemberResponse.FromString)
        get = channel.unary_unary("/loyalty.v1.MemberService/GetMember",
                                  request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=member_pb2.GetMemberResponse.FromString)
        for _ in range(100):  # until migrations are applied
            try:
                member_id = create(member_pb2.CreateMemberRequest(
                    merchant_id="bench", idempotency_key=f"bench-{member_port}",
                    profile=member_pb2.MemberProfile(name="Bench Member", tags=["bench"])),
                    timeout=5).member.id
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                time.sleep(0.1)
        get_req = member_pb2.GetMemberRequest(merchant_id="bench", member_id=member_id)
        assert get(get_req, timeout=5).member.id == member_id  # fills the cache
        time.sleep(1)
        idle = {"anchor": rss_kib(anchor.pid, "VmRSS"), "member-svc": rss_kib(member.pid, "VmRSS")}

        logs = os.path.join(BUILD, "bench-logs")
        os.makedirs(logs, exist_ok=True)
        health_body = grpc_frame(b"")
        runs = [
            ("grpc++ Health/Check (anchor)", f"http://127.0.0.1:{anchor_port}/grpc.health.v1.Health/Check", health_body),
            ("grpc++ unary Echo (anchor)", f"http://127.0.0.1:{anchor_port}/bench.v1.Echo/Unary",
             grpc_frame(echo_pb2.EchoRequest(text="hello").SerializeToString())),
            ("member-svc Health/Check", f"http://127.0.0.1:{member_port}/grpc.health.v1.Health/Check", health_body),
            ("member-svc GetMember (cached)", f"http://127.0.0.1:{member_port}/loyalty.v1.MemberService/GetMember",
             grpc_frame(get_req.SerializeToString())),
        ]
        results = {}
        for name, url, body in runs:
            results[name] = h2load(url, body, args.duration, args.warmup,
                                   os.path.join(logs, re.sub(r"\W+", "_", name) + ".log"))
        peak = {"anchor": rss_kib(anchor.pid, "VmHWM"), "member-svc": rss_kib(member.pid, "VmHWM")}
        member_log.flush()
        with open(member_log.name) as f:
            errors = sum(1 for line in f if '"rpc":"/loyalty.v1.MemberService/GetMember"' in line
                         and '"status":"OK"' not in line)

        print(f"\nh2load -c16 -m16 -t1, {args.duration}s after {args.warmup}s warm-up, "
              f"{os.cpu_count()} cores")
        print(f"{'target':34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
        for name, r in results.items():
            print(f"{name:34} {r['rps']:>10.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['failed']:>7}")
        hc = results["member-svc Health/Check"]["rps"] / results["grpc++ Health/Check (anchor)"]["rps"]
        gm = results["member-svc GetMember (cached)"]["rps"] / results["grpc++ unary Echo (anchor)"]["rps"]
        print(f"\nratio Health/Check  member-svc / grpc++ health = {hc:.2f}x (target >= 1.2x)")
        print(f"ratio GetMember     member-svc / grpc++ unary  = {gm:.2f}x (target >= 1.2x)")
        print(f"GetMember calls logged with a status other than OK: {errors}")
        print("\nresident memory (MiB): " + ", ".join(
            f"{k} idle {idle[k] / 1024:.1f} peak {peak[k] / 1024:.1f}" for k in idle))
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            stop_stack()


if __name__ == "__main__":
    main()
