#!/usr/bin/python3
"""Static checks of ./docker-compose.yml (no container engine runs on these machines):
Debian's `docker-compose config -q` must accept it, and the resolved file must run PostgreSQL,
Redis and all six services, each built from its own Dockerfile target, with the database and
cache settings, a health check, a restart policy, a read-only root file system and no new
privileges, started only after PostgreSQL and Redis are healthy (the gateway also after every
service it calls).

Usage: check_compose.py SOURCE_DIR"""
import os
import re
import subprocess
import sys

import yaml

SERVICES = {"gateway": 50050, "member-svc": 50051, "points-svc": 50052, "wallet-svc": 50053,
            "referral-svc": 50054, "promo-svc": 50055}


def fail(msg):
    print(f"check_compose: {msg}")
    sys.exit(1)


def compose(source_dir, *args):
    return subprocess.run(["docker-compose", "-f", os.path.join(source_dir, "docker-compose.yml"),
                           *args], capture_output=True, text=True, cwd=source_dir,
                          env=dict(os.environ, COMPOSE_PROJECT_NAME="loyalty"))


def port_spec(p):
    """(host_ip, container_port) of a long or short (\"ip:host:container/proto\") entry."""
    if isinstance(p, dict):
        return p.get("host_ip"), int(p.get("target", 0))
    parts = str(p).split("/")[0].split(":")
    return (parts[0] if len(parts) == 3 else None), int(parts[-1])


def main():
    source_dir = sys.argv[1]
    res = compose(source_dir, "config", "-q")
    if res.returncode != 0:
        fail(f"docker-compose config -q failed:\n{res.stderr}")
    res = compose(source_dir, "config")
    if res.returncode != 0:
        fail(f"docker-compose config failed:\n{res.stderr}")
    doc = yaml.safe_load(res.stdout)
    services = doc.get("services", {})
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", open(
        os.path.join(source_dir, "Dockerfile")).read(), re.M | re.I))

    for infra in ("postgres", "redis"):
        if "healthcheck" not in services.get(infra, {}):
            fail(f"{infra} must be a service with a health check")
    for name, port in SERVICES.items():
        s = services.get(name)
        if s is None:
            fail(f"{name} is missing")
        target = s.get("build", {}).get("target")
        if target != name or target not in stages:
            fail(f"{name} must build Dockerfile target {name} (got {target})")
        env = s.get("environment", {})
        for key in ("LOYALTY_PG_DSN", "LOYALTY_REDIS_URL", "LOYALTY_AUTH_TOKEN",
                    "SHUTDOWN_DRAIN_MS", "SHUTDOWN_GRACE_MS"):
            if key not in env:
                fail(f"{name} lacks {key}")
        if env.get("LISTEN_ADDR") != f"0.0.0.0:{port}":
            fail(f"{name} must listen on 0.0.0.0:{port}")
        if "host=postgres" not in env["LOYALTY_PG_DSN"] or "redis:6379" not in env[
                "LOYALTY_REDIS_URL"]:
            fail(f"{name} must use the compose PostgreSQL and Redis")
        if s.get("restart") not in ("always", "unless-stopped", "on-failure"):
            fail(f"{name} needs a restart policy")
        hc = s.get("healthcheck", {}).get("test", [])
        if "/usr/local/bin/loyalty-health" not in hc:
            fail(f"{name} needs the loyalty-health health check")
        if not s.get("read_only") or "no-new-privileges:true" not in s.get("security_opt", []):
            fail(f"{name} must run read-only without new privileges")
        deps = s.get("depends_on", {})
        needed = {"postgres", "redis"} | (set(SERVICES) - {"gateway"} if name == "gateway"
                                          else set())
        for d in needed:
            if deps.get(d, {}).get("condition") != "service_healthy":
                fail(f"{name} must wait for {d} to be healthy")
        published = [port_spec(p) for p in s.get("ports", [])]
        if ("127.0.0.1", port) not in published:
            fail(f"{name} must publish {port} on loopback only")
        grace = s.get("stop_grace_period", "10s")
        grace_s = int(re.match(r"(\d+)s$", grace).group(1)) if re.match(r"\d+s$", grace) else 0
        needed_s = (int(env["SHUTDOWN_DRAIN_MS"]) + int(env["SHUTDOWN_GRACE_MS"])) / 1000
        if grace_s < needed_s + 1:
            fail(f"{name}: stop_grace_period {grace} is shorter than drain + grace")
    print(f"docker-compose.yml: {len(services)} services valid")


if __name__ == "__main__":
    main()
