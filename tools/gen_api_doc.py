#!/usr/bin/python3
"""gen_api_doc.py -- writes docs/api.md, the API reference of the loyalty.v1 contract, from the
comments in proto/loyalty/v1/*.proto.

protoc writes a descriptor set with the comments kept (--include_source_info); this script
turns it into one Markdown page: per file its header comment, services with their methods,
messages with their fields, enums with their values. The output depends only on the .proto
files, so it can be checked in and compared.

    /usr/bin/python3 tools/gen_api_doc.py                     # rewrite docs/api.md
    /usr/bin/python3 tools/gen_api_doc.py --out FILE          # write elsewhere (the build)
    /usr/bin/python3 tools/gen_api_doc.py --check docs/api.md # exit 1 when FILE is stale

Needs protoc and Debian's python3-protobuf."""
import argparse
import difflib
import glob
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "loyalty.v1"
# The storefront's entry point first, then the participants in port order, the service every
# one of them serves (audit), shared types last.
FILE_ORDER = ["gateway", "campaign", "member", "points", "wallet", "referral", "promo", "audit",
              "common"]

# FileDescriptorProto / DescriptorProto / ... field numbers used in source-code-info paths.
PATH_MESSAGE, PATH_ENUM, PATH_SERVICE, PATH_SYNTAX = 4, 5, 6, 12
PATH_FIELD, PATH_NESTED, PATH_NESTED_ENUM, PATH_VALUE, PATH_METHOD = 2, 3, 4, 2, 2

FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    FDP.TYPE_DOUBLE: "double", FDP.TYPE_FLOAT: "float", FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64", FDP.TYPE_INT32: "int32", FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32", FDP.TYPE_BOOL: "bool", FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes", FDP.TYPE_UINT32: "uint32", FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64", FDP.TYPE_SINT32: "sint32", FDP.TYPE_SINT64: "sint64",
}


def descriptor_set(proto_dir):
    """Runs protoc over proto_dir/loyalty/v1/*.proto; returns the FileDescriptorSet."""
    files = sorted(os.path.relpath(p, proto_dir)
                   for p in glob.glob(os.path.join(proto_dir, "loyalty", "v1", "*.proto")))
    if not files:
        sys.exit(f"gen_api_doc: no loyalty/v1/*.proto under {proto_dir}")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "api.desc")
        subprocess.run(["protoc", "-I", proto_dir, "--include_source_info",
                        f"--descriptor_set_out={out}"] + files, check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    return fds


def comments_of(fd):
    """{path tuple: leading comment text (trailing when there is no leading one)}."""
    out = {}
    for loc in fd.source_code_info.location:
        text = loc.leading_comments or loc.trailing_comments
        if text:
            out[tuple(loc.path)] = text
    return out


def clean(text):
    """Comment lines without protoc's leading space, trailing blanks and outer empty lines."""
    lines = [ln[1:] if ln.startswith(" ") else ln for ln in text.rstrip().split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    return [ln.rstrip() for ln in lines]


def is_laid_out(lines):
    """True when the comment's line breaks carry meaning (lists, indented tables)."""
    return any(ln.startswith((" ", "-", "\t")) or ln[:2].rstrip(".").isdigit() for ln in lines)


def prose(text):
    """A comment as Markdown: one paragraph, or a text block when its layout matters."""
    lines = clean(text)
    if not lines:
        return ""
    if is_laid_out(lines) or len(lines) > 12:
        return "```text\n" + "\n".join(lines) + "\n```"
    return " ".join(ln.strip() for ln in lines if ln.strip())


def cell(text):
    """A comment as one table cell."""
    if not text:
        return ""
    return " ".join(ln.strip() for ln in clean(text) if ln.strip()).replace("|", "\\|")


def first_sentence(text):
    """Up to the first full stop followed by a space (the whole text when there is none)."""
    end = text.find(". ")
    while end >= 0 and text[max(0, end - 3):end] in ("e.g", "i.e"):
        end = text.find(". ", end + 2)
    return text if end < 0 else text[:end + 1]


def anchor(name):
    """The GitHub heading slug of a type's heading ("### GatewayCart" -> "gatewaycart")."""
    return name.lower().replace(".", "")


class Doc:
    def __init__(self, fds):
        self.files = {}
        for fd in fds.file:
            if fd.package == PACKAGE:
                self.files[os.path.basename(fd.name)[:-len(".proto")]] = fd
        self.map_entries = {}
        self.local_types = set()
        for fd in self.files.values():
            for msg, prefix in self.all_messages(fd):
                full = f".{PACKAGE}.{prefix}{msg.name}"
                if msg.options.map_entry:
                    self.map_entries[full] = msg
                else:
                    self.local_types.add(full)
            for en, prefix in self.all_enums(fd):
                self.local_types.add(f".{PACKAGE}.{prefix}{en.name}")

    @staticmethod
    def all_messages(fd):
        """(message, "Outer.") pairs, depth first, in declaration order (no recursion)."""
        out, stack = [], [(m, "") for m in reversed(fd.message_type)]
        while stack:
            msg, prefix = stack.pop()
            out.append((msg, prefix))
            stack.extend((n, f"{prefix}{msg.name}.") for n in reversed(msg.nested_type))
        return out

    def all_enums(self, fd):
        out = [(e, "") for e in fd.enum_type]
        for msg, prefix in self.all_messages(fd):
            out.extend((e, f"{prefix}{msg.name}.") for e in msg.enum_type)
        return out

    def comment_of(self, type_name):
        """The leading comment of a top-level loyalty.v1 message ("" when none)."""
        for fd in self.files.values():
            for i, msg in enumerate(fd.message_type):
                if f".{fd.package}.{msg.name}" == type_name:
                    return comments_of(fd).get((PATH_MESSAGE, i), "")
        return ""

    def type_ref(self, type_name):
        """A message or enum type as Markdown: linked when it is documented here."""
        short = type_name[len(f".{PACKAGE}."):] if type_name.startswith(f".{PACKAGE}.") \
            else type_name.lstrip(".")
        if type_name in self.local_types:
            return f"[`{short}`](#{anchor(short)})"
        return f"`{short}`"

    def field_type(self, field):
        if field.type_name in self.map_entries:
            entry = self.map_entries[field.type_name]
            k, v = entry.field[0], entry.field[1]
            return f"map&lt;{self.field_type(k)}, {self.field_type(v)}&gt;"
        if field.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
            return self.type_ref(field.type_name)
        return f"`{SCALARS[field.type]}`"

    def render(self):
        out = ["# API reference", "",
               "<!-- Generated by tools/gen_api_doc.py from proto/loyalty/v1/*.proto: do not "
               "edit by hand. Regenerate with `/usr/bin/python3 tools/gen_api_doc.py`. -->", "",
               f"The `{PACKAGE}` contract as the `.proto` files document it: per file, its "
               "services and their methods, then its messages and enums, with the comments "
               "written next to them. Storefronts call the `Gateway`; the other services are "
               "its participants. The conventions every RPC follows are in "
               "[architecture.md](architecture.md#conventions); every server also serves "
               "`grpc.health.v1.Health` and gRPC server reflection.", "", "## Files", ""]
        names = [n for n in FILE_ORDER if n in self.files] + \
            sorted(n for n in self.files if n not in FILE_ORDER)
        for name in names:
            fd = self.files[name]
            services = ", ".join(f"`{s.name}`" for s in fd.service) or "shared types"
            out.append(f"- [`{fd.name}`](#{anchor(fd.name).replace('/', '')}): {services}")
        out.append("")
        for name in names:
            out.extend(self.render_file(self.files[name]))
        return "\n".join(out).rstrip() + "\n"

    def render_file(self, fd):
        c = comments_of(fd)
        out = [f"## {fd.name}", ""]
        header = c.get((PATH_SYNTAX,))
        if header:
            out += ["```text", *clean(header), "```", ""]
        for si, svc in enumerate(fd.service):
            out += [f"### {svc.name}", ""]
            if (PATH_SERVICE, si) in c:
                out += [prose(c[(PATH_SERVICE, si)]), ""]
            out += ["| Method | Request | Response | Notes |", "|---|---|---|---|"]
            for mi, m in enumerate(svc.method):
                req = ("stream " if m.client_streaming else "") + self.type_ref(m.input_type)
                resp = ("stream " if m.server_streaming else "") + self.type_ref(m.output_type)
                group = cell(c.get((PATH_SERVICE, si, PATH_METHOD, mi), ""))
                note = first_sentence(cell(self.comment_of(m.input_type)))
                if group:
                    note = f"*{group}* {note}".rstrip()
                out.append(f"| `{m.name}` | {req} | {resp} | {note} |")
            out.append("")
        for msg, prefix, path in self.messages_with_paths(fd):
            if msg.options.map_entry:
                continue
            out.extend(self.render_message(msg, prefix, path, c))
        for en, prefix, path in self.enums_with_paths(fd):
            out.extend(self.render_enum(en, prefix, path, c))
        return out

    @staticmethod
    def messages_with_paths(fd):
        out = []
        stack = [(m, "", (PATH_MESSAGE, i)) for i, m in reversed(list(enumerate(fd.message_type)))]
        while stack:
            msg, prefix, path = stack.pop()
            out.append((msg, prefix, path))
            stack.extend((n, f"{prefix}{msg.name}.", path + (PATH_NESTED, i))
                         for i, n in reversed(list(enumerate(msg.nested_type))))
        return out

    def enums_with_paths(self, fd):
        out = [(e, "", (PATH_ENUM, i)) for i, e in enumerate(fd.enum_type)]
        for msg, prefix, path in self.messages_with_paths(fd):
            out.extend((e, f"{prefix}{msg.name}.", path + (PATH_NESTED_ENUM, i))
                       for i, e in enumerate(msg.enum_type))
        return out

    def render_message(self, msg, prefix, path, c):
        name = prefix + msg.name
        out = [f"### {name}", ""]
        if path in c:
            out += [prose(c[path]), ""]
        if not msg.field:
            return out + ["No fields.", ""]
        out += ["| Field | Type | Notes |", "|---|---|---|"]
        for fi, f in enumerate(msg.field):
            typ = self.field_type(f)
            if f.label == FDP.LABEL_REPEATED and f.type_name not in self.map_entries:
                typ = "repeated " + typ
            notes = cell(c.get(path + (PATH_FIELD, fi), ""))
            if f.HasField("oneof_index") and not f.proto3_optional:
                oneof = f"one of `{msg.oneof_decl[f.oneof_index].name}`"
                notes = f"{oneof}. {notes}" if notes else oneof
            out.append(f"| `{f.name}` = {f.number} | {typ} | {notes} |")
        return out + [""]

    def render_enum(self, en, prefix, path, c):
        out = [f"### {prefix}{en.name}", ""]
        if path in c:
            out += [prose(c[path]), ""]
        out += ["| Value | Number | Notes |", "|---|---|---|"]
        for vi, v in enumerate(en.value):
            notes = cell(c.get(path + (PATH_VALUE, vi), ""))
            out.append(f"| `{v.name}` | {v.number} | {notes} |")
        return out + [""]


def main():
    ap = argparse.ArgumentParser(description="Writes docs/api.md from the .proto comments.")
    ap.add_argument("--proto-dir", default=os.path.join(ROOT, "proto"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "api.md"))
    ap.add_argument("--check", metavar="FILE",
                    help="compare FILE with what would be generated; exit 1 when it differs")
    args = ap.parse_args()
    text = Doc(descriptor_set(args.proto_dir)).render()
    if args.check:
        try:
            with open(args.check, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(),
                                        args.check, "generated", lineterm="", n=1)
            sys.stdout.write("\n".join(list(diff)[:60]) + "\n")
            print(f"{args.check} is stale: the .proto comments changed. Regenerate it with\n"
                  "    /usr/bin/python3 tools/gen_api_doc.py\nand commit the result.")
            return 1
        print(f"{args.check} matches proto/loyalty/v1")
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
