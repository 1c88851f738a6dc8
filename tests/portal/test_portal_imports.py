"""The portal and the gateway are separate processes: the portal imports nothing from ``gateway``.

Read from the source (no import), so a gateway import hidden in a function body or behind
a condition is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PORTAL = Path(__file__).resolve().parents[2] / "portal"


def gateway_imports(path: Path) -> list[str]:
    """``line: statement`` for each import of ``gateway`` (or a module under it) in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "gateway" or name.startswith("gateway.") for name in names):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


MODULES = sorted(PORTAL.rglob("*.py"))


def test_every_portal_module_is_checked():
    assert PORTAL / "config.py" in MODULES and PORTAL / "operator" / "routes.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PORTAL.parent)))
def test_portal_module_imports_nothing_from_the_gateway(path):
    assert gateway_imports(path) == []


def test_the_check_sees_every_spelling_of_a_gateway_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import gateway\nimport os, gateway.db as g\nfrom gateway.config import X\n"
                      "def f():\n    from gateway import ledger\n"
                      "from gateway_client import y\nfrom .gateway_client import z\nimport gatewayish\n")
    assert [line.split(":")[0] for line in gateway_imports(module)] == ["1", "2", "3", "5"]
