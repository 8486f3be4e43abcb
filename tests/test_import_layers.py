"""Issue 11: no import cycle between relay's parts, TYPE_CHECKING imports included,
and the REST API and API v4 know nothing of each other.

Read from the source (every ``import`` statement, wherever it stands), not from
what an interpreter happened to load.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELAY = ROOT / "relay"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path, name: str | None = None) -> Iterator[str]:
    """Every module ``path`` (module ``name``) names in an import, relative ones resolved."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # ``from relay import http`` imports the module relay.http
            yield from (f"{base}.{alias.name}" for alias in node.names)


def part(module: str) -> str | None:
    """The part of relay a module belongs to: its subpackage or top-level module."""
    pieces = module.split(".")
    if pieces[0] != "relay" or len(pieces) < 2:
        return None
    candidate = RELAY / pieces[1]
    if candidate.is_dir() or candidate.with_suffix(".py").exists():
        return f"relay.{pieces[1]}"
    return None  # a name imported from relay/__init__.py, not a module


def modules() -> list[Path]:
    return sorted(RELAY.rglob("*.py"))


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in modules():
        source = part(module_name(path))
        if source is None:
            continue
        targets = edges.setdefault(source, set())
        for name in imported(path):
            target = part(name)
            if target is not None and target != source:
                targets.add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one part (Tarjan)."""
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


def test_no_import_cycle_between_parts_of_relay() -> None:
    edges = graph()
    assert "relay.http" in edges and "relay.v4" in edges  # the walk found the packages
    assert cycles(edges) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_rest_api_and_v4_know_nothing_of_each_other() -> None:
    """They meet in relay.webapi's plain types, put together by relay.endpoints."""
    crossings = []
    for path in modules():
        name = module_name(path)
        for other, forbidden in (("relay.v4", "relay.http"), ("relay.http", "relay.v4")):
            if name == other or name.startswith(other + "."):
                crossings += [(name, target) for target in imported(path)
                              if target == forbidden or target.startswith(forbidden + ".")]
    assert crossings == []


def test_imports_are_resolved(tmp_path: Path) -> None:
    source = tmp_path / "web.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from relay.http.call import Call\n"
                      "def f():\n    from . import hal\n    from ..store import Store\n")
    assert set(imported(source, "relay.v4.web")) == {
        "typing", "typing.TYPE_CHECKING", "relay.http.call", "relay.http.call.Call",
        "relay.v4", "relay.v4.hal", "relay.store", "relay.store.Store"}
    assert part("relay.http.api") == "relay.http" and part("relay.__version__") is None
