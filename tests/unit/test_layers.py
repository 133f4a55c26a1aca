"""The import graph follows DESIGN's layers: every import points down (or across one layer), and no
circle exists, counting imports written inside functions.

Read with ``ast`` from the source files, so an import hidden in a function body counts like any other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lineage_site", "releases", "audit")

# Lowest first. A module may import from its own layer or any layer below, never above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "releases.errors",
            "releases.numbers",
            "releases.naming",
            "releases.dispatch",
            "releases.web_links",
            "releases.webhook_signature",
            "releases.credentials",
            "releases.prepared",
            "lineage_site.env",
        ),
    ),
    (
        "audit core",
        (
            "audit.models",
            "audit.context",
            "audit.log",
            "audit.merkle",
            "audit.signing",
            "audit.checkpoints",
            "audit.tree",
            "audit.trail",
            "audit.verification",
            "audit.verifier",
            "audit.alarm",
            "audit.vocabulary",
            "audit.pgcopy",
            "audit.pgtriggers",
            "audit.witness",
        ),
    ),
    ("roles", ("releases.roles",)),
    ("models", ("releases.models",)),
    ("lineage", ("releases.lineage",)),
    ("services", ("releases.services", "releases.evidence")),
    ("sync adapters", ("releases.sync", "releases.outbound")),
    ("tasks", ("releases.tasks", "audit.tasks")),
    (
        "doors",
        (
            "releases.views",
            "releases.api",
            "releases.admin",
            "releases.management",
            "releases.templatetags",
            "releases.middleware",
            "releases.urls",
            "releases.demo",
            "releases.approval_forms",
            "releases.apps",
            "releases.signals",
            "audit.admin",
            "audit.middleware",
            "audit.management",
            "audit.apps",
            "audit.dbroles",
            "audit.views",
            "audit.context_processors",
            "audit.urls",
        ),
    ),
    ("site", ("lineage_site",)),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Every project module ``path`` imports, anywhere in the file, with the line it is imported on."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _resolve(alias.name, modules, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield from _resolve(submodule if submodule in modules else node.module, modules, node.lineno)


def _resolve(name: str, modules: dict[str, Path], line: int) -> Iterator[tuple[str, int]]:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    if name:
        yield name, line


def layer_of(module: str) -> int:
    best, level = "", -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, index
    return level


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {
        name: {target for target, _ in imports_of(path, modules) if target != name} for name, path in modules.items()
    }


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_project_module_has_a_layer() -> None:
    unplaced = sorted(name for name in project_modules() if layer_of(name) < 0 and name not in PACKAGES)
    assert unplaced == [], f"place these modules in a layer of tests/unit/test_layers.py: {unplaced}"


def test_no_import_runs_up_the_layers() -> None:
    modules = project_modules()
    upward = []
    for name, path in sorted(modules.items()):
        here = layer_of(name)
        for target, line in imports_of(path, modules):
            there = layer_of(target)
            if here >= 0 and there > here:
                upward.append(
                    f"{path.relative_to(ROOT)}:{line} ({LAYERS[here][0]}) imports {target} ({LAYERS[there][0]})"
                )
    assert upward == [], "imports that run up the layers:\n" + "\n".join(upward)


def test_the_import_graph_has_no_circle() -> None:
    assert circles(graph()) == []


def test_the_checks_see_imports_inside_functions(tmp_path: Path) -> None:
    # The checker itself: an import in a function body is an edge, and a two-module loop is a circle.
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from releases.tasks import sync_source\n")
    modules = {"releases.tasks": ROOT / "releases/tasks.py", "probe": source}
    assert list(imports_of(source, modules)) == [("releases.tasks", 2)]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("releases.services.release") > layer_of("releases.lineage.trace")
    assert layer_of("releases.tasks") > layer_of("releases.services.writeback")
