"""The package's shape: modules import each other in one direction only."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hf_coreset"


def _module_name(path: Path) -> str:
    parts = ("hf_coreset",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(node: ast.AST):
    """Every import statement, at top level or inside functions, except under `if TYPE_CHECKING:` (never run)."""
    for child in ast.iter_child_nodes(node):
        for stmt in child.orelse if isinstance(child, ast.If) and _is_type_checking(child) else [child]:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                yield stmt
            yield from _imports(stmt)


def import_graph() -> dict[str, set[str]]:
    """{module: hf_coreset modules it imports}. `from .a import b` points at `a.b` where that is a module,
    else at `a`: importing a *name* from a package (`from . import __version__`) is an edge to its
    `__init__`. Modules loaded by name at run time (the method registry's importlib) are not edges."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1]) if node.level else ""
                base = ".".join(p for p in (base, node.module) if p)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_graph_sees_function_level_and_name_imports():
    """The checker itself: an import inside a function counts, and `from . import x` of a name counts
    as an edge to the package, so a lazy import cannot hide a circle."""
    graph = import_graph()
    assert "hf_coreset.methods" in graph["hf_coreset.methods.el2n"]  # `from . import Keeps, register`
    assert "hf_coreset.trainer" in graph["hf_coreset"]  # the lazy CoresetTrainer in __getattr__
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    """No module of hf_coreset imports (even lazily) a module that imports it back."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_version_is_written_once():
    """`__version__` lives in hf_coreset/version.py only; the root and pyproject.toml read it from there."""
    import importlib.metadata

    import hf_coreset
    from hf_coreset import version

    writers = [p.name for p in PACKAGE.rglob("*.py") if "__version__ =" in p.read_text(encoding="utf-8")]
    assert writers == ["version.py"]
    assert hf_coreset.__version__ == version.__version__ == importlib.metadata.version("hf-coreset")
    assert 'attr = "hf_coreset.version.__version__"' in (PACKAGE.parent / "pyproject.toml").read_text()


# A measured result: a signed decimal (+5.9, -0.47), a decimal percentage (98.9%), "10 points", or a
# time on a machine ("12.3 s on"). Fractions that define a setting (10%, 0.3) are not results.
MEASURED = re.compile(r"(?<![\w.])[+-]\d+\.\d+|(?<![\d.])\d+\.\d+ ?%|\d points\b|\d+(\.\d+)? ?s on\b")


def _prose(path: Path):
    """(line, text) of every docstring and comment in a module."""
    source = path.read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string


def test_no_measured_numbers_in_docstrings():
    """Docstrings and comments say what a method does and where its numbers live (BENCHMARKS.md,
    benchmarks/results/), never the numbers, which go stale when the benchmarks are rerun."""
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {match.group(0)!r}"
             for path in sorted(PACKAGE.rglob("*.py")) for line, text in _prose(path)
             for match in MEASURED.finditer(text)]
    assert not found, "measured numbers in docstrings or comments:\n" + "\n".join(found)
