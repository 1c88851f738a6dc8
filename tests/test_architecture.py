"""The import rules of docs/architecture.md: the wings' layers, no cycles, one writer of money.

The layer and wall contracts live in pyproject.toml (``[tool.importlinter]``); the checks
that import-linter has no contract type for are written out here.
"""

from __future__ import annotations

import re
from pathlib import Path

import grimp
import pytest
from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

REPO = Path(__file__).resolve().parents[1]
GATEWAY = REPO / "gateway"


def test_the_import_contracts_hold():
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == EXIT_STATUS_SUCCESS


def _cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    modules = sorted(graph.find_descendants(package) | {package})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if not target.startswith(package):
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return groups


@pytest.mark.parametrize("package", ["gateway", "portal"])
def test_no_import_cycles(package):
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    assert _cycles(graph, package) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for name in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(name)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(graph, "pkg") == [["pkg.a", "pkg.b"]]


# Table writes that move money or leases, and the one module allowed each.
_WRITERS = {
    "accounting/ledger.py": [
        re.compile(r"ledger_entries\.(insert|update|delete)\("),
        re.compile(r"\b(insert|update|delete)\(\s*ledger_entries\b"),
        re.compile(r"\b(balance_micro_p|credited_micro_p)\s*=\s*[a-z_]+\.c\."),
    ],
    "accounting/leases.py": [
        re.compile(r"\b(key_|key_budget_|member_budget_)?leases\.(insert|update|delete)\("),
        re.compile(r"\b(insert|update|delete)\(\s*(key_|key_budget_|member_budget_)?leases\b"),
        re.compile(r"\b(budget_)?leased_micro_p\s*=\s*[a-z_]+\.c\."),
        # A pool's leased column, written through ``Pool.leased()``.
        re.compile(r"\{\s*[a-z_.]*leased\(\)\s*:"),
    ],
}


def _writes(owner: str) -> list[str]:
    found = []
    for path in sorted(GATEWAY.rglob("*.py")):
        relative = path.relative_to(GATEWAY).as_posix()
        if relative == owner or relative.startswith("migrations/"):
            continue
        text = path.read_text()
        for pattern in _WRITERS[owner]:
            found += [f"{relative}: {m.group(0)}" for m in pattern.finditer(text)]
    return found


@pytest.mark.parametrize("owner", sorted(_WRITERS))
def test_money_has_one_writer(owner):
    assert _writes(owner) == []
    # The patterns do find the owner's own writes, so an empty list above means something.
    text = (GATEWAY / owner).read_text()
    assert any(pattern.search(text) for pattern in _WRITERS[owner])
