#!/usr/bin/env python3
"""Measures the shape of the server's code: where SQL lives, how states are compared, how
long functions are and which domains import each other.

    python3 scripts/shape.py            # a summary
    python3 scripts/shape.py --detail   # and the sites behind each count

Counts (server/src only, `#[cfg(test)]` modules excluded):
- SQL sites: calls of sqlx::query / query_as / query_scalar / QueryBuilder, per file, and
  those outside a domain's `store.rs` (or `db/`).
- state strings: comparisons of a value with a lowercase string literal (`== "accepted"`,
  `!= "draft"`) and match arms on such literals (`"accepted" =>`).
- long functions: `fn` bodies longer than 80 lines.
- import cycles: pairs of top-level modules (domains) that each name the other as `crate::x`
  (the frame they plug into, `app`, `api`, `error`, `db`, is not a domain).
"""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server", "src")
SQL = re.compile(r"\bsqlx::(query|query_as|query_scalar|QueryBuilder)\b|\bquery(_as|_scalar)?(::<[^>]*>)?\(\s*(r#)?\"")
STATE_CMP = re.compile(r"(==|!=)\s*\"[a-z][a-z_]*\"|\"[a-z][a-z_]*\"\s*(==|!=)|^\s*\"[a-z][a-z_]*\"(\s*\|\s*\"[a-z][a-z_]*\")*\s*=>")
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)")
CRATE = re.compile(r"\bcrate::(\w+)")
# The frame every domain plugs into (state, route table, errors, database pool), not domains.
FRAME = {"app", "api", "error", "db", "lib", "main"}


def strip_tests(lines):
    """Drops `#[cfg(test)] mod ... { ... }` blocks."""
    out, skip, depth = [], False, 0
    pending = False
    for line in lines:
        if not skip and line.strip() == "#[cfg(test)]":
            pending = True
            out.append("")
            continue
        if pending and re.match(r"\s*mod\s+\w+\s*\{", line):
            skip, depth, pending = True, 0, False
        pending = False
        if skip:
            depth += line.count("{") - line.count("}")
            out.append("")
            if depth <= 0 and "}" in line:
                skip = False
            continue
        out.append(line)
    return out


def functions(lines):
    """(name, first line, length) of every fn with a body, by brace matching."""
    found = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            text = re.sub(r"\"(\\.|[^\"\\])*\"", "\"\"", lines[j])
            text = re.sub(r"'(\\.|[^'\\])'", "''", text)
            text = text.split("//")[0]
            if not started and ";" in text and "{" not in text:
                break
            opens, closes = text.count("{"), text.count("}")
            if opens:
                started = True
            depth += opens - closes
            if started and depth <= 0:
                found.append((m.group(6), i + 1, j - i + 1))
                break
    return found


def main():
    detail = "--detail" in sys.argv
    sql_by_file, outside, states, long_fns = {}, [], [], []
    imports = defaultdict(set)
    for dirpath, _, files in os.walk(ROOT):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, ROOT)
            with open(path, encoding="utf-8") as fh:
                lines = strip_tests(fh.read().splitlines())
            domain = rel.split(os.sep)[0].removesuffix(".rs")
            n_sql = 0
            for i, line in enumerate(lines, 1):
                code = line.split("//")[0]
                if SQL.search(code):
                    n_sql += 1
                    if f != "store.rs" and domain != "db":
                        outside.append(f"{rel}:{i}")
                if STATE_CMP.search(code):
                    states.append(f"{rel}:{i}: {code.strip()}")
                for m in CRATE.finditer(code):
                    if m.group(1) != domain and domain not in FRAME and m.group(1) not in FRAME:
                        imports[domain].add(m.group(1))
            if n_sql:
                sql_by_file[rel] = n_sql
            for name, start, length in functions(lines):
                if length > 80:
                    long_fns.append((length, f"{rel}:{start} {name}"))
    cycles = sorted({tuple(sorted((a, b))) for a in imports for b in imports[a] if a in imports.get(b, ())})
    total_sql = sum(sql_by_file.values())
    print(f"SQL sites: {total_sql} in {len(sql_by_file)} files; outside a store: {len(outside)}")
    print(f"state strings compared: {len(states)}")
    print(f"functions longer than 80 lines: {len(long_fns)}")
    print(f"import cycles between domains: {len(cycles)}: " + ", ".join(f"{a}<->{b}" for a, b in cycles))
    if detail:
        print("\n# SQL sites outside a store")
        print("\n".join(outside))
        print("\n# state strings")
        print("\n".join(states))
        print("\n# long functions")
        print("\n".join(f"{n:4} {where}" for n, where in sorted(long_fns, reverse=True)))


if __name__ == "__main__":
    main()
