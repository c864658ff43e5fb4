"""The library's import graph: every module imports on its own, and nothing imports in a
circle (not even through a function-level import)."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.support.saltenv import REPO

LIB = REPO / "_utils"
PKG = LIB / "palplat"
MAX_LINES = 520  # "no library file over ~500 lines"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(LIB).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(mod: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(mod: str, path: Path, known: set[str]) -> set[str]:
    """Every palplat module ``mod`` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(mod, path, node)
            subs = [f"{target}.{a.name}" for a in node.names]
            # `from pkg import submodule` depends on the submodule, not on pkg's body
            names = subs if all(s in known for s in subs) else [target, *subs]
        for name in names:
            if name in known and name != mod:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_cycle_detector_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_library_has_no_import_cycle():
    g = graph()
    assert len(g) > 10 and "palplat.config" in g
    assert cycles(g) == []


def test_the_package_initialisers_only_reexport():
    """A submodule never imports its own package's ``__init__`` (that is a cycle in
    disguise: the package imports the submodule to re-export it)."""
    g = graph()
    bad = [
        f"{m} imports {d}"
        for m, deps in g.items()
        for d in deps
        if m.startswith(d + ".") and (PKG.parent / d.replace(".", "/") / "__init__.py").exists()
    ]
    assert bad == []


def test_every_module_imports_on_its_own():
    mods = sorted(_modules())
    code = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(LIB)!r})\n"
        "bad = []\n"
        f"for name in {mods!r}:\n"
        "    for k in [k for k in sys.modules if k == 'palplat' or k.startswith('palplat.')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        bad.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_library_file_is_too_long():
    long = {
        str(p.relative_to(REPO)): n
        for p in PKG.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
