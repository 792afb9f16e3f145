"""Who may import whom: each package's boundary, and no circle between the project's modules.

    tracking/   the only MLflow client (imports training, never tuning)
    tuning/     the only Ray client (imports training and tracking)
    training/   neither MLflow nor Ray, nor tracking or tuning

Static (read with `ast`, nothing imported), except the last test, which imports every module fresh in one
subprocess: a circle the static graph misses (an import inside a function that runs at import) shows there.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("training", "tracking", "tuning", "benchmarks")
# package -> the top-level names it must never import (anywhere in a file, at module level or in a function)
FORBIDDEN = {"training": {"mlflow", "ray", "tracking", "tuning"},
             "tracking": {"ray", "tuning"},
             "tuning": {"mlflow"},
             "benchmarks": {"mlflow", "ray"}}
OWNER = {"mlflow": "tracking", "ray": "tuning"}  # the one package that may talk to each


def modules() -> dict[str, Path]:
    """Every project module by dotted name (a package by its name, for its __init__.py)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(path: Path, name: str, module_level_only: bool, known: set[str] | None = None) -> set[str]:
    """The dotted names `path` (module `name`) imports. `from a.b import c` counts as `a.b.c` and `a.b`; given
    the `known` modules, as `a.b.c` alone when that is a module (its package `a.b` is then loaded first anyway)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = ast.walk(tree)
    if module_level_only:  # statements run at import: the module's body, and the bodies of its if/try blocks
        def top(body):
            for node in body:
                yield node
                if isinstance(node, (ast.If, ast.Try)):
                    for block in (node.body, node.orelse, getattr(node, "handlers", []), getattr(node, "finalbody", [])):
                        yield from top([n for h in block for n in (h.body if isinstance(h, ast.ExceptHandler) else [h])])
        nodes = top(tree.body)
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            full = {f"{base}.{a.name}" for a in node.names}
            out |= full if known is not None and full <= known else {base} | full
    return out


def test_each_package_keeps_to_its_boundary():
    found = modules()
    assert {"tracking.session", "tuning.sweep", "training.loop"} <= set(found)  # the walk sees the project
    crossings = []
    for name, path in found.items():
        package = name.split(".")[0]
        for target in sorted(imported(path, name, module_level_only=False)):
            top = target.split(".")[0]
            if top in FORBIDDEN[package] or (top in OWNER and OWNER[top] != package):
                crossings.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not crossings, "imports across a package boundary:\n" + "\n".join(crossings)


def test_the_boundary_check_sees_a_crossing(tmp_path):
    """The check above can fail: an mlflow import (in a function, relative imports too) is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("from . import sweep\ndef f():\n    from mlflow.tracking import MlflowClient\n")
    assert {"tuning.sweep", "mlflow.tracking", "mlflow.tracking.MlflowClient"} <= imported(bad, "tuning.bad", False)
    assert "mlflow.tracking" not in imported(bad, "tuning.bad", True)


def import_graph(module_level_only: bool = True) -> dict[str, set[str]]:
    """Module -> the project modules it imports when it is imported (module-level statements), or anywhere."""
    found = modules()
    return {name: {t for t in imported(path, name, module_level_only, known=set(found)) if t in found and t != name}
            for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles of `graph` (one path for each strongly connected group of more than one module)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_circle_between_modules():
    graph = import_graph()
    assert graph["tuning.multiworker"] and graph["tracking.session"]  # edges are found
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # and circles would be
    assert not cycles(graph), f"modules that import each other in a circle: {cycles(graph)}"


def test_no_circle_in_tracking_or_tuning_even_through_imports_in_functions():
    """Within tracking/ and tuning/ no circle even through a deferred (in-function) import: two modules that
    need each other are one concern split in two (e.g. a trial and its multi-worker form)."""
    outer = {n: {t for t in ts if t.split(".")[0] in ("tracking", "tuning")}
             for n, ts in import_graph(module_level_only=False).items() if n.split(".")[0] in ("tracking", "tuning")}
    assert outer["tuning.trial"] >= {"tuning.multiworker", "tracking.sweep_runs"}  # deferred imports are seen
    assert not cycles(outer), f"modules that import each other in a circle: {cycles(outer)}"


def test_each_module_imports_on_its_own():
    """Each module imported first, in a fresh set of project modules (third-party ones stay loaded, so it is
    quick): an import that works only after another module was imported shows here."""
    names = sorted(modules())
    code = """
import importlib, json, sys, traceback
project = %r
failed = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m.split(".")[0] in project]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=3)
print(json.dumps(failed))
""" % (PACKAGES,)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(names)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    failed = json.loads(out.stdout.strip().splitlines()[-1])
    assert not failed, "\n".join(f"{k}:\n{v}" for k, v in failed.items())
