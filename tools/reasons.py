#!/usr/bin/python3
"""reasons.py -- the catalogue of machine-readable error reasons (lib/reasons.def) against the
code that produces them, and the pages and client constants written from the catalogue.

A reason is the token a failed call carries in the trailing metadata `loyalty-error-reason`.
The sources produce one where they name it:
  - the second argument of status_make(code, "REASON", ...), a literal or a #define of one;
  - the missing_reason argument of db_exec_row(..., code, "REASON", message) and of
    db_row_get(..., code, "REASON", message);
  - refuse('REASON') in SQL, in C strings and in migrations (lib/db.c turns it into
    FAILED_PRECONDITION with that reason);
  - promo_reason_name(...) as a status_make reason: every PromoReason of
    proto/loyalty/v1/promo.proto except UNSPECIFIED and APPLIED.
status_invalid_field(field, ...) makes the family INVALID_<FIELD>, catalogued once as a family.
A reason passed on from elsewhere (a called service's, a stored one) produces nothing new; each
such argument is listed in PASS_THROUGH, and any other non-literal reason fails the check, so
that no helper hides its callers' literals from the scan.

    /usr/bin/python3 tools/reasons.py check            # exit 1 when sources and catalogue differ
    /usr/bin/python3 tools/reasons.py write            # rewrite docs/reasons.md and the clients'
    /usr/bin/python3 tools/reasons.py write --check    # exit 1 when one of them is stale
    /usr/bin/python3 tools/reasons.py list             # every produced reason and where"""
import argparse
import difflib
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIRS = ["lib", "gateway", "member-svc", "points-svc", "wallet-svc", "referral-svc",
               "promo-svc"]
# Producer -> index of the reason among its arguments.
PRODUCERS = {"status_make": 1, "db_exec_row": 5, "db_row_get": 7}
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Reason arguments that are no literal: each passes on a reason made elsewhere (a called
# service's, a stored saga's, refuse()'s, the caller's of db_exec_row). A new one fails the
# check, since a helper that takes a reason hides its callers' literals from this scan: name
# the reason at the status_make, or add the helper to PRODUCERS.
PASS_THROUGH = {
    "reason ? reason : \"REFUSED\"",           # lib/db.c: refuse('REASON') in a statement
    "missing_reason",                          # lib/db.c, lib/db_rows.c: db_exec_row's and
                                               # db_row_get's own argument
    "reason[0] ? reason : NULL",               # rpc_client.c, rpc_batch_call.c, gateway_store.c:
                                               # received, stored
    "calls[i].status.reason",                  # gateway_rpc_audit.c: a participant's
    "x->reason[0] ? x->reason : \"SAGA_FAILED\"",  # gateway_saga.c: the saga's stored reason
    "st.reason",                               # points_rpc.c: one item's status, passed on
    "promo_reason_name(c->reason)",            # promo_pricing.c: PromoReason names
}
CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
         "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
         "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
         "UNAUTHENTICATED"]
OUTPUTS = {"doc": "docs/reasons.md", "python": "clients/python/loyalty_reasons.py",
           "node": "clients/node/loyalty-reasons.js"}


def strip_comments(text):
    """C text with comments blanked (newlines kept, so line numbers stay), strings intact."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def call_args(text, start):
    """The top-level arguments of the call whose '(' is at start, as source text."""
    args, depth, i, begin = [], 0, start, start + 1
    while i < len(text):
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(text[begin:i].strip())
                return args
        elif c == "," and depth == 1:
            args.append(text[begin:i].strip())
            begin = i + 1
        i += 1
    return args


def promo_reasons():
    with open(os.path.join(ROOT, "proto", "loyalty", "v1", "promo.proto")) as f:
        names = re.findall(r"^\s*PROMO_REASON_([A-Z0-9_]+)\s*=", f.read(), re.M)
    return [n for n in names if n not in ("UNSPECIFIED", "APPLIED")]


def source_files():
    files = []
    for d in SOURCE_DIRS:
        for ext in ("c", "h", "sql"):
            files += glob.glob(os.path.join(ROOT, d, "**", f"*.{ext}"), recursive=True)
    return sorted(files)


def scan():
    """{reason: [(where, code or None)]} for every reason the sources produce."""
    texts = {}
    defines = {}
    for path in source_files():
        with open(path) as f:
            text = f.read()
        if not path.endswith(".sql"):
            text = strip_comments(text)
            for name, value in re.findall(r'^\s*#\s*define\s+(\w+)\s+"([A-Z0-9_]+)"\s*$', text,
                                          re.M):
                defines[name] = value
        texts[os.path.relpath(path, ROOT)] = text
    produced = {}
    unknown_pass_through = []

    def add(reason, where, code):
        produced.setdefault(reason, []).append((where, code))

    for rel, text in texts.items():
        def line_of(pos):
            return f"{rel}:{text.count(chr(10), 0, pos) + 1}"

        for m in re.finditer(r"\brefuse\('([A-Z0-9_]+)'\)", text):
            add(m.group(1), line_of(m.start()), "FAILED_PRECONDITION")
        if rel.endswith(".sql"):
            continue
        for fn, index in PRODUCERS.items():
            for m in re.finditer(r"\b%s\s*\(" % fn, text):
                args = call_args(text, m.end() - 1)
                before = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
                if len(args) <= index or re.search(r"(\bstatus_t\s*\(?|#\s*define)\s*$", before):
                    continue  # the declaration, the definition, status.h's debug macro
                arg, code = args[index], args[index - 1]
                code = code[len("STATUS_"):] if re.match(r"^STATUS_[A-Z_]+$", code) else None
                where = line_of(m.start())
                found = re.findall(r'"([^"\\]*)"', arg)
                for word in re.findall(r"\b[A-Z][A-Z0-9_]*\b", re.sub(r'"[^"]*"', "", arg)):
                    if word in defines:
                        found.append(defines[word])
                if "promo_reason_name(" in arg:
                    found += promo_reasons()
                plain = re.sub(r"\s+", " ", arg)
                if plain not in ("NULL",) and not re.match(r'^"[^"]*"$', plain) and \
                        plain not in defines and plain not in PASS_THROUGH:
                    unknown_pass_through.append(f"{where}: {fn} reason {plain}")
                for reason in found:
                    add(reason, where, code)
    return produced, unknown_pass_through


def catalogue(kind="REASON"):
    """[(name, code, meaning)] from lib/reasons.def, in its order; kind REASON_FAMILY gives the
    families (name = the prefix)."""
    path = os.path.join(ROOT, "lib", "reasons.def")
    with open(path) as f:
        text = strip_comments(f.read())
    entries = []
    pattern = r'\b%s\(\s*(\w+)\s*,\s*(\w+)\s*,\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\)' % kind
    for m in re.finditer(pattern, text):
        meaning = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(3))).replace('\\"', '"')
        entries.append((m.group(1), m.group(2), meaning))
    return entries


def check():
    produced, unknown_pass_through = scan()
    entries = catalogue()
    names = [e[0] for e in entries]
    problems = [f"{u}: not a literal; name the reason there, or see PASS_THROUGH in "
                f"tools/reasons.py" for u in unknown_pass_through]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{name}: catalogued twice in lib/reasons.def")
    for name, code, _ in entries + catalogue("REASON_FAMILY"):
        if code not in CODES:
            problems.append(f"{name}: {code} is not a gRPC code name")
    for reason, sites in sorted(produced.items()):
        if not NAME_RE.match(reason):
            problems.append(f"{reason!r} ({sites[0][0]}): a reason is an UPPER_SNAKE token")
        elif reason not in names:
            problems.append(f"{reason}: produced at {sites[0][0]} but not in lib/reasons.def")
    for name in names:
        if name not in produced:
            problems.append(f"{name}: in lib/reasons.def but produced nowhere")
    for p in problems:
        print(f"reasons: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"reasons: {len(entries)} reasons catalogued, all produced, every produced one "
          f"catalogued")
    return 0


def render_doc(entries, families):
    lines = [
        "# Error reasons",
        "",
        "<!-- Written by tools/reasons.py from lib/reasons.def; do not edit by hand. -->",
        "",
        "A failed call carries a gRPC status code, a message for people and a machine-readable",
        "reason in the trailing metadata `loyalty-error-reason`. The reason is part of the",
        "contract: a caller may branch on it, and it never changes meaning. This page lists every",
        "reason the services produce. The code is the one the reason usually comes with; a",
        "participant's reason passed on by the gateway keeps the participant's code.",
        "",
        "The same names, with their code and meaning, are constants for the clients in",
        "`clients/python/loyalty_reasons.py` and `clients/node/loyalty-reasons.js`.",
        "",
        "| Reason | Code | Meaning |",
        "|---|---|---|",
    ]
    for prefix, code, meaning in families:
        lines.append(f"| `{prefix}<FIELD>` | {code} | {meaning.replace('|', '&#124;')} |")
    for name, code, meaning in entries:
        lines.append(f"| `{name}` | {code} | {meaning.replace('|', '&#124;')} |")
    lines.append("")
    return "\n".join(lines)


def render_python(entries, families):
    lines = ['"""loyalty_reasons.py -- the suite\'s error reasons (trailing metadata',
             "loyalty-error-reason) as constants, with their usual gRPC code and meaning.",
             "",
             "Written by tools/reasons.py from lib/reasons.def; do not edit by hand.",
             'See docs/reasons.md."""', "",
             "# Every reason: (usual gRPC code name, meaning).", "REASONS = {"]
    for name, code, meaning in entries:
        lines.append(f"    {name!r}: ({code!r}, {meaning!r}),")
    lines += ["}", "", "# Families of reasons, by prefix: (usual gRPC code name, meaning).",
              "REASON_FAMILIES = {"]
    for prefix, code, meaning in families:
        lines.append(f"    {prefix!r}: ({code!r}, {meaning!r}),")
    lines += ["}", ""]
    for name, _, _ in entries:
        lines.append(f"{name} = {name!r}")
    lines.append("")
    return "\n".join(lines)


def render_node(entries, families):
    def js(s):
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    lines = ["// loyalty-reasons.js -- the suite's error reasons (trailing metadata",
             "// loyalty-error-reason) as constants, with their usual gRPC code and meaning.",
             "// Written by tools/reasons.py from lib/reasons.def; do not edit by hand.",
             "// See docs/reasons.md.",
             "'use strict';", "",
             "// Every reason: {code: usual gRPC code name, meaning}.",
             "const REASONS = Object.freeze({"]
    for name, code, meaning in entries:
        lines.append(f"  {name}: Object.freeze({{code: {js(code)}, meaning: {js(meaning)}}}),")
    lines += ["});", "", "// Families of reasons, by prefix.",
              "const REASON_FAMILIES = Object.freeze({"]
    for prefix, code, meaning in families:
        lines.append(f"  {prefix}: Object.freeze({{code: {js(code)}, meaning: {js(meaning)}}}),")
    lines += ["});", "", "// The names, to compare with LoyaltyError.reason.",
              "const Reason = Object.freeze({"]
    for name, _, _ in entries:
        lines.append(f"  {name}: {js(name)},")
    lines += ["});", "", "module.exports = {REASONS, REASON_FAMILIES, Reason};", ""]
    return "\n".join(lines)


def write(check_only):
    entries, families = catalogue(), catalogue("REASON_FAMILY")
    rendered = {"doc": render_doc(entries, families),
                "python": render_python(entries, families),
                "node": render_node(entries, families)}
    stale = 0
    for key, rel in OUTPUTS.items():
        path = os.path.join(ROOT, rel)
        if check_only:
            try:
                with open(path) as f:
                    old = f.read()
            except FileNotFoundError:
                old = ""
            if old != rendered[key]:
                stale += 1
                sys.stderr.writelines(difflib.unified_diff(
                    old.splitlines(True), rendered[key].splitlines(True), rel, "generated"))
                print(f"reasons: {rel} is stale; run /usr/bin/python3 tools/reasons.py write",
                      file=sys.stderr)
        else:
            with open(path, "w") as f:
                f.write(rendered[key])
    return 1 if stale else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["check", "write", "list"])
    ap.add_argument("--check", action="store_true", help="with write: compare, do not write")
    args = ap.parse_args()
    if args.command == "check":
        return check()
    if args.command == "write":
        return write(args.check)
    for reason, sites in sorted(scan()[0].items()):
        codes = sorted({c or "?" for _, c in sites})
        print(f"{reason}\t{','.join(codes)}\t{len(sites)}\t{sites[0][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
