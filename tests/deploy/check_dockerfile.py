#!/usr/bin/python3
"""Static checks of ./Dockerfile (no container engine runs on these machines).

- one final stage per service, each FROM the shared `runtime` stage, copying its own binary
  from `build`, with its default port in LISTEN_ADDR and EXPOSE, and the binary as ENTRYPOINT;
- `runtime` runs as a numeric non-root user, has a HEALTHCHECK with loyalty-health, ships
  loyalty-health and loyaltyctl (copied from `build`, their libraries checked below), and
  installs with --no-install-recommends and removes the apt lists;
- every shared library a built binary needs (ELF NEEDED entries of the binaries in the build
  tree) belongs to a Debian package the runtime stage installs (libc comes with the base
  image; the sanitizer runtimes exist only in the test build);
- every package the build stage installs is one scripts/lib.sh installs too, so CI has proved
  it exists in Debian 12 and builds the suite.

Usage: check_dockerfile.py SOURCE_DIR BUILD_DIR"""
import os
import re
import shlex
import subprocess
import sys

SERVICES = {"gateway": 50050, "member-svc": 50051, "points-svc": 50052, "wallet-svc": 50053,
            "referral-svc": 50054, "promo-svc": 50055}
BASE_IMAGE_PACKAGES = {"libc6"}
TEST_BUILD_ONLY = re.compile(r"^lib(asan|ubsan|lsan|tsan)\.so")


def fail(msg):
    print(f"check_dockerfile: {msg}")
    sys.exit(1)


def parse(path):
    """Stages as {name: {"from": base, "lines": [(instr, args)]}}, continuation lines joined."""
    text = open(path).read()
    text = re.sub(r"\\\n", " ", text)
    stages, current = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.match(r"(\S+)\s+AS\s+(\S+)$", args.strip(), re.I)
            if not m:
                fail(f"every stage needs a name: FROM {args}")
            current = m.group(2)
            if current in stages:
                fail(f"stage {current} defined twice")
            stages[current] = {"from": m.group(1), "lines": []}
        elif current is not None:
            stages[current]["lines"].append((instr, args.strip()))
    return stages


def apt_packages(stage):
    pkgs = []
    for instr, args in stage["lines"]:
        if instr == "RUN" and "apt-get install" in args:
            if "--no-install-recommends" not in args or "rm -rf /var/lib/apt/lists" not in args:
                fail("apt-get install needs --no-install-recommends and the lists removed")
            words = shlex.split(args.split("apt-get install", 1)[1].split("&&")[0])
            pkgs += [w for w in words if not w.startswith("-")]
    return pkgs


def needed_packages(binary):
    out = subprocess.run(["objdump", "-p", binary], check=True, capture_output=True,
                         text=True).stdout
    owners = {}
    for lib in re.findall(r"^\s+NEEDED\s+(\S+)", out, re.M):
        if TEST_BUILD_ONLY.match(lib):
            continue
        res = subprocess.run(["dpkg", "-S", f"*/{lib}"], capture_output=True, text=True)
        if res.returncode != 0:
            fail(f"{binary} needs {lib}, which no Debian package provides")
        pkg = res.stdout.splitlines()[0].split(":")[0]
        owners[lib] = pkg
    return owners


def lib_sh_packages(source_dir):
    text = open(os.path.join(source_dir, "scripts", "lib.sh")).read()
    m = re.search(r"LOYALTY_PACKAGES=\(([^)]*)\)", text)
    if not m:
        fail("LOYALTY_PACKAGES not found in scripts/lib.sh")
    return set(m.group(1).split())


def main():
    source_dir, build_dir = sys.argv[1:3]
    stages = parse(os.path.join(source_dir, "Dockerfile"))
    for required in ("build", "runtime"):
        if required not in stages:
            fail(f"no `{required}` stage")

    runtime = stages["runtime"]
    users = [a for i, a in runtime["lines"] if i == "USER"]
    if not users or not re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]):
        fail("runtime must end as a numeric non-root USER (uid:gid)")
    checks = [a for i, a in runtime["lines"] if i == "HEALTHCHECK"]
    if not checks or "loyalty-health" not in checks[-1]:
        fail("runtime needs a HEALTHCHECK that runs loyalty-health")
    for tool in ("loyalty-health", "loyaltyctl"):
        if not any(i == "COPY" and f"/out/{tool} /usr/local/bin/{tool}" in a
                   for i, a in runtime["lines"]):
            fail(f"runtime must copy {tool} from the build stage")
    runtime_pkgs = set(apt_packages(runtime))

    for svc, port in SERVICES.items():
        st = stages.get(svc)
        if st is None:
            fail(f"no stage for {svc}")
        if st["from"] != "runtime":
            fail(f"{svc} must be FROM runtime, not {st['from']}")
        instrs = {i for i, _ in st["lines"]}
        if "USER" in instrs:
            fail(f"{svc} must keep the runtime's non-root user")
        copy = [a for i, a in st["lines"] if i == "COPY"]
        if copy != [f"--from=build /out/{svc} /usr/local/bin/{svc}"]:
            fail(f"{svc} must copy exactly its own binary from build: {copy}")
        env = " ".join(a for i, a in st["lines"] if i == "ENV")
        if f"LISTEN_ADDR=0.0.0.0:{port}" not in env:
            fail(f"{svc} must listen on 0.0.0.0:{port}")
        if [a for i, a in st["lines"] if i == "EXPOSE"] != [str(port)]:
            fail(f"{svc} must EXPOSE {port}")
        if [a for i, a in st["lines"] if i == "ENTRYPOINT"] != [f'["/usr/local/bin/{svc}"]']:
            fail(f"{svc} must run its binary as ENTRYPOINT (exec form)")

    binaries = [os.path.join(build_dir, "tools", t) for t in ("loyalty-health", "loyaltyctl")]
    binaries += [os.path.join(build_dir, s, s) for s in SERVICES
                 if os.path.exists(os.path.join(build_dir, s, s))]
    for b in binaries:
        if not os.path.exists(b):
            fail(f"{b} is not built")
        for lib, pkg in needed_packages(b).items():
            if pkg not in runtime_pkgs and pkg not in BASE_IMAGE_PACKAGES:
                fail(f"{os.path.basename(b)} needs {lib} from {pkg}, which runtime lacks")

    build_pkgs = set(apt_packages(stages["build"]))
    missing = build_pkgs - lib_sh_packages(source_dir) - {"libc6-dev"}
    if missing:
        fail(f"build stage packages not in scripts/lib.sh: {sorted(missing)}")
    print(f"Dockerfile: {len(stages)} stages; runtime libraries of {len(binaries)} binaries "
          f"covered by {sorted(runtime_pkgs)}")


if __name__ == "__main__":
    main()
