"""The package's shape: imports run one way, pure modules stay pure, and only the storage seam
touches Optuna's private names."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sweep"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere in its file (inside functions too: an
    import deferred for speed is still a dependency)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    found.add(f"{base}.{alias.name}")  # a submodule
                elif base in known:
                    found.add(base)
    found.discard(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of nodes (first == last), or None."""
    colour = dict.fromkeys(graph, "white")
    stack: list[str] = []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == "grey":
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == "white" and (cycle := visit(nxt)):
                return cycle
        colour[node] = "black"
        stack.pop()
        return None

    for node in sorted(graph):
        if colour[node] == "white" and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_passes_a_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_the_package_modules():
    known = modules()
    names = set(known) - {"sweep"}  # the package's face re-exports; nothing imports it back
    graph = {name: imports_of(name, known[name], set(known)) - {"sweep"} for name in names}
    assert "sweep.store.running" in graph["sweep.search"]  # the walk sees real edges
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


@pytest.mark.parametrize(
    "module",
    ["sweep.analysis", "sweep.plots", "sweep.records", "sweep.errors", "sweep.stats", "sweep.race"],
)
def test_pure_modules_load_without_optuna_sqlalchemy_or_scipy(module):
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('optuna', 'sqlalchemy', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_the_storage_seam_uses_optunas_private_names():
    private = re.compile(r"optuna\.storages\._|\._study_id|\._trial_id|_CachedStorage")
    users = sorted(
        name for name, path in modules().items()
        if private.search(path.read_text(encoding="utf-8"))
    )
    assert users and all(name.startswith("sweep.store.") for name in users), users
