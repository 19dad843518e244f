#!/usr/bin/python3
"""check_doc_refs.py -- every reference to the project's documentation resolves.

Scans the repository's files (those git tracks or would track: `git ls-files -co
--exclude-standard`) for references to docs/<page>.md, with or without a #section, as code
comments and Markdown links write them (`docs/domain.md#pricing-order`,
`[..](../docs/architecture.md#sagas)`), and, inside docs/*.md, for links to sibling pages and
to their own sections (`](domain.md#points)`, `](#conventions)`). A reference fails when the page
does not exist or has no heading whose GitHub anchor is the #section. It also fails on any
reference to the old design document's numbered sections, which is not in the repository.

    /usr/bin/python3 tools/check_doc_refs.py [REPO_DIR]

Exits 1 and lists every broken reference as path:line: reference: why."""
import os
import re
import subprocess
import sys

DOCS_REF = re.compile(r"(?<![\w/.-])(?:\.\./|\./)*docs/([\w.-]+\.md)(#[\w-]+)?")
LOCAL_LINK = re.compile(r"\]\((?:\./)?([\w.-]+\.md)?(#[\w-]+)?\)")
# Built from two parts so that this file does not match itself.
OLD_DESIGN = re.compile("DESIGN" + r"\s*\u00a7")
TEXT_SUFFIXES = (".c", ".h", ".cc", ".py", ".js", ".sh", ".md", ".proto", ".sql", ".yaml",
                 ".yml", ".txt", ".cmake", ".json", ".env", "Dockerfile", "up", "down", "test",
                 "run", "lib.sh")


def slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(path):
    """The anchors of a Markdown file's headings (outside fenced blocks), with GitHub's -1, -2
    suffixes for repeated headings."""
    seen, out, fenced = {}, set(), False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fenced = not fenced
                continue
            m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                base = slug(m.group(1))
                n = seen.get(base, 0)
                seen[base] = n + 1
                out.add(base if n == 0 else f"{base}-{n}")
    return out


def repo_files(root):
    res = subprocess.run(["git", "-C", root, "ls-files", "-co", "--exclude-standard"],
                         capture_output=True, text=True)
    if res.returncode == 0:
        return sorted(set(res.stdout.split()))
    out = []  # not a git checkout: walk it, skipping build trees and local state
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(("build", ".")) and x != "node_modules"]
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cache = {}

    def check(page_path, anchor):
        """None when page_path (relative to root) exists with that #anchor, else why not."""
        full = os.path.join(root, page_path)
        if not os.path.isfile(full):
            return "no such document"
        if anchor:
            if page_path not in cache:
                cache[page_path] = anchors_of(full)
            if anchor[1:] not in cache[page_path]:
                return f"{page_path} has no section {anchor}"
        return None

    problems, refs = [], 0
    for rel in repo_files(root):
        if not rel.endswith(TEXT_SUFFIXES) or not os.path.isfile(os.path.join(root, rel)):
            continue
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                lines = f.read().split("\n")
        except UnicodeDecodeError:
            continue
        in_docs = rel.startswith("docs/") and rel.endswith(".md")
        for no, line in enumerate(lines, 1):
            if OLD_DESIGN.search(line):
                problems.append(f"{rel}:{no}: {line.strip()[:80]}: cites the old design "
                                "document; point to a section of docs/ instead")
            for m in DOCS_REF.finditer(line):
                refs += 1
                why = check("docs/" + m.group(1), m.group(2))
                if why:
                    problems.append(f"{rel}:{no}: {m.group(0)}: {why}")
            if in_docs:
                for m in LOCAL_LINK.finditer(line):
                    page, anchor = m.group(1), m.group(2)
                    if not page and not anchor:
                        continue
                    refs += 1
                    why = check("docs/" + (page or os.path.basename(rel)), anchor)
                    if why:
                        problems.append(f"{rel}:{no}: {m.group(0)[2:-1]}: {why}")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} broken documentation reference(s)")
        return 1
    if refs == 0:
        print("no documentation reference found: the scan itself is broken")
        return 1
    print(f"{refs} documentation references resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
