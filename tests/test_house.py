"""The house: the package's own imports (read with ``ast``, nothing imported) form no circle,
and no module of ``qgvae/`` or ``baselines/`` is over 400 lines.

Every import statement counts as an edge, wherever it stands: at module level, inside a
function, or under ``if TYPE_CHECKING``. A deferred import does not remove a dependency, it only
moves the failure of a circle from import time to call time, and a type-only import still ties
the two modules' designs together. A package's ``__init__`` importing its own modules is how a
package exports them, so the implicit child -> parent edge is not added.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("qgvae", "baselines")
MAX_LINES = 400


def modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package __init__)}`` of every module of the packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def imports(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` imports (``from pkg import mod`` names ``mod``)."""
    here = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                child = f"{module}.{alias.name}"
                out.add(child if child in known else module)
    return {m for m in out if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, *mods[name], set(mods)) for name in mods}


def test_the_graph_reader_sees_every_kind_of_import(tmp_path):
    src = (
        "from typing import TYPE_CHECKING\nfrom . import b\nfrom .c import f\n"
        "if TYPE_CHECKING:\n    from ..d import T\n"
        "def g():\n    import p.e\n    from .b import h\n"
    )
    (tmp_path / "a.py").write_text(src)
    known = {"p", "p.q", "p.q.a", "p.q.b", "p.q.c", "p.d", "p.e"}
    assert imports("p.q.a", tmp_path / "a.py", False, known) == {"p.q.b", "p.q.c", "p.d", "p.e"}
    graph = {"x": {"y"}, "y": {"z"}, "z": {"x"}}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
        raise AssertionError("a circle went unseen")
    except graphlib.CycleError:
        pass


def test_the_package_imports_have_a_topological_order():
    graph = import_graph()
    assert len(graph) > 50 and graph["qgvae.cli"] >= {"qgvae.cli.render", "qgvae.errors"}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None
    assert set(order) == set(graph)


def test_no_module_is_over_400_lines():
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path, _ in modules().values()
    }
    over = {p: n for p, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"
