"""The package's layout: no import cycles, the research harness kept apart, no sibling-checkout paths.

The import graph is read from the source (AST), never by importing it: every ``import`` and
``from ... import`` statement, at module level or inside a function, with relative imports
resolved. Imports under ``if TYPE_CHECKING:`` are left out (they never run). Imports made from
strings (``importlib.import_module``, the methods registry) are not seen. Importing a submodule
also runs its parents' ``__init__``; those implicit edges are not added, only what a file names.

Two graphs are checked for cycles:

- the *layer* graph: each top-level module (``causalged/x.py``) is one node, each subpackage
  folder (``causalged/model``, ``causalged/methods``, ...) is one node;
- the *module* graph: each file is a node.

Beside the cycles: model/ imports neither evaluation/ nor methods/ and evaluation/ does not import
model/ (methods/ may import model/: it wraps it); only research/ and cli.py import research/;
every import of a package module names one that exists (a module moved away leaves none
behind); and no file of the package names a data folder beside the checkout. Every check takes
the package folder as an argument, so the last tests run it on fake and copied trees.
"""

from __future__ import annotations

import ast
import textwrap
from collections import defaultdict
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "causalged"
#: Who may import causalged.research (modules or subpackages, relative to the package): the
#: harness itself and the command line that runs it.
RESEARCH_CLIENTS = ("research", "cli", "steps.ablate")  # steps.ablate: the pipeline step that runs the ablation grid
#: Paths to a data folder beside a checkout: an installed package must never look for them.
FORBIDDEN_STRINGS = ("shared/data", "../shared")
#: Layer -> layers it must not import (beyond what the cycle check already forbids).
FORBIDDEN_LAYER_EDGES = {"model": ("evaluation", "methods"), "evaluation": ("model",)}


# --------------------------------------------------------------------------- the graph builder
def package_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package folder ``root``."""
    root = Path(root)
    modules = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom node, at any depth, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        stack.extend(children)


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (None: outside it)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path], missing: list[str] | None = None) -> set[str]:
    """The package's modules that the file ``path`` (module ``name``) imports.

    Names inside the package that are no module of it (a module moved away) go to ``missing``.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    inside = name.split(".")[0]
    found = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            named, targets = [alias.name for alias in node.names], [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            named = [base]
            # `from pkg import sub` imports the submodule when there is one, else names from pkg
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        if missing is not None:  # a folder without __init__.py is a namespace package: it exists
            missing += [f"{name} -> {m} (line {node.lineno})" for m in named
                        if m.split(".")[0] == inside and m not in modules and not any(k.startswith(m + ".") for k in modules)]
        for target in targets:
            known = _known(target, modules)
            if known is not None and known != name:
                found.add(known)
    return found


def module_graph(root: Path) -> nx.DiGraph:
    """Module -> module import edges inside the package folder ``root``; ``graph.graph["missing"]``
    lists the imports of package modules that do not exist."""
    modules = package_modules(root)
    graph = nx.DiGraph(missing=[])
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in imports_of(name, path, modules, graph.graph["missing"]))
    return graph


def layer_of(module: str) -> str:
    """``pkg.x`` and ``pkg.x.*`` -> ``x`` (a top-level module, or a subpackage folder); ``pkg`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_graph(modules: nx.DiGraph) -> nx.DiGraph:
    """One node per top-level module or subpackage; each edge keeps the module pairs behind it."""
    graph = nx.DiGraph()
    graph.add_nodes_from({layer_of(m) for m in modules})
    for a, b in sorted(modules.edges):
        la, lb = layer_of(a), layer_of(b)
        if la != lb:
            if not graph.has_edge(la, lb):
                graph.add_edge(la, lb, pairs=[])
            graph.edges[la, lb]["pairs"].append((a, b))
    return graph


def cycles(graph: nx.DiGraph) -> list[list[tuple]]:
    """The edges inside each strongly connected component of more than one node (or a self-loop)."""
    found = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
            found.append(sorted((a, b) for a, b in graph.subgraph(component).edges))
    return sorted(found)


def describe_cycles(graph: nx.DiGraph, found: list[list[tuple]]) -> str:
    lines = []
    for edges in found:
        nodes = sorted({n for edge in edges for n in edge})
        lines.append(f"cycle among {', '.join(nodes)}:")
        for a, b in edges:
            pairs = graph.edges[a, b].get("pairs")
            example = "" if not pairs else f"   e.g. {pairs[0][0]} -> {pairs[0][1]}" + (f" (+{len(pairs) - 1} more)" if len(pairs) > 1 else "")
            lines.append(f"  {a} -> {b}{example}")
    return "\n".join(lines)


def layout_problems(root: Path) -> dict[str, list[str]]:
    """Every layout rule broken under the package folder ``root``, by rule (empty lists: all kept)."""
    root = Path(root)
    modules = module_graph(root)
    layers = layer_graph(modules)
    problems: dict[str, list[str]] = defaultdict(list)
    found = cycles(layers)
    if found:
        problems["layer cycles"].append(describe_cycles(layers, found))
    found = cycles(modules)
    if found:
        problems["module cycles"].append(describe_cycles(modules, found))
    problems["missing modules"] += modules.graph["missing"]
    research = f"{root.name}.research"
    for a, b in sorted(modules.edges):
        client = any(a == f"{root.name}.{c}" or a.startswith(f"{root.name}.{c}.") for c in RESEARCH_CLIENTS)
        if (b == research or b.startswith(research + ".")) and not client:
            problems["research imported"].append(f"{a} -> {b}")
    for layer, banned in FORBIDDEN_LAYER_EDGES.items():
        for other in banned:
            if layers.has_edge(layer, other):
                problems["forbidden layer edges"] += [f"{a} -> {b}" for a, b in layers.edges[layer, other]["pairs"]]
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_text(errors="replace")
            for string in FORBIDDEN_STRINGS:
                if string in text:
                    problems["sibling-checkout paths"].append(f"{path.relative_to(root.parent)}: {string!r}")
    return {rule: found for rule, found in problems.items() if found}


# --------------------------------------------------------------------------- the package itself
@pytest.fixture(scope="module")
def problems() -> dict[str, list[str]]:
    return layout_problems(PACKAGE)


def test_no_cycle_between_top_level_modules_and_subpackages(problems):
    assert "layer cycles" not in problems, "\n" + problems["layer cycles"][0]


def test_no_cycle_between_modules(problems):
    assert "module cycles" not in problems, "\n" + problems["module cycles"][0]


def test_research_harness_is_imported_only_by_itself_and_the_cli(problems):
    assert "research imported" not in problems, "causalged.research is not part of the method:\n" + "\n".join(problems["research imported"])


def test_model_does_not_import_evaluation_or_methods_and_evaluation_not_model(problems):
    assert "forbidden layer edges" not in problems, "\n" + "\n".join(problems["forbidden layer edges"])


def test_every_import_of_the_package_names_a_module_it_has(problems):
    assert "missing modules" not in problems, "\n" + "\n".join(problems["missing modules"])


def test_package_never_looks_for_a_sibling_checkout(problems):
    assert "sibling-checkout paths" not in problems, "\n" + "\n".join(problems["sibling-checkout paths"])


# --------------------------------------------------------------------------- the checker itself
def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_checker_finds_cycles_and_misplaced_imports_in_a_fake_package(tmp_path):
    """A fake package with a layer cycle through a function-level relative import, a direct
    module cycle, imports of research from a method, imports of modules that do not exist and a
    sibling-checkout path."""
    root = _tree(tmp_path / "fakepkg", {
        "__init__.py": "",
        "core.py": "import fakepkg.model.net\n",
        "model/__init__.py": "",
        "model/net.py": "def f():\n    from ..evaluation import score\n",
        "evaluation/__init__.py": "",
        "evaluation/score.py": "from fakepkg import core\n",
        "a.py": "from . import b\n",
        "b.py": "from fakepkg.a import thing\n",
        "methods/__init__.py": "",
        "methods/knn.py": "from fakepkg.research.bench import run\nDATA = '../shared/data'\n",
        "research/__init__.py": "",
        "research/bench.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fakepkg.model import net\n",
        "cli.py": "from fakepkg.research import bench\n",
        "steps/__init__.py": "from .gone import run\nimport fakepkg.research.moved\n",
    })
    found = layout_problems(root)
    assert set(found) == {"layer cycles", "module cycles", "research imported", "forbidden layer edges", "sibling-checkout paths", "missing modules"}
    layers = found["layer cycles"][0]
    assert "cycle among a, b:" in layers and "cycle among core, evaluation, model:" in layers
    assert "model -> evaluation   e.g. fakepkg.model.net -> fakepkg.evaluation.score" in layers
    assert "research" not in layers  # the TYPE_CHECKING import does not count
    modules = found["module cycles"][0]
    assert "fakepkg.a -> fakepkg.b" in modules and "fakepkg.evaluation.score -> fakepkg.core" in modules
    assert sorted(found["research imported"]) == ["fakepkg.methods.knn -> fakepkg.research.bench",  # cli.py may
                                                  "fakepkg.steps -> fakepkg.research"]  # (the missing module's package)
    assert sorted(found["missing modules"]) == ["fakepkg.steps -> fakepkg.research.moved (line 2)", "fakepkg.steps -> fakepkg.steps.gone (line 1)"]
    assert found["forbidden layer edges"] == ["fakepkg.model.net -> fakepkg.evaluation.score"]
    assert found["sibling-checkout paths"] == ["fakepkg/methods/knn.py: 'shared/data'", "fakepkg/methods/knn.py: '../shared'"]


def test_checker_catches_a_cycle_added_to_a_copy_of_the_package(tmp_path):
    """The real package, copied: one function-level import of methods from a leaf module (arrays,
    which methods imports) is a new cycle, whatever else the tree holds."""
    import shutil

    copy = tmp_path / "causalged"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert not any("arrays" in {n for edge in edges for n in edge} for edges in cycles(layer_graph(module_graph(copy))))
    with open(copy / "arrays.py", "a") as handle:
        handle.write("\n\ndef _late():\n    from causalged.methods.base import Imputer\n")
    after = cycles(layer_graph(module_graph(copy)))
    assert any({("arrays", "methods"), ("methods", "arrays")} <= set(edges) for edges in after)
    assert "arrays -> methods   e.g. causalged.arrays -> causalged.methods.base" in layout_problems(copy)["layer cycles"][0]
