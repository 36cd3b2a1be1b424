#!/usr/bin/env python3
"""Fails when the files of a crate import each other in a circle (ARCHITECTURE.md: "no cycles").

A file is a module; `a.rs` depends on `b.rs` when its code (not its comments, not its unit tests)
names `crate::b…`. Edges between a module and its own children are allowed: a parent declares its
children, and a child may use its parent's private types. Everything else must point one way, so
vocabulary two modules share lives in a leaf file of its own.

Usage: import-cycles.py CRATE_SRC_DIR...   (exit 1 and the circles found, if any)
"""
import os
import re
import sys

PATH = re.compile(r"crate::((?:[a-z_0-9]+::)*[a-z_0-9]+)")
GROUP = re.compile(r"use crate::\{([^;]*)\};", re.S)


def modules(root):
    mods = {}
    for folder, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            parts = os.path.relpath(os.path.join(folder, f), root)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            with open(os.path.join(folder, f)) as fh:
                mods["::".join(parts)] = fh.read()
    return mods


def code_of(src):
    src = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", src, flags=re.S)
    return re.sub(r"//.*$", "", src, flags=re.M)


def related(a, b):
    return a == b or a.startswith(b + "::") or b.startswith(a + "::") or a == "" or b == ""


def edges_of(mods):
    def resolve(path):
        segs = path.split("::")
        while segs:
            if "::".join(segs) in mods:
                return "::".join(segs)
            segs.pop()
        return None

    edges = {}
    for name, src in mods.items():
        code = code_of(src)
        paths = [m.group(1) for m in PATH.finditer(code)]
        for group in GROUP.finditer(code):
            # `use crate::{a::{b, c}, d}`: the first segment of each top-level item is enough.
            paths += re.findall(r"(?:^|,)\s*([a-z_0-9]+(?:::[a-z_0-9]+)*)", group.group(1))
        deps = {resolve(p) for p in paths}
        edges[name] = {d for d in deps if d is not None and not related(name, d)}
    return edges


def circles(edges):
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main(roots):
    bad = 0
    for root in roots:
        edges = edges_of(modules(root))
        for comp in circles(edges):
            bad += 1
            print(f"{root}: these files import each other in a circle:")
            for v in comp:
                for w in sorted(edges[v] & set(comp)):
                    print(f"    {v or 'lib'} -> {w}")
    if bad:
        print("Give the word they share a file of its own (see ARCHITECTURE.md).")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
