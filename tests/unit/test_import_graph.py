"""The house's walls, read from the source: no import circles between modules or packages, dependencies point the
way ARCHITECTURE.md draws them, and the service and the demo run without the lab's heavy extras."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("app", "models", "simulator", "lab")
#: What each top-level package may import from the project (itself always).
ALLOWED = {"app": {"models"}, "models": set(), "simulator": {"models"}, "lab": {"app", "models", "simulator"}}
HEAVY = ("matplotlib", "pyarrow")  # the [lab] extra


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def imported(module: str, path: Path) -> Iterator[str]:
    """Every name ``module`` imports (absolute), wherever the import statement stands."""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                name = ".".join(base[:len(base) - node.level + 1] + ([name] if name else []))
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module → the project modules it imports (``from a import b`` counts ``a.b`` when ``b`` is a module)."""
    known = modules()
    edges: dict[str, frozenset[str]] = {}
    for module, path in known.items():
        targets = set()
        for name in imported(module, path):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):  # a package's own __init__
                targets.add(name)
        edges[module] = frozenset(targets)
    return edges


def node_of(module: str) -> str:
    """The package graph's node of ``module``: its package, except that a module lying beside sub-packages
    (``app/main.py``, ``app/errors.py``) stands alone: the composition root and the shared kernel are not one thing."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0] or module
    beside_subpackages = path.name != "__init__.py" and any(p.name != "__pycache__" and (p / "__init__.py").exists()
                                                             for p in path.parent.iterdir() if p.is_dir())
    return module if beside_subpackages else package


def circles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_tarjan_finds_a_circle_and_nothing_else() -> None:
    edges = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert circles(edges) == [["a", "b", "c"]]
    assert circles({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_every_module_is_read() -> None:
    assert {"app.main", "models.twin", "simulator.cli", "lab.cli"} <= set(modules())
    assert "models.twin" in graph()["app.main"]


def test_no_import_circle_between_modules() -> None:
    assert circles(graph()) == []


def test_no_import_circle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        source = node_of(module)
        edges.setdefault(source, set()).update(t for t in map(node_of, targets) if t != source)
    assert circles({k: frozenset(v) for k, v in edges.items()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_point_inward(package: str) -> None:
    """app never imports lab or simulator; models imports none of the others; simulator only models."""
    wrong = sorted((module, target) for module, targets in graph().items() if module.split(".")[0] == package
                   for target in targets if target.split(".")[0] not in ALLOWED[package] | {package})
    assert wrong == []


_LIGHT = textwrap.dedent("""
    import contextlib, importlib.abc, io, sys, tempfile
    from pathlib import Path

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {heavy!r}:
                raise ImportError(f"{{name}} is blocked: the base install has no [lab] extra")
            return None

    sys.meta_path.insert(0, Refuse())
    from app.main import create_app
    from app.settings import Settings
    with tempfile.TemporaryDirectory() as data:
        create_app(Settings(_env_file=None, data_dir=Path(data)))
    import lab.cli, lab.demo
    for argv in (["--help"], ["demo", "--help"]):
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
            lab.cli.main(argv)
        assert "usage" in out.getvalue().lower(), (argv, out.getvalue())
    assert not {{m.split(".")[0] for m in sys.modules}} & set({heavy!r}), "a heavy module was imported"
    print("light")
""").format(heavy=HEAVY)


def test_the_service_and_the_demo_need_no_lab_extra() -> None:
    """With matplotlib and pyarrow unimportable: the app is created, the CLI and the demo's module import, and
    ``wardtwin --help`` and ``wardtwin demo --help`` answer (a fresh interpreter, so nothing is imported already)."""
    run = subprocess.run([sys.executable, "-c", _LIGHT], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0 and run.stdout.strip().endswith("light"), run.stderr[-3000:]
