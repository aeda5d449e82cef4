#!/usr/bin/env python3
"""Keeps README.md's generated reference tables in step with the code.

The Configuration reference tables in README.md are generated from the key
tables in proxy/config.c (`eosproxy config reference`), and the Metrics
table from the exposition in proxy/metrics.c (`eosproxy metrics
reference`). Each generated table stands between

    <!-- generated: eosproxy config|metrics reference SECTION -->
    ...
    <!-- end generated -->

usage: reference.py EOSPROXY_BIN [--fix]
  without --fix: exits 1 and prints a diff when README differs (make test)
  with --fix:    rewrites those blocks in README.md (make reference)
"""

import difflib
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(ROOT, "README.md")
BLOCK = re.compile(r"(<!-- generated: eosproxy (config|metrics) reference (\S+) -->\n)(.*?)"
                   r"(<!-- end generated -->)", re.S)


def sections(binary, what):
    """{section: table text} from `eosproxy WHAT reference`."""
    out = subprocess.run([binary, what, "reference"], check=True, capture_output=True,
                         text=True).stdout
    found = {}
    for part in re.split(r"^### ", out, flags=re.M)[1:]:
        name, _, body = part.partition("\n")
        found[name.strip()] = body.strip("\n") + "\n"
    if not found:
        sys.exit(f"reference.py: `{binary} {what} reference` printed no sections")
    return found


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary, fix = sys.argv[1], "--fix" in sys.argv[2:]
    generated = {"config": sections(binary, "config")}
    text = open(README).read()
    used = set()

    def replace(m):
        what, name = m.group(2), m.group(3)
        if what not in generated:
            generated[what] = sections(binary, what)
        table = generated[what].get(name)
        if table is None:
            sys.exit(f"reference.py: README names {what} section {name!r}, which "
                     f"`eosproxy {what} reference` does not print")
        used.add((what, name))
        return m.group(1) + table + m.group(5)

    new = BLOCK.sub(replace, text)
    missing = [f"{w} {n}" for w, secs in generated.items() for n in secs if (w, n) not in used]
    if missing:
        sys.exit(f"reference.py: README.md has no generated block for: {', '.join(missing)}")
    if new == text:
        print("reference: README.md matches the code")
        return
    if fix:
        open(README, "w").write(new)
        print("reference: README.md updated")
        return
    sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                               "README.md", "generated"))
    sys.exit("reference: README.md differs from the code's reference; run `make reference`")


if __name__ == "__main__":
    main()
