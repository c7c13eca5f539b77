"""Which rooms of ``exchange`` may reach which: imports followed transitively, read from the source.

The graph is built with :mod:`ast` from every module of the ``exchange`` package, the way
import-linter's grimp builds it: ``import a.b`` and ``from a.b import c`` are edges to ``a.b``
(to ``a.b.c`` when that is a module), relative imports resolved, imports inside functions
counted (they run too), imports under ``if TYPE_CHECKING:`` not (they never run). A package's
``__init__`` is a module like any other, reached only when something imports the package itself;
counting the implicit import of every parent package would make each module of a package reach
whatever its ``__init__`` re-exports, which says nothing about the module. Third-party and
standard-library imports are leaves, by their top-level name.

Every rule is checked for every module it covers, each (rule, module, forbidden target) a case of
its own. The violations that exist today are listed in ``KNOWN_VIOLATIONS``: their cases are
expected to fail (``xfail(strict=True)``), so fixing one without striking it from the list fails
too, and so does an entry that no longer names a case. A failure prints the import chain.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import attrs
import pytest

import exchange

PACKAGE_DIR = Path(exchange.__file__).parent
IO = ("trio", "redis", "psycopg", "time", "random", "uuid", "quart", "hypercorn", "trio_websocket")
SURFACES = ("exchange.api", "exchange.backpack", "exchange.surfaces")


@attrs.frozen
class Rule:
    """Modules named by ``sources`` (exact names, or ``prefix.*`` for a package and everything
    in it) must not reach any module named by ``forbidden`` (the same forms; a leaf is a
    top-level third-party or standard-library name)."""

    name: str
    why: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    # sources that must exist (a rule whose modules moved away would silently check nothing)
    required: tuple[str, ...] = ()


def _tree(*packages: str) -> tuple[str, ...]:
    return tuple(f"{p}.*" for p in packages)


PURE_CORE = (
    "exchange.engine.core",
    "exchange.engine.book",
    "exchange.engine.ledger",
    "exchange.engine.stops",
    "exchange.engine.snapshot",
    "exchange.engine.outputs",
    "exchange.models",
    "exchange.money",
    "exchange.markets",
    "exchange.codec",
)
RECORDS = ("exchange.models", "exchange.codec")

RULES = (
    Rule(
        "pure-core",
        "the engine core and its outputs are pure: replayable, no I/O, no clock, no randomness",
        PURE_CORE,
        IO,
        required=PURE_CORE,
    ),
    Rule(
        "surface-not-engine",
        "a surface talks to the engine through commands and records, never its code",
        _tree(*SURFACES),
        _tree("exchange.engine"),
    ),
    Rule(
        "ws-not-db",
        "the ws program never runs the db program's code",
        _tree("exchange.ws"),
        _tree("exchange.db"),
    ),
    Rule(
        "programs-not-dev",
        "the programs run without the developer tools (exchange.dev: just up, test servers)",
        (
            *_tree("exchange.engine", "exchange.api", "exchange.ws", "exchange.db"),
            *_tree(*SURFACES),
            "exchange.programs",
        ),
        _tree("exchange.dev"),
    ),
    Rule(
        "records-no-transport",
        "records know no transport",
        RECORDS,
        ("exchange.bus", "redis", "trio"),
        required=RECORDS,
    ),
    # No surface reaches into another one's internals; what they share lives in the top-level
    # modules of exchange.surfaces (exchange.surfaces.x, not exchange.surfaces.native.x).
    Rule(
        "native-not-backpack",
        "surfaces are adapters side by side",
        _tree("exchange.surfaces.native"),
        _tree("exchange.surfaces.backpack", "exchange.backpack"),
    ),
    Rule(
        "backpack-not-native",
        "surfaces are adapters side by side",
        _tree("exchange.surfaces.backpack", "exchange.backpack"),
        _tree("exchange.surfaces.native", "exchange.api"),
    ),
)

# (rule, module, forbidden target) that fail today. Strike an entry when you fix it.
KNOWN_VIOLATIONS: set[tuple[str, str, str]] = set()


# --- the graph --------------------------------------------------------------------------------


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run: ``if TYPE_CHECKING:`` bodies skipped (their ``else`` kept)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, source: str, modules: set[str], is_package: bool) -> set[str]:
    """The modules (or leaf top-level names) that module ``name`` imports."""
    found = set()
    package = name if is_package else name.rpartition(".")[0]

    def target(dotted: str) -> str:
        if dotted in modules:
            return dotted
        if dotted.split(".")[0] == "exchange":
            # an attribute of a module: the longest prefix that is one
            while dotted and dotted not in modules:
                dotted = dotted.rpartition(".")[0]
            return dotted or "exchange"
        return dotted.split(".")[0]

    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(target(alias.name) for alias in node.names)
            continue
        if node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            submodule = f"{module}.{alias.name}"
            found.add(submodule if submodule in modules else target(module))
    found.discard(name)
    return found


@cache
def graph() -> dict[str, frozenset[str]]:
    names = module_names()
    modules = set(names)
    return {
        name: frozenset(imports_of(name, path.read_text(), modules, path.name == "__init__.py"))
        for name, path in names.items()
    }


def chain(
    edges: dict[str, frozenset[str]], start: str, matches: Callable[[str], bool]
) -> list[str] | None:
    """The shortest import chain from ``start`` to a module ``matches`` accepts, or None."""
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        if current != start and matches(current):
            path = [current]
            while (previous := parent[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for nxt in sorted(edges.get(current, ())):
            if nxt not in parent:
                parent[nxt] = current
                queue.append(nxt)
    return None


def covers(pattern: str, name: str) -> bool:
    if pattern.endswith(".*"):
        root = pattern[:-2]
        return name == root or name.startswith(root + ".")
    return name == pattern


# --- the cases --------------------------------------------------------------------------------


def cases() -> Iterator[tuple[str, str, str]]:
    for rule in RULES:
        for module in sorted(graph()):
            if any(covers(p, module) for p in rule.sources):
                for forbidden in rule.forbidden:
                    yield rule.name, module, forbidden


def _params() -> list[object]:
    params = []
    for case in cases():
        marks = ()
        if case in KNOWN_VIOLATIONS:
            marks = (
                pytest.mark.xfail(
                    strict=True,
                    reason="known violation; once fixed, strike it from KNOWN_VIOLATIONS",
                ),
            )
        params.append(pytest.param(*case, id=" ".join(case), marks=marks))
    return params


@pytest.mark.parametrize(("rule_name", "module", "forbidden"), _params())
def test_rule(rule_name: str, module: str, forbidden: str) -> None:
    rule = next(r for r in RULES if r.name == rule_name)
    found = chain(graph(), module, lambda name: covers(forbidden, name))
    assert found is None, (
        f"{rule.name} ({rule.why}): {module} reaches {forbidden}:\n  " + "\n  → ".join(found)
    )


def test_known_violations_name_cases() -> None:
    """An entry whose module moved or was deleted checks nothing: strike or rename it."""
    assert sorted(KNOWN_VIOLATIONS - set(cases())) == []


def test_the_rules_cover_modules_that_exist() -> None:
    missing = [(r.name, m) for r in RULES for m in r.required if m not in graph()]
    assert missing == [], f"rules naming modules that are gone (update the rule): {missing}"


# --- the checker itself -----------------------------------------------------------------------


def test_the_graph_resolves_every_form_of_import() -> None:
    modules = {"exchange", "exchange.a", "exchange.a.b", "exchange.a.c", "exchange.d"}
    source = """
import os.path
from time import monotonic
from . import c
from .c import thing
from .. import d
from exchange.a import b
from exchange.d import name
import exchange.a.b as alias
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import redis
else:
    import json
def f():
    import random
"""
    found = imports_of("exchange.a.b", source, modules, is_package=False)
    assert found == {
        "os",
        "time",
        "exchange.a.c",
        "exchange.d",
        "typing",
        "json",
        "random",
    }
    assert imports_of("exchange.a", "from . import b\nfrom .b import x\n", modules, True) == {
        "exchange.a.b"
    }


def test_the_chain_is_followed_transitively() -> None:
    edges = {
        "exchange.engine.core": frozenset({"exchange.models"}),
        "exchange.models": frozenset({"exchange.bus"}),
        "exchange.bus": frozenset({"redis"}),
    }
    assert chain(edges, "exchange.engine.core", lambda n: n == "redis") == [
        "exchange.engine.core",
        "exchange.models",
        "exchange.bus",
        "redis",
    ]
    assert chain(edges, "exchange.bus", lambda n: n == "trio") is None


def test_the_rules_cover_the_future_surfaces() -> None:
    def rules_for(module: str) -> set[str]:
        return {r.name for r in RULES if any(covers(p, module) for p in r.sources)}

    assert rules_for("exchange.surfaces.native.rest") == {
        "surface-not-engine",
        "native-not-backpack",
        "programs-not-dev",
    }
    assert rules_for("exchange.surfaces.backpack.stream") == {
        "surface-not-engine",
        "backpack-not-native",
        "programs-not-dev",
    }
    assert rules_for("exchange.surfaces.errors") == {"surface-not-engine", "programs-not-dev"}
    forbidden_to_native = {p for r in RULES if r.name == "native-not-backpack" for p in r.forbidden}
    assert any(covers(p, "exchange.surfaces.backpack.rest") for p in forbidden_to_native)
    assert not any(covers(p, "exchange.surfaces.errors") for p in forbidden_to_native)
