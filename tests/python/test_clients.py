#!/usr/bin/python3
"""The client examples in other languages (clients/python with Debian's python3-grpcio,
clients/node with @grpc/grpc-js) run their storefront flow against the real services:
register a member, replay the same idempotency key (same member), a duplicate phone (the
reason PHONE_TAKEN reaches the client), then a checkout through the gateway.

Until the gateway is built (loyalty.v1.Gateway), registration goes to member-svc and the
checkout must report itself skipped; once build/gateway/gateway exists, every built service is
started and the checkout must complete.

Usage: test_clients.py BUILD_DIR PROTO_DIR OUT_DIR (needs LOYALTY_PG_DSN and LOYALTY_REDIS_URL;
the Node packages come from BUILD_DIR/node/clients-node, installed by scripts/test)."""
import json
import os
import subprocess
import sys
import uuid

import svc

SERVICES = ["member-svc", "points-svc", "wallet-svc", "referral-svc", "promo-svc"]


def run(cmd, cwd, env):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def check_flow(out, with_gateway, language):
    assert out["member_id"].startswith("mbr_"), (language, out)
    assert out["replayed_same_member"] is True, (language, out)
    assert out["duplicate"] == {"code": "ALREADY_EXISTS", "reason": "PHONE_TAKEN"}, (language, out)
    # The generated reason constants (clients/*/loyalty*reasons*) load and name the same token.
    assert out["duplicate_is_phone_taken"] is True, (language, out)
    if with_gateway:
        assert isinstance(out["checkout"], dict) and out["checkout"]["checkout_id"], (language, out)
        assert out["checkout"]["state"] in ("GATEWAY_SAGA_STATE_COMPLETED", 4), (language, out)
    else:
        assert out["checkout"].startswith("skipped:") and "gateway" in out["checkout"], out


def node_field_check(source_dir, env):
    """A misspelt field is refused before anything is sent (not silently dropped)."""
    script = ("const {LoyaltyClient}=require('./loyalty-client');"
              "const c=new LoyaltyClient({member:'127.0.0.1:1'});"
              "c.call('MemberService','CreateMember',{merchant_id:'m',profile:{nmae:'x'}})"
              ".then(()=>{console.log('sent');process.exit(1)})"
              ".catch(e=>{console.log(e.message);c.close();"
              "process.exit(e instanceof TypeError?0:1)});")
    res = subprocess.run(["node", "-e", script], cwd=os.path.join(source_dir, "clients", "node"),
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and 'no field "nmae"' in res.stdout, res


def main():
    build_dir, proto_dir, out_dir = sys.argv[1:4]
    source_dir = os.path.dirname(os.path.abspath(proto_dir))
    svc.generate(proto_dir, out_dir, ["grpc/health/v1/health.proto"])
    health_pb2 = svc.load(out_dir, "grpc/health/v1/health_pb2.py", "health_pb2")
    node_modules = os.path.join(build_dir, "node", "clients-node", "node_modules")
    assert os.path.isdir(node_modules), f"{node_modules} missing (scripts/test runs npm ci)"
    node_env = dict(os.environ, NODE_PATH=node_modules)

    with_gateway = (os.path.exists(os.path.join(build_dir, "gateway", "gateway")) and
                    os.path.exists(os.path.join(proto_dir, "loyalty", "v1", "gateway.proto")))
    started = []
    try:
        addrs = {}
        for name in SERVICES if with_gateway else ["member-svc"]:
            if not os.path.exists(os.path.join(build_dir, name, name)):
                continue
            s = svc.Service(build_dir, name)
            started.append(s)
            addrs[name] = s.addr
        env_addrs = {f"{n.split('-')[0].upper()}_SVC_ADDR": a for n, a in addrs.items()}
        for s in started:
            s.env.update(env_addrs)
            s.start(health_pb2)
        args = ["--member", addrs["member-svc"]]
        if with_gateway:
            gw = svc.Service(build_dir, "gateway", env_addrs)
            started.append(gw)
            gw.start(health_pb2)
            args += ["--gateway", gw.addr]

        merchant = "cli-" + uuid.uuid4().hex[:10]
        py = run(["/usr/bin/python3", "example.py", "--merchant", merchant + "-py"] + args,
                 os.path.join(source_dir, "clients", "python"), dict(os.environ))
        check_flow(py, with_gateway, "python")
        js = run(["node", "example.js", "--merchant", merchant + "-js"] + args,
                 os.path.join(source_dir, "clients", "node"), node_env)
        check_flow(js, with_gateway, "node")
        node_field_check(source_dir, node_env)
    finally:
        for s in reversed(started):
            s.stop()
    print(f"clients: python and node registered members, replay and PHONE_TAKEN as expected; "
          f"checkout {'completed' if with_gateway else 'skipped (no gateway yet)'}")


if __name__ == "__main__":
    main()
