#!/usr/bin/python3
"""What the container health check and the Kubernetes probes rely on, against the real
member-svc binary: readiness (Check "") is NOT_SERVING and liveness (Check "liveness") SERVING
while PostgreSQL is unreachable and while the server drains after SIGTERM; an unknown service
name is NOT_FOUND; Health/Watch sends SERVING then NOT_SERVING on SIGTERM; `loyalty-health` with no address checks LISTEN_ADDR's port (the image's
HEALTHCHECK); `member-svc --migrate` (the init container) applies migrations and exits 0, also
when run by several replicas at once.

Usage: test_probes.py BUILD_DIR PROTO_DIR OUT_DIR (needs LOYALTY_PG_DSN and
LOYALTY_REDIS_URL, as scripts/test exports)."""
import os
import subprocess
import sys
import time

import grpc

import svc

SERVING, NOT_SERVING = 1, 2


def check(channel, health_pb2, service):
    return svc.unary(channel, "/grpc.health.v1.Health/Check",
                     health_pb2.HealthCheckRequest(service=service),
                     health_pb2.HealthCheckResponse).status


def wait_listening(service, health_pb2, timeout_s=30):
    deadline = time.time() + timeout_s
    with grpc.insecure_channel(service.addr) as channel:
        while True:
            try:
                return check(channel, health_pb2, "liveness")
            except grpc.RpcError:
                if time.time() > deadline:
                    raise SystemExit("never answered Check")
                time.sleep(0.1)


def without_postgresql(build_dir, health_pb2):
    dead = f"host=127.0.0.1 port={svc.free_port()} dbname=x user=x connect_timeout=1"
    service = svc.Service(build_dir, "member-svc", {"LOYALTY_PG_DSN": dead})
    service.proc = subprocess.Popen([service.binary], env=service.env)
    try:
        assert wait_listening(service, health_pb2) == SERVING
        with grpc.insecure_channel(service.addr) as channel:
            assert check(channel, health_pb2, "") == NOT_SERVING
            assert check(channel, health_pb2, "liveness") == SERVING
    finally:
        service.stop()


def during_drain(build_dir, health_pb2):
    service = svc.Service(build_dir, "member-svc", {"SHUTDOWN_DRAIN_MS": "2000"})
    service.start(health_pb2)
    with grpc.insecure_channel(service.addr) as channel:
        assert check(channel, health_pb2, "") == SERVING
        assert check(channel, health_pb2, "loyalty.v1.MemberService") == SERVING
        try:
            check(channel, health_pb2, "no.such.Service")
            raise SystemExit("an unknown service must be NOT_FOUND")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()
        service.proc.terminate()
        time.sleep(0.4)
        assert check(channel, health_pb2, "") == NOT_SERVING
        assert check(channel, health_pb2, "liveness") == SERVING
    rc = service.proc.wait(timeout=30)
    assert rc == 0, f"exit {rc}"


def watch_sees_the_drain(build_dir, health_pb2):
    """Health/Watch (what gRPC client-side health checking uses): SERVING at once, then
    NOT_SERVING when SIGTERM starts the drain, then the stream ends UNAVAILABLE when the server
    stops listening. An unknown name answers SERVICE_UNKNOWN and stays open."""
    service = svc.Service(build_dir, "member-svc", {"SHUTDOWN_DRAIN_MS": "1000"})
    service.start(health_pb2)
    try:
        with grpc.insecure_channel(service.addr) as channel:
            watch = channel.unary_stream(
                "/grpc.health.v1.Health/Watch",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=health_pb2.HealthCheckResponse.FromString)
            ready = watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
            unknown = watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=60)
            assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            assert next(ready).status == SERVING
            service.proc.terminate()
            assert next(ready).status == NOT_SERVING
            try:
                extra = next(ready)
                raise SystemExit(f"nothing but the end after NOT_SERVING, got {extra}")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e.code()
            unknown.cancel()
        rc = service.proc.wait(timeout=30)
        assert rc == 0, f"exit {rc}"
    finally:
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait()


def health_tool_follows_listen_addr(build_dir, health_pb2):
    tool = os.path.join(build_dir, "tools", "loyalty-health")
    service = svc.Service(build_dir, "member-svc")
    service.start(health_pb2)
    try:
        env = dict(os.environ, LISTEN_ADDR=f"0.0.0.0:{service.port}")
        res = subprocess.run([tool], env=env, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0 and res.stdout.strip() == "SERVING", res
        env["LISTEN_ADDR"] = f"0.0.0.0:{svc.free_port()}"
        res = subprocess.run([tool], env=env, capture_output=True, text=True, timeout=30)
        assert res.returncode == 1, res
        env.pop("LISTEN_ADDR")
        res = subprocess.run([tool], env=env, capture_output=True, text=True, timeout=30)
        assert res.returncode == 2, res
    finally:
        service.stop()


def migrate_init_step(build_dir):
    binary = os.path.join(build_dir, "member-svc", "member-svc")
    env = dict(os.environ, LOG_LEVEL="warn")
    procs = [subprocess.Popen([binary, "--migrate"], env=env) for _ in range(3)]
    codes = [p.wait(timeout=120) for p in procs]
    assert codes == [0, 0, 0], codes
    bad = dict(env, LOYALTY_PG_DSN=f"host=127.0.0.1 port={svc.free_port()} dbname=x user=x")
    assert subprocess.run([binary, "--migrate"], env=bad, timeout=120).returncode == 1


def main():
    build_dir, proto_dir, out_dir = sys.argv[1:4]
    svc.generate(proto_dir, out_dir, ["grpc/health/v1/health.proto"])
    health_pb2 = svc.load(out_dir, "grpc/health/v1/health_pb2.py", "health_pb2")
    without_postgresql(build_dir, health_pb2)
    during_drain(build_dir, health_pb2)
    watch_sees_the_drain(build_dir, health_pb2)
    health_tool_follows_listen_addr(build_dir, health_pb2)
    migrate_init_step(build_dir)
    print("probes: readiness and liveness without PostgreSQL and while draining; Watch sees "
          "SIGTERM; "
          "loyalty-health from LISTEN_ADDR; --migrate from 3 replicas at once")


if __name__ == "__main__":
    main()
