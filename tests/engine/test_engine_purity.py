"""The engine core is pure: no I/O clients, no clock, no randomness (read from the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import exchange.engine

ENGINE_DIR = Path(exchange.engine.__file__).parent
CORE_MODULES = ["book.py", "ledger.py", "stops.py", "core.py", "snapshot.py"]
FORBIDDEN = {"trio", "redis", "psycopg", "time", "random", "uuid", "datetime"}


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            roots.add("__import__")
    return roots


@pytest.mark.parametrize("name", CORE_MODULES)
def test_core_module_imports_nothing_impure(name: str) -> None:
    roots = imported_roots((ENGINE_DIR / name).read_text())
    assert not roots & (FORBIDDEN | {"__import__"}), f"{name} imports {roots & FORBIDDEN}"


def test_the_checker_sees_nested_and_from_imports() -> None:
    source = "import os.path\nfrom time import monotonic\ndef f():\n    import random\n"
    assert imported_roots(source) == {"os", "time", "random"}
