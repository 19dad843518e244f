#!/usr/bin/python3
"""The proto tree is publishable as it is (buf-style): every file sits in the folder its
package names (proto/loyalty/v1/*.proto is package loyalty.v1), every loyalty.v1 file sets the
same Go and Java package options, and proto/buf.yaml names proto/ as the module root. The build
already proves that all files compile together.

Usage: check_protos.py SOURCE_DIR"""
import glob
import os
import re
import sys

OPTIONS = [
    'option go_package = "github.com/loyalty-suite/loyalty/gen/go/loyalty/v1;loyaltyv1";',
    'option java_package = "com.loyaltysuite.loyalty.v1";',
    "option java_multiple_files = true;",
]


def main():
    root = os.path.join(sys.argv[1], "proto")
    errors = []
    files = sorted(glob.glob(os.path.join(root, "**", "*.proto"), recursive=True))
    for path in files:
        rel = os.path.relpath(path, root)
        text = open(path).read()
        m = re.search(r"^package\s+([\w.]+)\s*;", text, re.M)
        if not m:
            errors.append(f"{rel}: no package")
            continue
        if m.group(1).replace(".", "/") != os.path.dirname(rel):
            errors.append(f"{rel}: package {m.group(1)} does not match its folder")
        if not re.search(r'^syntax\s*=\s*"proto3"\s*;', text, re.M):
            errors.append(f"{rel}: not proto3")
        if m.group(1) == "loyalty.v1":
            for opt in OPTIONS:
                if opt not in text:
                    errors.append(f"{rel}: missing `{opt}`")
    buf = os.path.join(root, "buf.yaml")
    if not os.path.exists(buf) or "version: v2" not in open(buf).read():
        errors.append("proto/buf.yaml (version: v2) is missing")
    if not any(os.path.dirname(os.path.relpath(f, root)) == "loyalty/v1" for f in files):
        errors.append("no proto/loyalty/v1/*.proto")
    for e in errors:
        print(f"check_protos: {e}")
    if errors:
        sys.exit(1)
    print(f"protos: {len(files)} files in buf layout, loyalty.v1 options set")


if __name__ == "__main__":
    main()
