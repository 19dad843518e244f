#!/usr/bin/python3
"""The README's example runs as written: the fenced blocks marked `<!-- readme-test: sh -->`
and `<!-- readme-test: python -->` in README.md are extracted and executed, in order, against a
suite of real services this test starts (PostgreSQL and Redis from scripts/test). The blocks
run in a scratch folder that has the repository's proto/ in it and the build tree as build/
(for build/tools/loyaltyctl) and examples/, as they would from the repository's root after scripts/up; the
only changes made to them are the service addresses (the README's default ports become the
test's free ports) and the merchant ids ("shop-1", "shop-2": fresh ones, so that the test never meets data of an
earlier run). The Python block runs twice: the second run
must answer the same member and checkout, as the README promises.

Usage: test_readme.py BUILD_DIR PROTO_DIR OUT_DIR (needs LOYALTY_PG_DSN and LOYALTY_REDIS_URL)."""
import os
import re
import subprocess
import sys
import uuid

import svc

SERVICES = ["member-svc", "points-svc", "wallet-svc", "referral-svc", "promo-svc"]
DEFAULT_PORTS = {"gateway": 50050, "member-svc": 50051, "points-svc": 50052,
                 "wallet-svc": 50053, "referral-svc": 50054, "promo-svc": 50055}
MARKER = re.compile(r"^<!-- readme-test: (sh|python) -->\n```(\w+)\n(.*?)^```$",
                    re.MULTILINE | re.DOTALL)


def blocks(readme_text):
    """[(language, code)] of the marked blocks, in order; the fence must follow the marker."""
    out = []
    for m in MARKER.finditer(readme_text):
        lang, fence, code = m.groups()
        assert lang == fence, f"marker says {lang} but the block is ```{fence}"
        out.append((lang, code))
    return out


def run(cmd, cwd, stdin_text=None):
    res = subprocess.run(cmd, cwd=cwd, input=stdin_text, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, f"{cmd[0]} block failed ({res.returncode}):\n{res.stdout}\n" \
                                f"{res.stderr}"
    return res.stdout


def main():
    build_dir, proto_dir, out_dir = sys.argv[1:4]
    source_dir = os.path.dirname(os.path.abspath(proto_dir))
    with open(os.path.join(source_dir, "README.md"), encoding="utf-8") as f:
        found = blocks(f.read())
    langs = [lang for lang, _ in found]
    assert "sh" in langs and "python" in langs, f"README has no marked sh and python blocks: {langs}"

    svc.generate(proto_dir, out_dir, ["grpc/health/v1/health.proto"])
    health_pb2 = svc.load(out_dir, "grpc/health/v1/health_pb2.py", "health_pb2")
    work = os.path.join(out_dir, "work")
    os.makedirs(work, exist_ok=True)
    link = os.path.join(work, "proto")
    if not os.path.islink(link):
        os.symlink(os.path.abspath(proto_dir), link)
    build_link = os.path.join(work, "build")
    if not os.path.islink(build_link):
        os.symlink(os.path.abspath(build_dir), build_link)
    examples_link = os.path.join(work, "examples")
    if not os.path.islink(examples_link):
        os.symlink(os.path.join(source_dir, "examples"), examples_link)

    started = []
    try:
        addrs = {}
        for name in SERVICES:
            s = svc.Service(build_dir, name)
            started.append(s)
            addrs[name] = s.addr
        env_addrs = {f"{n.split('-')[0].upper()}_SVC_ADDR": a for n, a in addrs.items()}
        for s in started:
            s.env.update(env_addrs)
            s.start(health_pb2)
        gw = svc.Service(build_dir, "gateway", env_addrs)
        started.append(gw)
        gw.start(health_pb2)
        addrs["gateway"] = gw.addr

        merchant = "readme-" + uuid.uuid4().hex[:10]
        merchant2 = "readme2-" + uuid.uuid4().hex[:10]
        outputs = []
        for lang, code in found:
            for name, port in DEFAULT_PORTS.items():
                code = code.replace(f"127.0.0.1:{port}", addrs[name])
            code = code.replace('"shop-1"', f'"{merchant}"')
            code = code.replace('"shop-2"', f'"{merchant2}"')
            if lang == "sh":
                out = run(["bash", "-euo", "pipefail", "-s"], work, code)
                if "programme plan" in code:  # README "Set up a merchant": applied, so no plan
                    assert "No changes: merchant" in out, out
                    assert "currency    SGD" in out, out  # the file's settings: the record
            else:
                first = run(["/usr/bin/python3", "-"], work, code)
                again = run(["/usr/bin/python3", "-"], work, code)
                outputs.append((first, again))
    finally:
        for s in reversed(started):
            s.stop()

    first, again = outputs[-1]
    print(first, end="")
    assert re.search(r"^member mbr_\w+$", first, re.MULTILINE), first
    assert "quote: total 2100 due 2100" in first, first
    assert re.search(r"^checkout \S+ collect 2100$", first, re.MULTILINE), first
    assert "checkout GATEWAY_SAGA_STATE_COMPLETED" in first, first
    assert "overview: Ana Lima |" in first, first
    assert again == first, f"a second run answered differently:\n{first}\n---\n{again}"
    print("readme: the marked blocks ran as written; a second run replayed the same answers")


if __name__ == "__main__":
    main()
