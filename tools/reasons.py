#!/usr/bin/python3
"""reasons.py -- the catalogue of machine-readable error reasons (lib/reasons.def) against the
code that produces them, and the pages and client constants written from the catalogue.

A reason is the token a failed call carries in the trailing metadata `loyalty-error-reason`.
In C a catalogued reason is an id, REASON_<NAME> of reason_id_t (lib/status.h, made from
lib/reasons.def), so the compiler refuses one that is not catalogued. The sources produce one
where they name it:
  - the reason argument of status_make(code, REASON_X, ...), and the missing_reason argument of
    db_exec_row(..., code, REASON_X, message), of db_row_get(..., code, REASON_X, message) and of
    db_row_get_cols(..., code, REASON_X, message);
  - a REASON_X inside the reason argument of status_make_relayed (the string constructor), as in
    `stored[0] ? stored : reason_name(REASON_X)`;
  - refuse('REASON') in SQL, in C strings and in migrations (lib/db.c turns it into
    FAILED_PRECONDITION with that reason);
  - promo_reason_name(...) as a status_make_relayed reason: every PromoReason of
    proto/loyalty/v1/promo.proto except UNSPECIFIED and APPLIED.
status_invalid_field(field, ...) makes the family INVALID_<FIELD>, catalogued once as a family.
A reason passed on from elsewhere (a called service's, a stored one) produces nothing new: it
goes through status_make_relayed, and each such argument is listed in PASS_THROUGH; any other
argument of status_make_relayed fails the check, so that no string reason of one's own slips
past the compiler's check. The reasons the compiler checks must also be produced: every
catalogued reason is named at some producer, or the check fails.

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
# Producer -> index of its reason argument, a reason_id_t.
PRODUCERS = {"status_make": 1, "db_exec_row": 5, "db_row_get": 7, "db_row_get_cols": 7}
# The string constructor -> index of its reason argument.
RELAYS = {"status_make_relayed": 1}
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
# A reason id in an argument; REASON_NONE is no reason, REASON_COUNT no reason either.
ID_RE = re.compile(r"\bREASON_([A-Z0-9_]+)\b")
NOT_REASONS = {"NONE", "COUNT"}
# Ids passed on: a parameter of type reason_id_t given to the producer (lib/db.c, db_rows.c,
# db_cols.c).
ID_PASS_THROUGH = {"missing_reason"}
# The arguments of status_make_relayed: each passes on a reason made elsewhere (a called
# service's, a stored saga's, refuse()'s). A new one fails the check, since a string reason is
# not checked by the compiler: name a reason of one's own with status_make and its REASON_ id.
PASS_THROUGH = {
    "reason ? reason : reason_name(REASON_REFUSED)",  # lib/db.c: refuse('REASON') in a statement
    "reason[0] ? reason : NULL",               # rpc_client.c, rpc_batch_call.c, gateway_store.c:
                                               # received, stored
    "calls[i].status.reason",                  # gateway_rpc_audit.c: a participant's
    "x->reason[0] ? x->reason : reason_name(REASON_SAGA_FAILED)",  # gateway_saga.c: the saga's
                                               # stored reason
    "st.reason",                               # points_rpc.c: one item's status, passed on
    "promo_reason_name(c->reason)",            # promo_ops.c: PromoReason names
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
    """({reason: [(where, code or None)]} for every reason the sources produce, [problems])."""
    texts = {}
    for path in source_files():
        with open(path) as f:
            text = f.read()
        if not path.endswith(".sql"):
            text = strip_comments(text)
        texts[os.path.relpath(path, ROOT)] = text
    produced = {}
    problems = []

    def add(reason, where, code):
        produced.setdefault(reason, []).append((where, code))

    for rel, text in texts.items():
        def line_of(pos):
            return f"{rel}:{text.count(chr(10), 0, pos) + 1}"

        for m in re.finditer(r"\brefuse\('([A-Z0-9_]+)'\)", text):
            add(m.group(1), line_of(m.start()), "FAILED_PRECONDITION")
        if rel.endswith(".sql"):
            continue
        for fn, index in list(PRODUCERS.items()) + list(RELAYS.items()):
            for m in re.finditer(r"\b%s\s*\(" % fn, text):
                args = call_args(text, m.end() - 1)
                before = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
                if len(args) <= index or re.search(r"(\bstatus_t\s*\(?|#\s*define)\s*$", before):
                    continue  # the declaration, the definition
                arg, code = args[index], args[index - 1]
                code = code[len("STATUS_"):] if re.match(r"^STATUS_[A-Z_]+$", code) else None
                where = line_of(m.start())
                plain = re.sub(r"\s+", " ", arg)
                found = [r for r in ID_RE.findall(arg) if r not in NOT_REASONS]
                if fn in RELAYS:
                    if "promo_reason_name(" in arg:
                        found += promo_reasons()
                    if plain not in PASS_THROUGH and plain != "NULL":
                        problems.append(f"{where}: {fn} reason {plain}: not a reason passed "
                                        f"on; name one's own with status_make(code, REASON_X, "
                                        f"...), or see PASS_THROUGH in tools/reasons.py")
                elif not re.match(r"^REASON_[A-Z0-9_]+$", plain) and \
                        plain not in ID_PASS_THROUGH:
                    problems.append(f"{where}: {fn} reason {plain}: not a REASON_ id")
                for reason in found:
                    add(reason, where, code)
    return produced, problems


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
    produced, problems = scan()
    entries = catalogue()
    names = [e[0] for e in entries]
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
