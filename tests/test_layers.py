"""The package's layers: a module imports only from its own layer or the ones below it.

The order is errors < core < store < emit < tune < bench < front; `morello/__init__.py` and
`__main__.py` sit on top. Imports inside functions count too: a lazy import is still a
dependency, and a cycle through one is still a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "morello"
LAYERS = ("errors", "core", "store", "emit", "tune", "bench", "front")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every morello module `path` imports, at any depth of its code."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from morello.core import spec` names a module; `from morello.core.spec import X`
            # names its module alone.
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    modules = {_module(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules and name != here}


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return len(LAYERS)  # the package's entry points sit on top
    return LAYERS.index(parts[1])


GRAPH = {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_belongs_to_a_layer() -> None:
    for module in GRAPH:
        parts = module.split(".")
        assert len(parts) == 1 or parts[1] in (*LAYERS, "__main__"), module


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != "morello"))
def test_a_module_imports_no_higher_layer(module: str) -> None:
    # Every module may name the package itself (`from morello import __version__`): its
    # top level imports nothing of the package, which the next test checks.
    upward = sorted(d for d in GRAPH[module] if d != "morello" and _layer(d) > _layer(module))
    assert not upward, f"{module} imports a higher layer: {upward}"


def test_the_package_root_imports_its_modules_only_when_asked() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    eager = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    named = [a.name for n in eager if isinstance(n, ast.Import) for a in n.names]
    named += [n.module or "." for n in eager if isinstance(n, ast.ImportFrom)]
    assert not [m for m in named if m.startswith(("morello", "."))], named


def test_there_are_no_import_cycles() -> None:
    # A package imports its own modules only lazily (morello/__init__.py); drop package
    # nodes so `morello.core` -> `morello.core.spec` is not read as a cycle back up.
    graph = {m: {d for d in deps if d != "morello"} for m, deps in GRAPH.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_the_cli_starts_without_loading_the_search_or_measurement() -> None:
    # `morello --help` and argument errors must be instant: the CLI imports the search, the
    # memo table, the renderer and the measurement when a command runs.
    heavy = (
        "numpy",
        "jinja2",
        "morello.core.search",
        "morello.store.db",
        "morello.emit.codegen",
        "morello.tune.calibrate",
        "morello.tune.harness",
        "morello.tune.rerank",
        "morello.bench",
        "morello.front.api",
    )
    code = (
        "import sys, morello.front.cli;"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
