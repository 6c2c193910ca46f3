"""The import structure of the three packages (see ``docs/architecture.md``).

Parsed with :mod:`ast`, so every import counts: module level, inside functions, and under
``if TYPE_CHECKING:`` (a lazy import that only hides a circle still is one).

- No import circle among the modules of ``snn_egru``, ``spinnaker2_backend`` and
  ``lava_procs``, with no exception (a lazy import that closes one fails too).
- Importing ``pkg.sub`` runs ``pkg/__init__.py`` first, so a module outside ``pkg`` that
  imports ``pkg.sub`` also depends on ``pkg`` itself.
- A ``cli`` module is imported only by ``__main__`` or by another ``cli`` module.
- ``spinnaker2_backend`` and ``lava_procs`` never import torch; ``snn_egru`` never imports
  Lava.
- ``snn_egru`` has two layers: the torch-free core (:data:`SNN_EGRU_CORE`) and the
  application on top of it. ``spinnaker2_backend`` and ``lava_procs`` import only the core;
  the core imports only itself (no torch, no Lava, no backend).
- No module is over :data:`MAX_LINES` lines and no function over :data:`MAX_FUNCTION_LINES`
  lines, with no list of exceptions.
- No tracked file names a path outside the repository (the design notes the project started
  from live outside it; `docs/` is the project's own).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("snn_egru", "spinnaker2_backend", "lava_procs")
MAX_LINES = 700
MAX_FUNCTION_LINES = 100

#: The torch-free core of ``snn_egru``: the only modules of it that ``spinnaker2_backend``
#: and ``lava_procs`` may import (``snn_egru`` itself: its ``__init__`` runs on any import
#: and loads the torch names lazily). Everything else in ``snn_egru`` is the application
#: (training, export, ``cli``, ``pipeline``), which may import the backend and Lava.
SNN_EGRU_CORE = frozenset(
    {
        "snn_egru",
        "snn_egru.reference",
        "snn_egru.artifact",
        "snn_egru.artifact_int8",
        "snn_egru.adaptive_head",
        "snn_egru.errors",
        "snn_egru.cliargs",
    }
)

#: Top-level packages a package must never import (directly, in any function).
FORBIDDEN = {
    "spinnaker2_backend": ("torch",),
    "lava_procs": ("torch",),
    "snn_egru": ("lava",),
}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_package(name: str, files: dict[str, Path]) -> bool:
    return name in files and files[name].name == "__init__.py"


def _resolve_relative(module: str, node: ast.ImportFrom, files: dict[str, Path]) -> str:
    base = module if _is_package(module, files) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


class _Imports(ast.NodeVisitor):
    """Every import of a module, with the enclosing function and class (``None`` at top)."""

    def __init__(self, module: str, files: dict[str, Path]) -> None:
        self.module = module
        self.files = files
        self.found: list[tuple[str, str | None, str | None]] = []  # (target, function, class)
        self._function: list[str] = []
        self._class: list[str] = []

    def _add(self, target: str) -> None:
        self.found.append(
            (
                target,
                self._function[-1] if self._function else None,
                self._class[-1] if self._class else None,
            )
        )

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._class.append(node.name)
        self.generic_visit(node)
        self._class.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function.append(node.name)
        self.generic_visit(node)
        self._function.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _resolve_relative(self.module, node, self.files) if node.level else node.module
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.files else base)


def raw_imports(files: dict[str, Path]) -> dict[str, list[tuple[str, str | None, str | None]]]:
    """Module -> every (imported module, function, class) it names, internal or not."""
    out = {}
    for name, path in files.items():
        visitor = _Imports(name, files)
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        out[name] = visitor.found
    return out


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (plus the packages whose ``__init__`` runs).

    An import of ``a.b.c`` from a module outside ``a.b`` also runs ``a.b/__init__.py``, so it
    counts as an arrow to ``a.b`` too. Every import counts, wherever it sits.
    """
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, found in raw_imports(files).items():
        for target, _function, _cls in found:
            if target not in files:
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep == name or dep not in files:
                    continue
                if i < len(parts) and (name == dep or name.startswith(dep + ".")):
                    continue  # a package's own modules: its __init__ is already running
                graph[name].add(dep)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every set of modules that import each other in a circle (strongly connected
    components of more than one module, Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(components)


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete circle through the component's first module (breadth-first)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return component


FILES = module_files()


def test_the_scanner_sees_the_packages_and_their_arrows() -> None:
    graph = import_graph(FILES)
    assert "spinnaker2_backend.mapping.partition" in FILES
    assert "spinnaker2_backend.results" in graph["spinnaker2_backend.simulator"]
    assert "spinnaker2_backend.mapping" in graph["spinnaker2_backend.simulator"]
    # an import inside a function is an arrow too (the backend's cli runs the simulator)
    raw = raw_imports(FILES)["spinnaker2_backend.cli"]
    assert any(t == "spinnaker2_backend.simulator" and f is not None for t, f, _ in raw)
    assert "spinnaker2_backend.simulator" in graph["spinnaker2_backend.cli"]


def test_the_cycle_finder_finds_a_lazy_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert cycle_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_a_function_level_import_counts_and_a_package_init_counts(tmp_path: Path) -> None:
    for rel, text in {
        "snn_egru/__init__.py": "",
        "snn_egru/a.py": "def f():\n    from snn_egru.b import g\n",
        "snn_egru/b.py": "from snn_egru import a\n",
        "spinnaker2_backend/__init__.py": "from spinnaker2_backend.sub.x import y\n",
        "spinnaker2_backend/sub/__init__.py": "from spinnaker2_backend.sub import w\n",
        "spinnaker2_backend/sub/x.py": "y = 1\n",
        "spinnaker2_backend/z.py": "from spinnaker2_backend.sub.x import y\n",
        "spinnaker2_backend/sub/w.py": "from spinnaker2_backend.z import q\n",
        "lava_procs/__init__.py": "",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    cycles = find_cycles(import_graph(module_files(tmp_path)))
    assert ["snn_egru.a", "snn_egru.b"] in cycles
    # z -> sub.x runs sub/__init__ -> sub.w -> z
    assert any("spinnaker2_backend.z" in c and "spinnaker2_backend.sub" in c for c in cycles)


def test_no_import_circles() -> None:
    graph = import_graph(FILES)
    cycles = find_cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(
        f"{len(c)} modules {c}, e.g. " + " -> ".join(cycle_path(graph, c)) for c in cycles
    )


def test_only_entry_points_import_a_cli() -> None:
    bad = []
    for name, found in raw_imports(FILES).items():
        last = name.rpartition(".")[2]
        for target, _, _ in found:
            if target.rpartition(".")[2] == "cli" and target in FILES and target != name:
                if last not in ("__main__", "cli"):
                    bad.append(f"{name} imports {target}")
    assert not bad, bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_rules(package: str) -> None:
    bad = [
        f"{name} imports {target}" + (f" (in {function}())" if function else "")
        for name, found in raw_imports(FILES).items()
        if name == package or name.startswith(package + ".")
        for target, function, _ in found
        if target.split(".")[0] in FORBIDDEN[package]
    ]
    assert not bad, f"{package} must never import {FORBIDDEN[package]}: {bad}"


def test_importing_the_chip_side_loads_no_torch() -> None:
    mods = sorted(
        n
        for n in FILES
        if n.startswith("spinnaker2_backend") and not n.endswith(("__main__", "plots", "plots_run"))
    )
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}:\n"
        "    importlib.import_module(m)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'torch')\n"
        "assert not loaded, loaded[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_module_is_over_the_size_limit() -> None:
    big = {
        name: n
        for name, path in FILES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines (split them into named parts): {big}"


def function_lengths(path: Path) -> dict[str, int]:
    """``module-relative qualified name`` -> lines (``def`` to last line, decorators left
    out) of every function and method in the file, nested ones included."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                out[name] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), filename=str(path)), "")
    return out


def test_function_lengths_are_measured_from_def_to_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "class A:\n    @property\n    def f(self):\n        def g():\n            pass\n"
        "        return 1\n\n\nasync def h():\n    pass\n"
    )
    assert function_lengths(path) == {"A.f": 4, "A.f.g": 2, "h": 2}


def test_no_function_is_over_the_size_limit() -> None:
    big = {
        f"{name}.{function}": n
        for name, path in FILES.items()
        for function, n in function_lengths(path).items()
        if n > MAX_FUNCTION_LINES
    }
    assert not big, (
        f"functions over {MAX_FUNCTION_LINES} lines (split them by responsibility): {big}"
    )


def test_core_of_snn_egru_is_what_the_chip_side_imports() -> None:
    assert SNN_EGRU_CORE <= set(FILES), SNN_EGRU_CORE - set(FILES)
    graph = import_graph(FILES)
    bad = [
        f"{name} imports {target}"
        for name, targets in graph.items()
        if name.split(".")[0] in ("spinnaker2_backend", "lava_procs")
        for target in targets
        if target.split(".")[0] == "snn_egru" and target not in SNN_EGRU_CORE
    ]
    assert not bad, (
        f"the chip side imports only the core of snn_egru {sorted(SNN_EGRU_CORE)}: {bad}"
    )
    # the core stands on its own: it imports no application module, no backend, no Lava,
    # no torch (at any level, lazily included)
    outside = [
        f"{name} imports {target}"
        for name, found in raw_imports(FILES).items()
        if name in SNN_EGRU_CORE
        for target, _, _ in found
        if target.split(".")[0] in ("spinnaker2_backend", "lava_procs", "lava", "torch")
        or (target.split(".")[0] == "snn_egru" and target in FILES and target not in SNN_EGRU_CORE)
    ]
    assert not outside, outside
    unmarked = [
        name
        for name in sorted(SNN_EGRU_CORE)
        if "Layer: core of snn_egru"
        not in (ast.get_docstring(ast.parse(FILES[name].read_text())) or "")
    ]
    assert not unmarked, (
        f"the docstring of a core module says 'Layer: core of snn_egru': {unmarked}"
    )


def test_docs_tables_match_the_code() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "tables.py")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_readme_and_docs_links_resolve_inside_the_repository() -> None:
    bad = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            path = (doc.parent / target).resolve()
            if not path.exists() or ROOT not in path.parents:
                bad.append(f"{doc.name}: {target}")
    assert not bad, bad


def test_no_tracked_file_points_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    needle = "../" + "shared"
    bad = []
    for rel in filter(None, tracked):
        path = ROOT / rel
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        bad += [f"{rel}:{i}" for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert not bad, f"paths outside the repository ({needle}): {bad}"


def test_architecture_doc_lists_every_backend_module_and_its_example_runs() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        path.name
        for name, path in FILES.items()
        if name.startswith("spinnaker2_backend")
        and path.name not in ("__init__.py", "__main__.py")
        and path.name not in text
    ]
    assert not missing, f"docs/architecture.md does not list {missing}"
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    namespace: dict = {}
    exec(compile(block, "docs/architecture.md python block", "exec"), namespace)
    assert namespace["fit"].ok
